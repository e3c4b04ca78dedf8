"""spacy train with the encoder frozen ([training] frozen_components, with
annotating_components): the heads train, the encoder's weights stay."""
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import torch
from spacy.util import load_config

from spacy_xlmr import hf
from spacy_xlmr.convert import convert_iob2
from spacy_xlmr.heads.torch_head import get_head_module

from .util import make_nlp

ROOT = Path(__file__).parents[1]
DATA = ROOT / "data"


@pytest.mark.slow
def test_spacy_train_with_a_frozen_encoder(tiny_checkpoint, tmp_path):
    """Frozen components aren't initialized by spacy train: the encoder is
    sourced from a pipeline that has its weights."""
    source = make_nlp(tiny_checkpoint)
    source.initialize()
    source.to_disk(tmp_path / "source")
    config = load_config(ROOT / "configs" / "ner-tiny.cfg", interpolate=False)
    config["components"]["transformer"] = {"source": str(tmp_path / "source")}
    config.to_disk(tmp_path / "frozen.cfg")
    for split, limit in (("train", 64), ("dev", 16)):
        convert_iob2(DATA / "ner" / "uner-pt" / f"{split}.iob2", tmp_path / f"{split}.spacy",
                     limit=limit)
    heads = {}
    for steps in (1, 20):
        output = tmp_path / f"out-{steps}"
        subprocess.run(
            [
                sys.executable, "-m", "spacy", "train", str(tmp_path / "frozen.cfg"),
                "--output", str(output),
                "--paths.train", str(tmp_path / "train.spacy"),
                "--paths.dev", str(tmp_path / "dev.spacy"),
                "--paths.encoder", str(tiny_checkpoint),
                "--training.max_steps", str(steps), "--training.eval_frequency", "10",
                "--training.frozen_components", '["transformer"]',
                "--training.annotating_components", '["transformer"]',
            ],
            check=True,
        )
        nlp = spacy.load(output / "model-last")
        trained = nlp.get_pipe("transformer").encoder.torch_module.state_dict()
        initial = hf.load_encoder(tiny_checkpoint).state_dict()
        assert trained.keys() == initial.keys()
        assert all(torch.equal(trained[name], initial[name]) for name in initial)
        head = get_head_module(nlp.get_pipe("ner").model.get_ref("head"))
        heads[steps] = {name: p.detach().clone() for name, p in head.named_parameters()}
    # The head trained from step 1 to step 20 (same seed, same start).
    assert any(not torch.equal(heads[1][name], heads[20][name]) for name in heads[1])
