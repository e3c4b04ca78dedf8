"""spacy-transformers' ``transformer`` options on ``xlmr_transformer``:
``max_batch_items`` (the encoder's ``max_batch_pieces``) and
``set_extra_annotations`` (its callback contract, with a null default that
needs no spacy-transformers)."""
import pytest
import spacy
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Config

from spacy_xlmr.encoder.data import SPACY_TRANSFORMERS, TransformerData

from .util import assert_encoded, make_nlp

CONFIG = """
[nlp]
lang = "xx"
pipeline = ["transformer"]

[components]

[components.transformer]
factory = "xlmr_transformer"
max_batch_items = 4096

[components.transformer.set_extra_annotations]
@annotation_setters = "spacy-transformers.null_annotation_setter.v1"

[components.transformer.model]
@architectures = "spacy-xlmr.Encoder.v1"
name = "{name}"
"""


def _encoder_model(nlp):
    return nlp.get_pipe("transformer").model


def test_max_batch_items_is_the_encoders_max_batch_pieces(tiny_checkpoint):
    nlp = spacy.blank("xx")
    nlp.add_pipe("xlmr_transformer", name="transformer",
                 config={"max_batch_items": 1024, "model": {"name": str(tiny_checkpoint)}})
    assert _encoder_model(nlp).attrs["max_batch_pieces"] == 1024
    assert _encoder_model(make_nlp(tiny_checkpoint)).attrs["max_batch_pieces"] == 4096
    nlp.initialize()
    assert_encoded(nlp("Maria mora em Lisboa."))


def test_max_batch_items_against_another_max_batch_pieces_is_an_error(tiny_checkpoint):
    config = {"max_batch_items": 1024, "model": {"name": str(tiny_checkpoint),
                                                 "max_batch_pieces": 2048}}
    with pytest.raises(ValueError) as err:
        spacy.blank("xx").add_pipe("xlmr_transformer", name="transformer", config=config)
    assert str(err.value) == (
        "[transformer] max_batch_items (1024) is spacy-transformers' name for the "
        "encoder model's max_batch_pieces, which the config sets to 2048: keep one of them."
    )
    config["model"]["max_batch_pieces"] = 1024  # the same budget twice is fine
    spacy.blank("xx").add_pipe("xlmr_transformer", name="transformer", config=config)


def test_max_batch_items_below_a_window_is_an_error(tiny_checkpoint):
    config = {"max_batch_items": 128, "model": {"name": str(tiny_checkpoint)}}
    with pytest.raises(ValueError, match=r"max_batch_items \(128\), the encoder's "
                                         r"max_batch_pieces, must hold at least one full "
                                         r"window \(512 positions"):
        spacy.blank("xx").add_pipe("xlmr_transformer", name="transformer", config=config)


def test_a_spacy_transformers_config_loads_with_or_without_it(tiny_checkpoint, tmp_path):
    """Its component options and null annotation setter, by its names."""
    config = Config().from_str(CONFIG.replace("{name}", str(tiny_checkpoint)))
    nlp = spacy.util.load_model_from_config(config, auto_fill=True)
    nlp.initialize()
    doc = nlp("Maria mora em Lisboa.")
    assert_encoded(doc)
    nlp.to_disk(tmp_path / "pipe")
    assert spacy.load(tmp_path / "pipe")("Maria mora em Lisboa.")._.trf_data is not None


def test_set_extra_annotations_gets_docs_and_the_batch_after_trf_data(tiny_checkpoint):
    name = "test-spacy-xlmr.piece_counts.v1"
    if not Doc.has_extension("piece_counts"):
        Doc.set_extension("piece_counts", default=None)

    def piece_counts(docs, trf_data):
        # spacy-transformers' documented example reads trf_data.doc_data.
        for doc, data in zip(docs, trf_data.doc_data):
            assert doc._.trf_data is data and isinstance(data, TransformerData)
            doc._.piece_counts = sum(data.wordpieces.lengths)

    registry.annotation_setters.register(name, func=lambda: piece_counts)
    nlp = make_nlp(tiny_checkpoint)
    nlp.replace_pipe("transformer", "xlmr_transformer", config={
        "model": {"name": str(tiny_checkpoint)},
        "set_extra_annotations": {"@annotation_setters": name},
    })
    nlp.initialize()
    docs = list(nlp.pipe(["Maria mora em Lisboa.", ""]))
    assert docs[0]._.piece_counts > len(docs[0]) and docs[1]._.piece_counts == 0


def test_the_default_setter_is_spacy_xlmrs_null_setter(tiny_checkpoint):
    config = make_nlp(tiny_checkpoint).config["components"]["transformer"]
    assert config["set_extra_annotations"] == {
        "@annotation_setters": "spacy-xlmr.null_annotation_setter.v1"
    }
    assert config["max_batch_items"] is None


@pytest.mark.skipif(not SPACY_TRANSFORMERS, reason="needs spacy-transformers")
def test_a_spacy_transformers_model_names_the_settings_to_use():
    model = {
        "@architectures": "spacy-transformers.TransformerModel.v3",
        "name": "xlm-roberta-base",
        "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 128,
                      "stride": 96},
    }
    with pytest.raises(ValueError) as err:
        spacy.blank("xx").add_pipe("xlmr_transformer", config={"model": model})
    message = str(err.value)
    assert message.startswith('[xlmr_transformer] xlmr_transformer needs the model '
                              '@architectures = "spacy-xlmr.Encoder.v1"')
    assert "get_spans (strided_spans window/stride, in tokens) -> window_size/stride" in message
