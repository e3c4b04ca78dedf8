"""freeze_embeddings and frozen_layers: those weights don't train, the rest
of the encoder does."""
from pathlib import Path

import pytest
import spacy
import torch
from spacy.training import Example

from spacy_xlmr.convert import read_iob2

from ..util import make_nlp

DATA = Path(__file__).parents[2] / "data" / "ner" / "uner-pt"


def _examples():
    nlp = spacy.blank("xx")
    docs = list(read_iob2(DATA / "train.iob2", nlp.vocab, limit=16))
    return [Example(nlp.make_doc(doc.text), doc) for doc in docs]


def _weights(transformer):
    return {name: p.detach().clone() for name, p in transformer.named_parameters()}


@pytest.mark.parametrize("factory", ["xlmr_ner", "xlmr_fill_mask"])
def test_frozen_parts_keep_their_weights(tiny_checkpoint, factory):
    examples = _examples()
    nlp = make_nlp(tiny_checkpoint, freeze_embeddings=True, frozen_layers=1)
    nlp.add_pipe(factory)
    optimizer = nlp.initialize(lambda: examples)
    transformer = nlp.get_pipe("transformer").encoder.torch_module
    assert len(transformer.encoder.layer) > 1
    before = _weights(transformer)
    for _ in range(2):
        nlp.update(examples, sgd=optimizer)
    after = _weights(transformer)
    frozen = [n for n in before if n.startswith(("embeddings.", "encoder.layer.0."))]
    trained = [n for n in before if n.startswith("encoder.layer.1.")]
    assert frozen and trained
    assert all(torch.equal(before[n], after[n]) for n in frozen)
    assert all(not torch.equal(before[n], after[n]) for n in trained if "LayerNorm" not in n)


def test_nothing_left_to_train_is_refused(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint, freeze_embeddings=True, frozen_layers=99)
    with pytest.raises(ValueError, match=r"frozen_layers \(99\) leaves nothing.*frozen_components"):
        nlp.initialize()
    with pytest.raises(ValueError, match="frozen_layers must be 0 or more"):
        make_nlp(tiny_checkpoint, frozen_layers=-1)
