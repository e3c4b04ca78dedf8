"""Adapted from spacy-transformers 1.4.0,
``tests/regression/test_spacy_issue6401.py`` (MIT, Copyright (c) 2019
ExplosionAI GmbH; see NOTICE in the parent folder).

Changed: the encoder is ``xlmr_transformer`` over the tiny checkpoint instead
of ``transformer`` over ``distilbert-base-uncased``; the test runs with the
config's listener as written for spacy-transformers and with
``spacy-xlmr.TransformerListener.v1``.
"""
import pytest
import spacy
from spacy.training.example import Example
from spacy.util import make_tempdir
from spacy import util

from ..util import LISTENER, SPACY_TRANSFORMERS_LISTENER, load_config


TRAIN_DATA = [
    ("I'm so happy.", {"cats": {"POSITIVE": 1.0, "NEGATIVE": 0.0}}),
    ("I'm so angry", {"cats": {"POSITIVE": 0.0, "NEGATIVE": 1.0}}),
]


cfg_string = """
    [nlp]
    lang = "en"
    pipeline = ["transformer","textcat"]

    [components]

    [components.textcat]
    factory = "textcat"

    [components.textcat.model]
    @architectures = "spacy.TextCatEnsemble.v2"

    [components.textcat.model.tok2vec]
    @architectures = "spacy-transformers.TransformerListener.v1"
    grad_factor = 1.0

    [components.textcat.model.tok2vec.pooling]
    @layers = "reduce_mean.v1"

    [components.transformer]
    factory = "xlmr_transformer"

    [components.transformer.model]
    name = "TINY_CHECKPOINT"
    """


@pytest.mark.parametrize("listener", [SPACY_TRANSFORMERS_LISTENER, LISTENER])
def test_transformer_pipeline_textcat(tiny_checkpoint, listener):
    """Test that a pipeline with just a transformer+textcat runs and trains properly.
    This used to throw an error because of shape inference issues -
    cf https://github.com/explosion/spaCy/issues/6401"""
    orig_config = load_config(cfg_string, tiny_checkpoint)
    orig_config["components"]["textcat"]["model"]["tok2vec"]["@architectures"] = listener
    nlp = util.load_model_from_config(orig_config, auto_fill=True, validate=True)
    assert nlp.pipe_names == ["transformer", "textcat"]
    train_examples = []

    for text, annotations in TRAIN_DATA:
        train_examples.append(Example.from_dict(nlp.make_doc(text), annotations))
    optimizer = nlp.initialize(get_examples=lambda: train_examples)

    for i in range(2):
        losses = {}
        nlp.update(train_examples, sgd=optimizer, losses=losses)

    doc = nlp("We're interested at underwater basket weaving.")
    cats1 = doc.cats

    # ensure IO goes OK
    with make_tempdir() as d:
        file_path = d / "trained_nlp"
        nlp.to_disk(file_path)
        nlp2 = spacy.load(file_path)
        doc2 = nlp2("We're interested at underwater basket weaving.")
        cats2 = doc2.cats
        # Compare floating point values with tolerance for small numerical differences
        assert len(cats1) == len(cats2)
        for key in cats1:
            assert key in cats2
            assert abs(cats1[key] - cats2[key]) < 1e-5, (
                f"Values for '{key}' differ: {cats1[key]} vs {cats2[key]}"
            )
