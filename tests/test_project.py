"""Slow: the NER project's `all` workflow (build a tiny encoder, convert,
`spacy train` with configs/ner-tiny.cfg, `spacy evaluate`) runs offline."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_ner_project_all_workflow(tmp_path):
    project = tmp_path / "ner"
    project.mkdir()
    shutil.copy(ROOT / "projects" / "ner" / "project.yml", project)
    subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", "all", str(project),
         "--vars.root", str(ROOT), "--vars.max_steps", "120"],
        check=True,
    )
    metrics = json.loads((project / "training" / "ner-tiny" / "metrics.json").read_text())
    # Random-init tiny encoder, 120 steps: well above chance (~0), far from good.
    assert metrics["ents_f"] > 0.08
    assert set(metrics["ents_per_type"]) == {"PER", "ORG", "LOC"}
    assert (project / "training" / "ner-tiny" / "model-best" / "transformer" / "model"
            / "model.safetensors").exists()


@pytest.mark.slow
def test_ner_project_adapt_workflow(tmp_path):
    """Domain adaptation: masked-LM training on raw text with `spacy train`
    (configs/mlm-tiny.cfg), then NER on the adapted encoder."""
    project = tmp_path / "ner"
    project.mkdir()
    shutil.copy(ROOT / "projects" / "ner" / "project.yml", project)
    subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", "adapt", str(project),
         "--vars.root", str(ROOT), "--vars.mlm_steps", "100", "--vars.max_steps", "100"],
        check=True,
    )
    mlm = json.loads((project / "training" / "mlm-tiny" / "model-last" / "meta.json").read_text())
    # The tokenizer's ~8k pieces: a random model's perplexity is about 8000.
    assert 0.0 < mlm["performance"]["mlm_acc"] <= 1.0
    assert mlm["performance"]["mlm_ppl"] < 4000
    ner = project / "training" / "ner-adapted"
    config = (ner / "model-best" / "config.cfg").read_text()
    assert "training/mlm-tiny/model-last/transformer/model" in config
    metrics = json.loads((ner / "metrics.json").read_text())
    assert "ents_f" in metrics
