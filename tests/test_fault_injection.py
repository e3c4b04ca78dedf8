"""Fault injection on a saved multi-head pipeline (encoder + ner + textcat +
qa + fill_mask): damaged files, interrupted saves.

Probes and outcomes (each is a test below):

=============================  ==============================================
Probe                          Outcome
=============================  ==============================================
Each file of our components    ``DamagedPipelineError`` naming the component
(``*/cfg``, ``*/model``, the   and the file; a pickle is never unpickled
encoder's ``config.json``,     (its payload would create a marker file).
``tokenizer*.json``,
``model.safetensors``)
deleted, emptied, truncated,
random bytes, a pickle
The encoder's unused files     The pipeline loads and predicts exactly as
(``sentencepiece.bpe.model``,  before: the fast tokenizer reads
``special_tokens_map.json``),  ``tokenizer.json`` and ``tokenizer_config.json``
damaged the same ways          only.
spaCy's own files              spaCy's own errors (not covered here).
(``config.cfg``, ``meta.json``,
``tokenizer``, ``vocab/``)
``save_pipeline`` interrupted  The previous pipeline loads with its previous
at each file write             predictions; no temporary directory is left.
``nlp.to_disk`` interrupted    Every one of our component directories is
at each file write             either wholly the old or wholly the new one. A
                               pipeline that mixes old and new ones is refused
                               at load (``DamagedPipelineError``: a head saved
                               with other encoder weights); spaCy's own files
                               are written in place by spaCy, so a pipeline
                               interrupted there may fail with spaCy's error
                               (``save_pipeline`` avoids both). It never loads
                               with predictions other than the old or new.
Saved files' permissions       Those of any new file (``umask``), the
                               weights included.
Ctrl-C in ``spacy train`` /    spaCy's loop saves model-last on its way out,
plain ``spacy-xlmr train``     also on Ctrl-C; it loads (tests/scale/
(at step 0, at step 5)         test_training.py). spaCy writes checkpoints in
                               place: a second Ctrl-C during that save can
                               leave a model-last refused at load (above).
Ctrl-C twice while a           model-last stays the previous checkpoint, whole
``torchrun`` run saves         (checkpoints are saved with ``save_pipeline``).
=============================  ==============================================
"""
import builtins
import hashlib
import io
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Dict

import numpy
import pytest
import spacy
import torch

import spacy_xlmr

from spacy_xlmr.errors import DamagedPipelineError
from spacy_xlmr.heads.torch_head import get_head_module
from spacy_xlmr.storage import save_pipeline

from .scale.util import save_multi_head_pipeline

TEXTS = [
    "Maria Silva works for the United Nations in Lisbon.",
    "O tempo em São Paulo está bom hoje.",
]
# Files the fast tokenizer never reads (its state is in tokenizer.json).
UNUSED_ENCODER_FILES = {"sentencepiece.bpe.model", "special_tokens_map.json"}
SPACY_FILES = {"config.cfg", "meta.json", "tokenizer", "vocab"}
DAMAGES = ["delete", "empty", "truncate", "random", "pickle"]


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def predictions(nlp) -> dict:
    docs = list(nlp.pipe(TEXTS))
    return {
        "ents": [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs],
        "cats": [doc.cats for doc in docs],
        "hidden": [doc._.trf_data.model_output.last_hidden_state for doc in docs],
    }


def assert_same_predictions(actual: dict, expected: dict) -> None:
    assert actual["ents"] == expected["ents"]
    for got, want in zip(actual["cats"], expected["cats"]):
        assert got.keys() == want.keys()
        numpy.testing.assert_allclose(list(got.values()), list(want.values()), atol=1e-6)
    for got, want in zip(actual["hidden"], expected["hidden"]):
        numpy.testing.assert_allclose(got, want, atol=1e-6)


def damage(path: Path, how: str, marker: Path) -> None:
    size = path.stat().st_size
    if how == "delete":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[: max(1, size // 2)])
    elif how == "random":
        path.write_bytes(numpy.random.default_rng(0).bytes(max(16, size)))
    elif how == "pickle":
        path.write_bytes(pickle.dumps({"weights": _Exploit(marker)}))


def component_files(pipeline: Path):
    return sorted(
        path.relative_to(pipeline) for path in pipeline.rglob("*")
        if path.is_file() and path.relative_to(pipeline).parts[0] not in SPACY_FILES
    )


def snapshot(directory: Path) -> Dict[str, str]:
    """File name → sha256 of everything under ``directory``."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def saved(token_classification_checkpoint, tmp_path_factory) -> Path:
    return save_multi_head_pipeline(
        token_classification_checkpoint, tmp_path_factory.mktemp("pipeline") / "multi"
    )


@pytest.fixture(scope="module")
def expected(saved) -> dict:
    return predictions(spacy.load(saved))


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_component_file_is_an_error_naming_it(saved, expected, tmp_path, how):
    files = component_files(saved)
    assert {f.name for f in files} >= {"cfg", "model", "config.json", "model.safetensors"}
    for relative in files:
        copy = tmp_path / f"copy-{len(relative.parts)}-{relative.name}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(saved, copy)
        marker = tmp_path / "unpickled"
        damage(copy / relative, how, marker)
        if relative.name in UNUSED_ENCODER_FILES:
            assert_same_predictions(predictions(spacy.load(copy)), expected)
        else:
            with pytest.raises(DamagedPipelineError) as error:
                spacy.load(copy)
            message = str(error.value)
            assert message.startswith(f"[{relative.parts[0]}] The saved pipeline is damaged")
            assert f"'{copy / relative}'" in message or (
                relative.name == "model.safetensors" and f"'{copy / relative.parent}'" in message
            )
        assert not marker.exists(), f"{relative} ({how}) was unpickled"
        shutil.rmtree(copy)


class Interrupted(BaseException):
    """Stands for Ctrl-C, a kill or a full disk in the middle of a save."""


def interrupt_at_write(monkeypatch, n: int):
    """Make the ``n``-th file opened for writing raise ``Interrupted`` just
    after it was created (empty, as a killed writer leaves it); returns a
    list that counts the opens."""
    opened = []
    original = io.open

    def open_(file, mode="r", *args, **kwargs):
        handle = original(file, mode, *args, **kwargs)
        if any(flag in mode for flag in "wax+"):
            opened.append(file)
            if len(opened) == n:
                handle.close()
                raise Interrupted(f"write {n}: {file}")
        return handle

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    return opened


@pytest.fixture(scope="module")
def changed(saved) -> spacy.language.Language:
    """The saved pipeline with every weight changed (encoder and heads)."""
    nlp = spacy.load(saved)
    with torch.no_grad():
        for name in nlp.pipe_names:
            model = nlp.get_pipe(name).model
            if name == "transformer":
                module = nlp.get_pipe(name).encoder.torch_module
            else:
                module = get_head_module(model.get_ref("head"))
            for parameter in module.parameters():
                parameter.add_(0.05)
    return nlp


def count_writes(nlp, path: Path, monkeypatch) -> int:
    with monkeypatch.context() as patch:
        opened = interrupt_at_write(patch, n=0)
        save_pipeline(nlp, path)
    return len(opened)


def test_an_interrupted_save_pipeline_leaves_the_old_pipeline(
    saved, expected, changed, tmp_path, monkeypatch
):
    new = predictions(changed)
    assert new["ents"] != expected["ents"] or new["cats"] != expected["cats"]
    n_writes = count_writes(changed, tmp_path / "count", monkeypatch)
    assert n_writes > 10
    target = tmp_path / "pipeline"
    shutil.copytree(saved, target)
    before = snapshot(target)
    for n in range(1, n_writes + 1):
        with monkeypatch.context() as patch:
            interrupt_at_write(patch, n)
            with pytest.raises(Interrupted):
                save_pipeline(changed, target)
        assert snapshot(target) == before, f"interrupted at write {n}"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["count", "pipeline"]
    assert_same_predictions(predictions(spacy.load(target)), expected)
    save_pipeline(changed, target)  # and uninterrupted, it is replaced
    assert_same_predictions(predictions(spacy.load(target)), new)


def same_predictions(actual: dict, expected: dict) -> bool:
    try:
        assert_same_predictions(actual, expected)
    except AssertionError:
        return False
    return True


def test_an_interrupted_to_disk_never_mixes_a_component(
    saved, expected, changed, tmp_path, monkeypatch
):
    """Each component is old or new; a pipeline that mixes old and new
    components (or has a damaged file of spaCy's) doesn't load."""
    new_predictions = predictions(changed)
    outcomes = {"old": 0, "new": 0, "mixed, refused": 0, "spaCy's error": 0}
    new_copy = tmp_path / "new"
    changed.to_disk(new_copy)
    n_writes = count_writes(changed, tmp_path / "count", monkeypatch)
    components = ["transformer", "ner", "textcat", "qa", "fill_mask"]
    old = {name: snapshot(saved / name) for name in components}
    new = {name: snapshot(new_copy / name) for name in components}
    assert all(old[name] != new[name] for name in components)
    for n in range(1, n_writes + 1):
        target = tmp_path / f"pipeline-{n}"
        shutil.copytree(saved, target)
        with monkeypatch.context() as patch:
            interrupt_at_write(patch, n)
            with pytest.raises(Interrupted):
                changed.to_disk(target)
        for name in components:
            assert snapshot(target / name) in (old[name], new[name]), (name, n)
        assert not [p for p in target.iterdir() if p.name.startswith(".")]
        try:
            loaded = predictions(spacy.load(target))
        except DamagedPipelineError as error:
            assert "saved with other encoder weights" in str(error)
            outcomes["mixed, refused"] += 1
        except Exception:  # e.g. spaCy's meta.json, written in place, is empty
            outcomes["spaCy's error"] += 1
        else:
            if same_predictions(loaded, expected):
                outcomes["old"] += 1
            else:
                assert same_predictions(loaded, new_predictions), f"write {n}"
                outcomes["new"] += 1
        shutil.rmtree(target)
    assert outcomes["mixed, refused"] > 0 and outcomes["old"] > 0, outcomes


def test_the_weights_file_is_not_written_alone(saved, changed, tmp_path, monkeypatch):
    """An interruption while safetensors (not Python's open) writes the
    weights leaves the old encoder."""
    import spacy_xlmr.pipeline.transformer as transformer_module

    target = tmp_path / "pipeline"
    shutil.copytree(saved, target)
    before = snapshot(target / "transformer")
    original = transformer_module.save_encoder

    def save_then_fail(model, path):
        original(model, path)
        weights = path / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
        raise Interrupted("while writing the weights")

    monkeypatch.setattr(transformer_module, "save_encoder", save_then_fail)
    with pytest.raises(Interrupted):
        changed.get_pipe("transformer").to_disk(target / "transformer")
    assert snapshot(target / "transformer") == before


def test_saved_files_have_the_default_permissions(saved, tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    modes = {
        str(p.relative_to(saved)): p.stat().st_mode & 0o777
        for p in saved.rglob("*") if p.is_file()
    }
    assert modes["transformer/model/model.safetensors"] == 0o666 & ~umask
    assert set(modes.values()) == {0o666 & ~umask}
    spacy_xlmr.save_pipeline(spacy.load(saved), tmp_path / "again")
    assert (tmp_path / "again").stat().st_mode & 0o777 == 0o777 & ~umask


def test_every_head_records_the_encoder_weights_it_was_saved_with(saved):
    encoder_digest = json.loads((saved / "transformer" / "cfg").read_text())["weights_sha256"]
    for head in ("ner", "textcat", "qa", "fill_mask"):
        cfg = json.loads((saved / head / "cfg").read_text())
        assert cfg["encoder_weights_sha256"] == encoder_digest, head
