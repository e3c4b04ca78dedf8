"""Slow: the shipped config trains and evaluates through spaCy's own CLI."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from spacy_xlmr.convert import convert_iob2

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_spacy_train_ner_tiny_config(tiny_checkpoint, tmp_path):
    data = ROOT / "data" / "ner" / "uner-pt"
    convert_iob2(data / "train.iob2", tmp_path / "train.spacy")
    convert_iob2(data / "dev.iob2", tmp_path / "dev.spacy")
    subprocess.run(
        [
            sys.executable, "-m", "spacy", "train", str(ROOT / "configs" / "ner-tiny.cfg"),
            "--output", str(tmp_path / "out"),
            "--paths.train", str(tmp_path / "train.spacy"),
            "--paths.dev", str(tmp_path / "dev.spacy"),
            "--paths.encoder", str(tiny_checkpoint),
            "--training.max_steps", "120", "--training.eval_frequency", "60",
        ],
        check=True,
    )
    metrics = tmp_path / "metrics.json"
    subprocess.run(
        [
            sys.executable, "-m", "spacy", "evaluate", str(tmp_path / "out" / "model-best"),
            str(tmp_path / "dev.spacy"), "--output", str(metrics),
        ],
        check=True,
    )
    scores = json.loads(metrics.read_text())
    # Random-init tiny encoder, 120 steps: well above chance (~0), far from good.
    assert scores["ents_f"] > 0.08
    assert set(scores["ents_per_type"]) == {"PER", "ORG", "LOC"}
