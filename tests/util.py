"""Helpers the tests import (fixtures and hooks stay in conftest.py)."""
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc
from thinc.api import Model

from spacy_xlmr.encoder.data import hidden_states

NER_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
TOPICS = ["science/technology", "travel", "politics", "sports", "health"]


def make_nlp(checkpoint: Path, *, lang: str = "xx", **encoder_config):
    """A blank pipeline with the encoder loaded from ``checkpoint``."""
    nlp = spacy.blank(lang)
    config = {"model": {"name": str(checkpoint), **encoder_config}}
    nlp.add_pipe("xlmr_transformer", name="transformer", config=config)
    return nlp


@contextmanager
def count_encoder_calls(nlp) -> Iterator[List[int]]:
    """Record the number of docs of every forward pass of ``nlp``'s encoder
    model (its ``predict`` and ``begin_update``, through which the component
    runs it)."""
    encoder = nlp.get_pipe("transformer").model
    calls: List[int] = []

    def counting(method):
        def run(model, docs):
            if model is encoder:
                calls.append(len(docs))
            return method(model, docs)

        return run

    with pytest.MonkeyPatch.context() as patch:
        for name in ("predict", "begin_update"):
            patch.setattr(Model, name, counting(getattr(Model, name)))
        yield calls


def no_dropout(module: torch.nn.Module) -> torch.nn.Module:
    """Turn off every dropout of a torch module in training mode, including
    the SDPA attention's ``dropout_prob``, so that runs can be compared."""
    for layer in module.modules():
        if isinstance(layer, torch.nn.Dropout):
            layer.p = 0.0
        if hasattr(layer, "dropout_prob"):
            layer.dropout_prob = 0.0
    return module


def assert_encoded(doc: Doc, width: Optional[int] = None) -> None:
    """Assert that an encoder ran on ``doc``: ``doc._.trf_data`` aligns each
    token to rows of its finite hidden states (of ``width``, if given), and
    every token of a non-empty text to at least one piece."""
    trf_data = doc._.trf_data
    assert trf_data is not None, "the encoder didn't run on this doc"
    hidden = numpy.asarray(hidden_states(trf_data))
    assert hidden.ndim == 3 and hidden.shape[0] == len(trf_data.wordpieces)
    assert numpy.isfinite(hidden).all()
    if width is not None:
        assert hidden.shape[2] == width
    lengths = numpy.asarray(trf_data.align.lengths)
    rows = numpy.asarray(trf_data.align.dataXd)
    assert lengths.shape == (len(doc),)
    assert rows.size == 0 or 0 <= rows.min() <= rows.max() < hidden.shape[0] * hidden.shape[1]
    assert all(length > 0 for token, length in zip(doc, lengths) if not token.is_space)
