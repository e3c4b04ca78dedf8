"""Tokenizers that don't fit their model are refused when the encoder or the
fill-mask head is initialized or loaded, with an error naming the problem and
the fix, instead of a silent wrong answer (no mask token: ``[]`` for every
``<mask>``) or a crash on the first doc with an added token (IndexError)."""
import shutil
from pathlib import Path

import pytest
import spacy

from spacy_xlmr.load import from_huggingface

from .util import make_nlp

ADDED = "Zorglub"


def _copy_with_tokenizer(checkpoint: Path, output: Path, **tokenizer_kwargs) -> Path:
    """``checkpoint``'s files with its tokenizer saved again with
    ``tokenizer_kwargs`` (e.g. ``mask_token=None``)."""
    from transformers import AutoTokenizer

    shutil.copytree(checkpoint, output)
    AutoTokenizer.from_pretrained(checkpoint, **tokenizer_kwargs).save_pretrained(output)
    return output


def _add_tokens_to_saved_encoder(directory: Path, *, resize: bool = False) -> None:
    """Add ``ADDED`` to the tokenizer of a saved HF directory, with or without
    resizing the embeddings as ``transformers`` asks."""
    from transformers import AutoTokenizer, XLMRobertaModel

    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert tokenizer.add_tokens([ADDED]) == 1
    tokenizer.save_pretrained(directory)
    if resize:
        model = XLMRobertaModel.from_pretrained(directory, add_pooling_layer=False)
        model.resize_token_embeddings(len(tokenizer))
        model.save_pretrained(directory)


@pytest.fixture(scope="module")
def added_tokens_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny encoder with a token added to the tokenizer only."""
    output = tmp_path_factory.mktemp("added-tokens") / "ckpt"
    shutil.copytree(tiny_checkpoint, output)
    _add_tokens_to_saved_encoder(output)
    return output


def test_tokenizer_larger_than_embeddings_is_refused_at_initialize(added_tokens_checkpoint):
    nlp = make_nlp(added_tokens_checkpoint)
    with pytest.raises(ValueError) as err:
        nlp.initialize()
    message = str(err.value)
    assert str(added_tokens_checkpoint) in message
    assert "8003 tokens" in message and "8002 rows" in message
    assert ADDED in message and "resize_token_embeddings" in message


def test_tokenizer_larger_than_embeddings_is_refused_at_load(tiny_checkpoint, tmp_path):
    nlp = make_nlp(tiny_checkpoint)
    nlp.initialize()
    nlp.to_disk(tmp_path / "pipeline")
    _add_tokens_to_saved_encoder(tmp_path / "pipeline" / "transformer" / "model")
    with pytest.raises(ValueError, match="resize_token_embeddings") as err:
        spacy.load(tmp_path / "pipeline")
    assert "8003 tokens" in str(err.value) and "8002 rows" in str(err.value)


def test_added_tokens_with_resized_embeddings_work(tiny_checkpoint, tmp_path):
    checkpoint = tmp_path / "resized"
    shutil.copytree(tiny_checkpoint, checkpoint)
    _add_tokens_to_saved_encoder(checkpoint, resize=True)
    nlp = make_nlp(checkpoint)
    nlp.initialize()
    doc = nlp(f"Hello {ADDED} world")
    assert ADDED in doc._.trf_data.wordpieces.strings[0]


def test_checkpoint_without_mask_token_is_refused_by_fill_mask(masked_lm_checkpoint, tmp_path):
    checkpoint = _copy_with_tokenizer(masked_lm_checkpoint, tmp_path / "ckpt", mask_token=None)
    with pytest.raises(ValueError) as err:
        from_huggingface(str(checkpoint), "fill-mask")
    message = str(err.value)
    assert message.startswith("[fill_mask]")
    assert "no mask token" in message and "mask_token=\"<mask>\"" in message
    # Other heads don't need one.
    make_nlp(checkpoint).initialize()


def test_saved_pipeline_without_mask_token_is_refused_at_load(masked_lm_checkpoint, tmp_path):
    nlp = from_huggingface(str(masked_lm_checkpoint), "fill-mask")
    nlp.to_disk(tmp_path / "pipeline")
    model_dir = tmp_path / "pipeline" / "transformer" / "model"
    shutil.rmtree(model_dir)
    _copy_with_tokenizer(masked_lm_checkpoint, model_dir, mask_token=None)
    with pytest.raises(ValueError, match=r"\[fill_mask\].*no mask token"):
        spacy.load(tmp_path / "pipeline")


def test_mask_token_other_than_mask_is_refused(masked_lm_checkpoint, tmp_path):
    """Masks are written "<mask>" in the text: a tokenizer whose mask token is
    another string would find none."""
    from transformers import AutoTokenizer, XLMRobertaForMaskedLM

    checkpoint = tmp_path / "ckpt"
    tokenizer = AutoTokenizer.from_pretrained(masked_lm_checkpoint, mask_token="[MASK]")
    model = XLMRobertaForMaskedLM.from_pretrained(masked_lm_checkpoint)
    model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    with pytest.raises(ValueError, match=r"\[fill_mask\].*'\[MASK\]'.*'<mask>'"):
        from_huggingface(str(checkpoint), "fill-mask")
