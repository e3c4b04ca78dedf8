"""Slow: rehearse every GPU config ``configs/*-base.cfg`` on CPU.

Each base config is trained with ``python -m spacy train`` in a subprocess
for two steps on a few shipped examples and the run's ``model-last`` is
loaded and run. Only what needs a GPU or the Hugging Face hub is overridden
(see ``_overrides``); batching, optimizer, schedules, scorers, corpus readers
and every component setting are the config's own, and the test checks that
the saved ``config.cfg`` still holds every value of the base config.

The config files are found by glob and the training data is chosen from the
config itself (its corpus reader and its components' factories), so a new
``*-base.cfg`` is covered without editing this file; a factory this file has
no data for fails with a message saying what to add.
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import spacy
from spacy.util import load_config

from spacy_xlmr.convert import convert_iob2, convert_squad, convert_textcat

from .util import assert_encoded

ROOT = Path(__file__).parents[1]
DATA = ROOT / "data"
BASE_CONFIGS = sorted((ROOT / "configs").glob("*-base.cfg"))

# Annotated training data per component factory: (file name in a
# multi-component corpus directory, converter writing train/dev .spacy files).
# A handful of docs: the point is that the config trains, not how well.
_ANNOTATED = {
    "xlmr_ner": "ner",
    "xlmr_textcat": "cats",
    "xlmr_qa": "qa",
}
# Checkpoints with an HF head, for components whose base config imports the
# head from ${paths.encoder} (the hub's xlm-roberta-base is an
# XLMRobertaForMaskedLM checkpoint: mlm-base.cfg imports its lm_head). The
# plain tiny encoder has no head, and the import refuses it:
#   CheckpointError: [fill_mask] '.../tiny-xlmr0' is a XLMRobertaModel
#   checkpoint, but this component imports XLMRobertaForMaskedLM heads ...
_HEAD_CHECKPOINT_FIXTURES = {"xlmr_fill_mask": "masked_lm_checkpoint"}


def _write_annotated(kind: str, split: str, output: Path) -> None:
    if kind == "ner":
        # UNER Portuguese: 16 train sentences have PER, ORG and LOC mentions.
        convert_iob2(DATA / "ner" / "uner-pt" / f"{split}.iob2", output,
                     limit=16 if split == "train" else 8)
    elif kind == "cats":
        convert_textcat(DATA / "textcat" / "sib200-pt" / f"{split}.tsv", output,
                        limit=16 if split == "train" else 8)
    elif kind == "qa":
        # SQuAD-es 2.0 split by article: answerable and unanswerable questions.
        convert_squad(DATA / "qa" / "squad-es-v2" / f"{split}.json", output,
                      limit=3 if split == "train" else 2)
    else:  # pragma: no cover
        raise AssertionError(kind)


def _write_raw_text(output: Path, n_lines: int) -> None:
    lines = (DATA / "text" / "ntrex128-por.txt").read_text(encoding="utf8").splitlines()
    output.write_text("\n".join(line for line in lines[:n_lines] if line.strip()) + "\n",
                      encoding="utf8")


def _factories(config) -> Dict[str, str]:
    return {
        name: config["components"][name]["factory"] for name in config["nlp"]["pipeline"]
    }


def _build_corpus(config, tmp_path: Path) -> Dict[str, Path]:
    """Train and dev data in the format the config's own readers expect."""
    reader = config["corpora"]["train"]["@readers"]
    assert config["corpora"]["dev"]["@readers"] == reader
    paths = {}
    if reader == "spacy.PlainTextCorpus.v1":
        for split, n_lines in (("train", 12), ("dev", 6)):
            paths[split] = tmp_path / f"raw-{split}.txt"
            _write_raw_text(paths[split], n_lines)
        return paths
    assert reader == "spacy.Corpus.v1", f"no test data for corpus reader {reader}"
    factories = set(_factories(config).values()) - {"xlmr_transformer"}
    missing = factories - set(_ANNOTATED)
    assert not missing, (
        f"No training data for {sorted(missing)}: add the factory to _ANNOTATED "
        f"and a converter to _write_annotated in {Path(__file__).name}"
    )
    kinds = sorted(_ANNOTATED[factory] for factory in factories)
    for split in ("train", "dev"):
        if len(kinds) == 1:  # one .spacy file, as the config's usage line
            paths[split] = tmp_path / f"{split}.spacy"
            _write_annotated(kinds[0], split, paths[split])
        else:  # a directory of one .spacy file per annotation (multitask)
            paths[split] = tmp_path / split
            paths[split].mkdir()
            for kind in kinds:
                _write_annotated(kind, split, paths[split] / f"{kind}.spacy")
    return paths


def _encoder_checkpoint(config, request) -> Path:
    """The tiny encoder, or a tiny checkpoint with the HF head that a
    component imports from ${paths.encoder}."""
    fixture = "tiny_checkpoint"
    for name, factory in _factories(config).items():
        init = config["initialize"]["components"].get(name, {})
        hf_checkpoint = init.get("hf_checkpoint")
        if hf_checkpoint is None:
            continue
        assert hf_checkpoint == "${paths.encoder}", (
            f"[initialize.components.{name}] hf_checkpoint = {hf_checkpoint!r}: "
            "override it with a tiny checkpoint in this test"
        )
        assert factory in _HEAD_CHECKPOINT_FIXTURES, (
            f"{name} ({factory}) imports an HF head from ${{paths.encoder}}: add a "
            f"fixture with that head to _HEAD_CHECKPOINT_FIXTURES"
        )
        fixture = _HEAD_CHECKPOINT_FIXTURES[factory]
    return request.getfixturevalue(fixture)


def _overrides(config, corpus: Dict[str, Path], encoder: Path) -> Dict[str, Any]:
    """The config values this test changes, and nothing else."""
    overrides: Dict[str, Any] = {
        "paths.train": str(corpus["train"]),
        "paths.dev": str(corpus["dev"]),
        # The hub's xlm-roberta-base -> the session's tiny checkpoint; every
        # base config reads the encoder (and any HF head import) from here.
        "paths.encoder": str(encoder),
        "training.max_steps": 2,
        "training.eval_frequency": 2,
    }
    # mixed_precision stays on: on CPU the encoder warns and trains in fp32
    # (thinc's loss scaler needs CUDA).
    return overrides


def _flatten(section: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat = {}
    for key, value in section.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_pipeline_runs(nlp) -> None:
    """Every trained component predicts on a new text."""
    text = "O presidente Lula visitou a Petrobras no Rio de Janeiro na segunda-feira."
    doc = nlp(text)
    assert_encoded(doc)
    for name in nlp.pipe_names:
        factory = nlp.get_pipe_meta(name).factory
        pipe = nlp.get_pipe(name)
        if factory == "xlmr_ner":
            assert pipe.labels
            assert {ent.label_ for ent in doc.ents} <= set(pipe.labels)
        elif factory == "xlmr_textcat":
            assert set(doc.cats) == set(pipe.labels) and len(pipe.labels) > 1
            assert all(0.0 <= score <= 1.0 for score in doc.cats.values())
            if pipe.cfg["exclusive_classes"]:
                assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-4)
        elif factory == "xlmr_qa":
            answered = pipe.ask(text, "Quem visitou a Petrobras?")
            answers = answered._.qa_answers["q0"]
            assert 1 <= len(answers) <= pipe.top_k
            assert {"answer", "start", "end", "score"} <= set(answers[0])
            assert text[answers[0]["start"]:answers[0]["end"]] == answers[0]["answer"]
        elif factory == "xlmr_fill_mask":
            masked = nlp("O presidente visitou a <mask> no Rio de Janeiro.")
            assert len(masked._.fill_mask) == 1
            assert len(masked._.fill_mask[0]) == pipe.top_k
            assert all(0.0 <= p["score"] <= 1.0 for p in masked._.fill_mask[0])
        else:
            assert factory == "xlmr_transformer", f"no prediction check for {factory}"


@pytest.mark.slow
@pytest.mark.parametrize("path", BASE_CONFIGS, ids=lambda p: p.name)
def test_base_config_trains_on_cpu(path, request, tmp_path):
    config = load_config(path, interpolate=False)
    corpus = _build_corpus(config, tmp_path)
    encoder = _encoder_checkpoint(config, request)
    overrides = _overrides(config, corpus, encoder)
    args: List[str] = []
    for key, value in overrides.items():
        # JSON values, as `spacy train` parses them: "false" -> False, 2 -> 2.
        args += [f"--{key}", json.dumps(value)]
    output = tmp_path / "out"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(path), "--output", str(output),
         "--gpu-id", "-1", *args],
        env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    model_last = output / "model-last"
    assert (model_last / "transformer" / "model" / "model.safetensors").exists()

    # Nothing but the overrides changed: every value of the base config (as
    # written, variables uninterpolated) is in the trained pipeline's config.
    trained = _flatten(load_config(model_last / "config.cfg", interpolate=False))
    expected = _flatten(load_config(path, overrides=overrides, interpolate=False))
    changed = {k: (v, trained.get(k)) for k, v in expected.items() if trained.get(k) != v}
    assert not changed
    assert "xlm-roberta-base" not in json.dumps(
        load_config(model_last / "config.cfg").interpolate()
    )

    nlp = spacy.load(model_last)
    assert nlp.pipe_names == config["nlp"]["pipeline"]
    _check_pipeline_runs(nlp)
