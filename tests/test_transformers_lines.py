"""What spacy-xlmr needs from transformers on both lines it supports (4.53
and 5.x): these tests run on whichever is installed.

* ``build_checkpoint`` gives the same checkpoint for the same seed.
* ``hf.load_tokenizer`` refuses a checkpoint without a vocabulary (5.x would
  build a tokenizer of the special tokens alone).
* ``hf.save_tokenizer`` writes a tokenizer that loads back the same.
* Loading and saving print nothing (5.x: progress bars and a load report).
* Two-way: a checkpoint built or saved on one line loads on the other with
  the same token ids and encoder outputs. It needs the other line's Python:
  ``SPACY_XLMR_OTHER_PYTHON=/path/to/other/venv/bin/python pytest ...``.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from safetensors.torch import load_file

from spacy_xlmr import hf
from spacy_xlmr.checkpoints import build_checkpoint, shipped_texts

TEXTS = [
    "Maria Silva works for the United Nations in Lisbon.",
    "O tempo em São Paulo está bom hoje.",
    "Москва  —   столица России.",
    "東京は日本の首都です。",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "  Paris is the <mask> of France.  ",
]
OTHER_PYTHON = os.environ.get("SPACY_XLMR_OTHER_PYTHON")


def _weights(directory: Path) -> Dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


def _ids(tokenizer, texts: List[str] = TEXTS) -> List[List[int]]:
    return [tokenizer(text)["input_ids"] for text in texts]


def test_build_checkpoint_is_deterministic_for_a_seed(tmp_path, capfd):
    capfd.readouterr()
    first = build_checkpoint(tmp_path / "first", shipped_texts(), seed=5)
    torch.manual_seed(1234)  # the weights come from the seed alone, not torch's state
    again = build_checkpoint(tmp_path / "again", shipped_texts(), seed=5)
    other = build_checkpoint(tmp_path / "other", shipped_texts(), seed=6)
    assert capfd.readouterr() == ("", ""), "build_checkpoint printed something"
    weights, weights_again, weights_other = map(_weights, (first, again, other))
    assert weights.keys() == weights_again.keys() == weights_other.keys()
    for name, tensor in weights.items():
        assert torch.equal(tensor, weights_again[name]), name
        if tensor.dim() == 2:  # embeddings and matrices are drawn; the rest is 0 or 1
            assert not torch.equal(tensor, weights_other[name]), name
    assert (first / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
    # As xlm-roberta-base ships it, on both lines.
    assert (first / "sentencepiece.bpe.model").is_file()
    embeddings = weights["embeddings.word_embeddings.weight"]
    assert not embeddings[1].any(), "the <pad> embedding is zero"
    assert 0.019 < float(embeddings[2:].std()) < 0.021
    tokenizer = hf.load_tokenizer(first)
    assert _ids(tokenizer) == _ids(hf.load_tokenizer(again))
    assert len(tokenizer) == embeddings.shape[0]
    assert tokenizer.mask_token == "<mask>" and tokenizer.pad_token_id == 1


def test_tokenizer_without_vocabulary_is_refused(tiny_checkpoint, tmp_path):
    broken = tmp_path / "no-vocabulary"
    shutil.copytree(tiny_checkpoint, broken)
    for name in hf.VOCABULARY_FILES:
        (broken / name).unlink()
    assert (broken / "tokenizer_config.json").is_file()
    with pytest.raises(hf.CheckpointError) as err:
        hf.load_tokenizer(broken)
    message = str(err.value)
    assert str(broken) in message
    assert "tokenizer.json" in message and "sentencepiece.bpe.model" in message


def test_tokenizer_of_special_tokens_only_is_refused(tmp_path):
    """A tokenizer.json whose vocabulary is the special tokens alone (what
    5.x builds from tokenizer_config.json, e.g. for a hub name)."""
    from tokenizers import Tokenizer
    from tokenizers.models import Unigram

    directory = tmp_path / "specials-only"
    directory.mkdir()
    config = {"tokenizer_class": "XLMRobertaTokenizer"}
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf8")
    specials = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("<mask>", 0.0)]
    Tokenizer(Unigram(specials, unk_id=3)).save(str(directory / "tokenizer.json"))
    with pytest.raises(hf.CheckpointError, match="only the 5 special tokens") as err:
        hf.load_tokenizer(directory)
    assert str(directory) in str(err.value)


@pytest.mark.parametrize("added", [[], ["<ent>"]])
def test_saved_tokenizer_loads_back_the_same(tiny_checkpoint, tmp_path, added):
    tokenizer = hf.load_tokenizer(tiny_checkpoint)
    if added:
        tokenizer.add_special_tokens({"additional_special_tokens": added})
    texts = TEXTS + [f"A {token} in a text" for token in added]
    hf.save_tokenizer(tokenizer, tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf8"))
    # 5.x writes a list here, which 4.53 can't read.
    assert not isinstance(config.get("extra_special_tokens"), list)
    loaded = hf.load_tokenizer(tmp_path)
    assert _ids(loaded, texts) == _ids(tokenizer, texts)
    assert len(loaded) == len(tokenizer)
    assert set(loaded.all_special_tokens) == set(tokenizer.all_special_tokens)
    assert loaded.mask_token_id == tokenizer.mask_token_id
    assert loaded.model_max_length == tokenizer.model_max_length


@pytest.fixture
def incomplete_checkpoint(tiny_checkpoint, tmp_path) -> Path:
    """The tiny checkpoint without one of its weights."""
    from safetensors.torch import save_file

    incomplete = tmp_path / "incomplete"
    shutil.copytree(tiny_checkpoint, incomplete)
    weights = _weights(incomplete)
    del weights["encoder.layer.0.output.dense.bias"]
    save_file(weights, str(incomplete / "model.safetensors"), metadata={"format": "pt"})
    return incomplete


# Loads each directory as the encoder does (strict=False: a missing weight is
# allowed). In a fresh process: transformers' log handler writes to the
# sys.stderr of when it was set up, which pytest's capture may not see.
LOAD_SCRIPT = r'''
import sys, types
package = types.ModuleType("spacy_xlmr")
package.__path__ = [sys.argv[1]]
sys.modules["spacy_xlmr"] = package  # only hf.py of this checkout is run
from spacy_xlmr import hf

for directory in sys.argv[2:]:
    config = hf.load_config(directory)
    hf.load_tokenizer(directory)
    hf.load_encoder(directory, config=config, strict=False)
'''


def test_loading_prints_nothing(token_classification_checkpoint, incomplete_checkpoint):
    """5.x prints a progress bar and a load report (here: the classifier's
    weights, unknown to XLMRobertaModel, and a missing weight); 4.53 warns
    about the missing weight."""
    package_dir = str(Path(hf.__file__).parent)
    directories = [str(token_classification_checkpoint), str(incomplete_checkpoint)]
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, package_dir, *directories],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (result.stdout, result.stderr) == ("", "")


def test_loading_restores_the_users_settings(
    token_classification_checkpoint, incomplete_checkpoint, capfd
):
    """The verbosity and (5.x) tqdm hook are the user's again after loading."""
    from transformers.utils import logging as hf_logging

    capfd.readouterr()
    verbosity = hf_logging.get_verbosity()
    has_hook = hasattr(hf_logging, "set_tqdm_hook")  # 5.x

    def users_hook(factory, args, kwargs):
        return factory(*args, **kwargs)

    if has_hook:
        previous = hf_logging.set_tqdm_hook(users_hook)
    hf_logging.set_verbosity_info()
    try:
        config = hf.load_config(token_classification_checkpoint)
        hf.load_tokenizer(token_classification_checkpoint)
        hf.load_encoder(token_classification_checkpoint, config=config)
        hf.load_encoder(incomplete_checkpoint, strict=False)
        assert hf_logging.get_verbosity() == hf_logging.INFO
        if has_hook:
            assert hf_logging.set_tqdm_hook(users_hook) is users_hook
    finally:
        hf_logging.set_verbosity(verbosity)
        if has_hook:
            hf_logging.set_tqdm_hook(previous)
    assert capfd.readouterr() == ("", ""), "a progress bar was shown"


def test_quiet_transformers_nests_and_restores_on_error():
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    with pytest.raises(RuntimeError):
        with hf.quiet_transformers():
            with hf.quiet_transformers():
                assert hf_logging.get_verbosity() == hf_logging.ERROR
            assert hf_logging.get_verbosity() == hf_logging.ERROR
            raise RuntimeError
    assert hf_logging.get_verbosity() == verbosity


# Run by each line's Python: builds a checkpoint (and saves it again as the
# encoder saves itself) and/or writes the token ids and encoder outputs of
# directories. spacy_xlmr's package __init__ isn't run: only hf.py and
# checkpoints.py of this checkout are used.
LINE_SCRIPT = r'''
import json, sys, types
from pathlib import Path

package_dir, request = sys.argv[1], json.loads(sys.argv[2])
package = types.ModuleType("spacy_xlmr")
package.__path__ = [package_dir]
sys.modules["spacy_xlmr"] = package

import torch
import transformers
from spacy_xlmr import hf
from spacy_xlmr.checkpoints import build_checkpoint, shipped_texts

torch.set_num_threads(1)
if request.get("build"):
    built = Path(request["build"])
    build_checkpoint(built, shipped_texts(), seed=request["seed"])
    saved = Path(request["build"] + "-saved")
    hf.load_encoder(built).save_pretrained(saved, safe_serialization=True)
    hf.save_tokenizer(hf.load_tokenizer(built), saved)
outputs = {}
for directory in request.get("evaluate", []):
    tokenizer = hf.load_tokenizer(directory)
    model = hf.load_encoder(directory).eval()
    texts = []
    for text in request["texts"]:
        ids = tokenizer(text)["input_ids"]
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        texts.append({"ids": ids, "hidden": hidden.tolist()})
    outputs[directory] = {
        "texts": texts,
        "size": len(tokenizer),
        "special": sorted(tokenizer.all_special_tokens),
        "mask_lstrip": tokenizer.added_tokens_decoder[tokenizer.mask_token_id].lstrip,
    }
json.dump({"version": transformers.__version__, "outputs": outputs}, sys.stdout)
'''


def _run_line(python: str, cwd: Path, **request) -> dict:
    package_dir = str(Path(hf.__file__).parent)
    result = subprocess.run(
        [python, "-c", LINE_SCRIPT, package_dir, json.dumps({"texts": TEXTS, **request})],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"{python} failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout)


@pytest.mark.skipif(
    not OTHER_PYTHON,
    reason="set SPACY_XLMR_OTHER_PYTHON to the Python of an environment with the "
    "other transformers line (4.53 or 5.x) to run the two-way test",
)
def test_checkpoints_cross_transformers_lines(tmp_path):
    """A checkpoint built on each line, and saved again through hf (as the
    encoder saves itself), loads on both lines with the same token ids and
    encoder outputs; the same seed builds the same weights on both."""
    assert OTHER_PYTHON is not None
    this, other = str(tmp_path / "this"), str(tmp_path / "other")
    _run_line(sys.executable, tmp_path, build=this, seed=7)
    everything = [this, this + "-saved", other, other + "-saved"]
    there = _run_line(OTHER_PYTHON, tmp_path, build=other, seed=7, evaluate=everything)
    here = _run_line(sys.executable, tmp_path, evaluate=everything)
    versions = f"transformers {here['version']} (here) and {there['version']} ({OTHER_PYTHON})"
    for directory in (this, other):
        for name, tensor in _weights(Path(directory)).items():
            assert torch.equal(tensor, _weights(Path(this))[name]), (name, versions)
    reference = here["outputs"][this]
    for directory in everything:
        for line in (here, there):
            got = line["outputs"][directory]
            where = f"{directory} on transformers {line['version']} ({versions})"
            assert got["size"] == reference["size"], where
            assert got["special"] == reference["special"], where
            assert got["mask_lstrip"] is True, where
            for text, want, out in zip(TEXTS, reference["texts"], got["texts"]):
                assert out["ids"] == want["ids"], (text, where)
                torch.testing.assert_close(
                    torch.tensor(out["hidden"]), torch.tensor(want["hidden"]),
                    rtol=0, atol=1e-6, msg=f"{text!r}: {where}",
                )
