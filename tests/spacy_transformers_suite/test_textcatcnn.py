"""Adapted from spacy-transformers 1.4.0, ``tests/test_textcatcnn.py`` (MIT,
Copyright (c) 2019 ExplosionAI GmbH; see NOTICE in this folder).

Changed: the inline ``spacy-transformers.Tok2VecTransformer.v1`` over
``roberta-base`` is spacy-xlmr's ``INLINE_ENCODER`` over ``spacy-xlmr.Encoder.v1``
and the tiny checkpoint (``tokenizer_config`` left out; ``strided_spans``
become ``window_size``/``stride``).
"""
import pytest
from packaging.version import Version

from spacy.training.example import Example
from spacy import util
import thinc

from .util import load_config

# fmt: off
cfg_string = """
    [nlp]
    lang = "en"
    pipeline = ["textcat"]

    [components]

    [components.textcat]
    factory = "textcat"

    [components.textcat.model]
    @architectures = "spacy.TextCatCNN.v2"
    nO = null
    exclusive_classes = false

    [components.textcat.model.tok2vec]
    @architectures = "INLINE_ENCODER"
    grad_factor = 1.0

    [components.textcat.model.tok2vec.encoder]
    @architectures = "spacy-xlmr.Encoder.v1"
    name = "TINY_CHECKPOINT"
    window_size = 256
    stride = 224

    [components.textcat.model.tok2vec.pooling]
    @layers = "reduce_mean.v1"
    """
# fmt: on


# TODO: remove skip after requiring spacy>=3.5.1 or at the very latest, after
# dropping python 3.7 switch to importlib.metadata.version("thinc")
@pytest.mark.skipif(
    Version(thinc.__version__) < Version("8.1.8"), reason="Requires thinc>=8.1.8"
)
def test_textcatcnn(tiny_checkpoint):
    orig_config = load_config(cfg_string, tiny_checkpoint)
    nlp = util.load_model_from_config(orig_config, auto_fill=True, validate=True)
    assert nlp.pipe_names == ["textcat"]

    textcat = nlp.get_pipe("textcat")
    assert textcat.is_resizable is True

    train_examples = []
    doc = nlp.make_doc("ok")
    doc.cats["X"] = 1.0
    doc.cats["Y"] = 0.0
    train_examples.append(Example(doc, doc))

    nlp.initialize(lambda: train_examples)
