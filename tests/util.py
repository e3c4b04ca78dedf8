"""Helpers the tests import (fixtures and hooks stay in conftest.py)."""
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

import pytest
import spacy
import torch
from thinc.api import Model

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
