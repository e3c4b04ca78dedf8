"""Untrusted weight files are never unpickled into code execution."""
import pickle
import shutil

import pytest
import spacy
import torch

from spacy_xlmr import hf
from spacy_xlmr.errors import DamagedPipelineError

from .util import make_nlp


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(directory, marker):
    """Replace the safetensors weights by a pickle that creates ``marker``
    when unpickled."""
    (directory / "model.safetensors").unlink()
    with open(directory / "pytorch_model.bin", "wb") as file_:
        pickle.dump({"roberta.embeddings.word_embeddings.weight": _Exploit(marker)}, file_)


def _save_pipeline(checkpoint, path):
    nlp = make_nlp(checkpoint)
    nlp.add_pipe("xlmr_ner", name="ner")
    nlp.get_pipe("transformer").initialize(lambda: [], nlp=nlp)
    nlp.get_pipe("ner").initialize(lambda: [], nlp=nlp, labels=["PER"])
    nlp.to_disk(path)


@pytest.fixture
def poisoned_checkpoint(tiny_checkpoint, tmp_path):
    directory = tmp_path / "poisoned"
    shutil.copytree(tiny_checkpoint, directory)
    _plant(directory, tmp_path / "pwned")
    return directory


def test_encoder_refuses_a_malicious_pickle(poisoned_checkpoint, tmp_path):
    nlp = make_nlp(poisoned_checkpoint)
    with pytest.raises(hf.CheckpointError, match="refused without being loaded"):
        nlp.initialize()
    assert not (tmp_path / "pwned").exists()


def test_head_import_refuses_a_malicious_pickle(poisoned_checkpoint, tmp_path):
    with pytest.raises(hf.CheckpointError, match="safe_serialization=True"):
        hf.load_head_state_dict(poisoned_checkpoint, ("roberta.",))
    assert not (tmp_path / "pwned").exists()


def test_saved_pipeline_with_a_malicious_encoder_is_refused(tiny_checkpoint, tmp_path):
    _save_pipeline(tiny_checkpoint, tmp_path / "pipeline")
    _plant(tmp_path / "pipeline" / "transformer" / "model", tmp_path / "pwned")
    # A saved pipeline's encoder weights are safetensors; nothing else is read.
    with pytest.raises(DamagedPipelineError, match="model.safetensors' is missing"):
        spacy.load(tmp_path / "pipeline")
    assert not (tmp_path / "pwned").exists()


def test_torch_load_is_weights_only_by_default():
    # Head weights inside a pipeline go through thinc's torch.load, which
    # relies on this default (torch >= 2.6, pinned in pyproject.toml).
    import inspect

    assert "weights_only" in inspect.signature(torch.load).parameters
    assert tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 6)


def test_saved_pipeline_with_a_malicious_head_is_refused(tiny_checkpoint, tmp_path):
    import srsly

    _save_pipeline(tiny_checkpoint, tmp_path / "pipeline")
    model_file = tmp_path / "pipeline" / "ner" / "model"
    msg = srsly.msgpack_loads(model_file.read_bytes())
    (shim_bytes,) = [shims[0] for shims in msg["shims"] if shims]
    shim = srsly.msgpack_loads(shim_bytes)
    shim["state"] = pickle.dumps(_Exploit(tmp_path / "pwned"))
    msg["shims"] = [[srsly.msgpack_dumps(shim)] if shims else [] for shims in msg["shims"]]
    model_file.write_bytes(srsly.msgpack_dumps(msg))
    with pytest.raises(Exception):
        spacy.load(tmp_path / "pipeline")
    assert not (tmp_path / "pwned").exists()


def test_remote_code_in_a_checkpoint_is_never_run(tiny_checkpoint, tmp_path):
    """A config.json that points the Auto classes at code shipped in the
    directory: trust_remote_code stays off, the code isn't imported, and the
    checkpoint loads as the XLM-R it declares."""
    import json

    directory = tmp_path / "remote-code"
    shutil.copytree(tiny_checkpoint, directory)
    marker = tmp_path / "pwned"
    (directory / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from transformers import XLMRobertaConfig, XLMRobertaModel\n"
        "class EvilConfig(XLMRobertaConfig):\n    pass\n"
        "class EvilModel(XLMRobertaModel):\n    pass\n",
        encoding="utf8",
    )
    config = json.loads((directory / "config.json").read_text(encoding="utf8"))
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (directory / "config.json").write_text(json.dumps(config), encoding="utf8")
    nlp = make_nlp(directory)
    nlp.initialize()
    assert nlp("Lisboa")._.trf_data.model_output.last_hidden_state.shape[-1] == 64
    assert not marker.exists()
