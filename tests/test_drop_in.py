"""Drop-in workflows of spacy-transformers' ``transformer``: loading with
components left out, empty docs, saving before ``initialize``."""
import pytest
import spacy

from .conftest import make_nlp

# Head factory -> labels to initialize it with (None: it needs none).
HEADS = {
    "xlmr_ner": ["PER", "LOC"],
    "xlmr_textcat": ["A", "B"],
    "xlmr_fill_mask": None,
    "xlmr_qa": None,
}


def _pipeline(tiny_checkpoint, factory):
    nlp = make_nlp(tiny_checkpoint)
    head = nlp.add_pipe(factory, name="head")
    for label in HEADS[factory] or []:
        head.add_label(label)
    nlp.initialize()
    return nlp


@pytest.mark.parametrize("factory", sorted(HEADS))
def test_load_without_the_encoder_says_what_is_missing(tiny_checkpoint, tmp_path, factory):
    """spacy.load(path, exclude=["transformer"]) of a pipeline whose head
    listens to the encoder is an error naming the encoder and the fixes,
    instead of a pipeline with an empty encoder added for the head."""
    _pipeline(tiny_checkpoint, factory).to_disk(tmp_path / "pipe")
    with pytest.raises(ValueError) as err:
        spacy.load(tmp_path / "pipe", exclude=["transformer"])
    message = str(err.value)
    assert message.startswith("[head] This component listens to the XLM-R encoder")
    assert 'exclude=["transformer"]' in message
    assert "don't exclude 'transformer'" in message
    assert 'nlp.replace_listeners("transformer", "head"' in message


def test_from_bytes_without_the_encoder_says_what_is_missing(tiny_checkpoint):
    data = _pipeline(tiny_checkpoint, "xlmr_ner").to_bytes()
    nlp = spacy.blank("xx")
    nlp.add_pipe("xlmr_ner", name="head")  # adds an encoder for it
    with pytest.raises(ValueError, match=r"\[head\] This component listens to the XLM-R"):
        nlp.from_bytes(data, exclude=["transformer"])


def test_load_with_the_encoder_disabled_or_only_the_encoder(tiny_checkpoint, tmp_path):
    _pipeline(tiny_checkpoint, "xlmr_ner").to_disk(tmp_path / "pipe")
    nlp = spacy.load(tmp_path / "pipe", disable=["transformer"])
    nlp.enable_pipe("transformer")
    assert nlp("Maria mora em Lisboa.")._.trf_data is not None
    nlp = spacy.load(tmp_path / "pipe", exclude=["head"])
    assert nlp.pipe_names == ["transformer"]
    # A head added to a blank pipeline, and its encoder, load from a saved one.
    nlp = spacy.blank("xx")
    nlp.add_pipe("xlmr_ner", name="head")
    nlp.from_disk(tmp_path / "pipe")
    assert nlp("Maria mora em Lisboa.")._.trf_data is not None
