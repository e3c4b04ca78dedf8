"""Adapted from spacy-transformers 1.4.0,
``tests/regression/test_spacy_issue7029.py`` (MIT, Copyright (c) 2019
ExplosionAI GmbH; see NOTICE in the parent folder).

Changed: the encoder is ``xlmr_transformer`` over the tiny checkpoint instead
of ``transformer`` over ``distilbert-base-uncased``; the test runs with the
config's listener as written for spacy-transformers and with
``spacy-xlmr.TransformerListener.v1``. The latter refuses, on purpose, the
docs of a pipeline whose encoder is disabled (README: "spaCy's own components
with spacy-transformers' own listener ... predict from zeros"), hence xfail.
"""
import pytest
from spacy.lang.en import English
from spacy.training import Example

from spacy_xlmr.encoder.data import SPACY_TRANSFORMERS

from ..util import LISTENER, SPACY_TRANSFORMERS_LISTENER, load_config

# The test's second half runs the tagger with the encoder disabled.
REFUSES_DOCS_WITHOUT_TRF_DATA = (
    "by design, spacy-xlmr's listener raises an error on docs without "
    "doc._.trf_data (encoder disabled) where spacy-transformers' predicts from zeros"
)

CONFIG = """
[nlp]
lang = "en"
pipeline = ["transformer", "tagger"]

[components]

[components.transformer]
factory = "xlmr_transformer"

[components.transformer.model]
name = "TINY_CHECKPOINT"

[components.tagger]
factory = "tagger"

[components.tagger.model]
@architectures = "spacy.Tagger.v1"
nO = null

[components.tagger.model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0

[components.tagger.model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""


TRAIN_DATA = [
    ("I like green eggs", {"tags": ["N", "V", "J", "N"]}),
    ("", {}),
    ("Eat blue ham", {"tags": ["V", "J", "N"]}),
]


@pytest.mark.parametrize("listener", [
    # spacy-xlmr's listener under this name when spacy-transformers isn't installed
    pytest.param(SPACY_TRANSFORMERS_LISTENER, marks=pytest.mark.xfail(
        not SPACY_TRANSFORMERS, strict=True, raises=ValueError,
        reason=REFUSES_DOCS_WITHOUT_TRF_DATA,
    )),
    pytest.param(LISTENER, marks=pytest.mark.xfail(
        strict=True, raises=ValueError, reason=REFUSES_DOCS_WITHOUT_TRF_DATA,
    )),
])
def test_empty_doc(tiny_checkpoint, listener):
    """Test that an empty document gets processed correctly"""
    config = load_config(CONFIG, tiny_checkpoint)
    config["components"]["tagger"]["model"]["tok2vec"]["@architectures"] = listener
    nlp = English.from_config(config)
    train_examples = []
    for t in TRAIN_DATA:
        train_examples.append(Example.from_dict(nlp.make_doc(t[0]), t[1]))
    optimizer = nlp.initialize(get_examples=lambda: train_examples)
    for i in range(2):
        losses = {}
        nlp.update(train_examples, sgd=optimizer, losses=losses)
    texts = ["first", "second", "third", "fourth", "and", "then", "some", ""]

    # run as normal
    nlp.select_pipes(enable=["transformer", "tagger"])
    docs1 = list(nlp.pipe(texts, batch_size=1))
    docs2 = list(nlp.pipe(texts, batch_size=4))
    assert [doc[0].tag_ for doc in docs1[:-1]] == [doc[0].tag_ for doc in docs2[:-1]]

    # disable the transformer (the listener will produce random output)
    nlp.select_pipes(enable=["tagger"])
    docs1 = list(nlp.pipe(texts, batch_size=1))
    docs2 = list(nlp.pipe(texts, batch_size=4))
    assert [doc[0].tag_ for doc in docs1[:-1]] == [doc[0].tag_ for doc in docs2[:-1]]
