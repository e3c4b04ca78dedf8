"""Extractive question answering: the head of
``XLMRobertaForQuestionAnswering``.

``QuestionAnsweringHead`` has HF's parameter names (``qa_outputs.weight``,
``qa_outputs.bias``): start and end logits for every position. The head reads
question/context pairs (``qa/pairs.py``), which the encoder component's
output of the doc alone can't give, so it runs the weights of the pipeline's
shared encoder over the pairs itself: one copy of the encoder in memory,
trained by every head.
"""
from typing import Any, Callable, List, Sequence, Tuple

import torch
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats1d

from ..encoder.data import TransformerData
from ..encoder.listener import XLMRListener, encoder_of
from ..errors import Errors
from ..qa.pairs import PairWindow
from .torch_head import torch_head

HEAD_WEIGHT_PREFIXES = ("qa_outputs.",)


class QuestionAnsweringHead(torch.nn.Module):
    """A linear layer giving each position a start and an end logit."""

    def __init__(self, hidden_size: int, num_labels: int = 2, dropout: float = 0.0):
        super().__init__()
        self.qa_outputs = torch.nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.qa_outputs(hidden)


def build_question_answerer(upstream: str = "*") -> Model:
    """``QuestionAnswerer.v2`` with its listener built in (``upstream``: the
    encoder component's name, or "*"); kept for saved configs."""
    return build_question_answerer_v2(XLMRListener(upstream_name=upstream))


def build_question_answerer_v2(tok2vec: Model[List[Doc], List[TransformerData]]) -> Model:
    """Start and end logits of question/context pairs, from the weights of
    the encoder ``tok2vec`` connects to (``spacy-xlmr.EncoderOutput.v1``;
    ``nlp.replace_listeners`` makes it the component's own encoder).

    The model isn't called on docs: the component passes the pair windows to
    ``qa_logits``. The torch head is built when the component is initialized
    or loaded.
    """
    if isinstance(tok2vec, XLMRListener):
        # The head encodes pairs itself: no training output of the doc for it.
        tok2vec.wants_training_output = False
    head = torch_head("question_answering_head", 0.0)
    model: Model[Any, Any] = Model("question_answerer", _refuse_docs, layers=[tok2vec, head])
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("listener", tok2vec)
    model.set_ref("head", head)
    return model


def qa_logits(
    model: Model, windows: Sequence[PairWindow], is_train: bool
) -> Tuple[List[Tuple[Floats1d, Floats1d]], Callable[[List[Tuple[Floats1d, Floats1d]]], None]]:
    """Encode the pair windows with the shared encoder and score each
    position as the start and the end of the answer.

    RETURNS: ``(start_logits, end_logits)`` per window, and a callback taking
    their gradients back into the head and the encoder.
    """
    hiddens, backprop_encoder = encoder_of(model).encode_windows([w.ids for w in windows], is_train)
    ops = model.ops
    if not hiddens:
        return [], lambda d_logits: None
    flat = ops.xp.concatenate(hiddens)
    logits, backprop_head = model.get_ref("head")(flat, is_train)
    bounds = ops.xp.cumsum(ops.asarray1i([0] + [len(h) for h in hiddens]))
    outputs = [
        (logits[start:end, 0], logits[start:end, 1])
        for start, end in zip(bounds[:-1], bounds[1:])
    ]

    def backprop(d_outputs: List[Tuple[Floats1d, Floats1d]]) -> None:
        d_logits = ops.alloc2f(*logits.shape)
        for (d_start, d_end), start, end in zip(d_outputs, bounds[:-1], bounds[1:]):
            d_logits[start:end, 0] = d_start
            d_logits[start:end, 1] = d_end
        d_flat = backprop_head(d_logits)
        backprop_encoder([d_flat[start:end] for start, end in zip(bounds[:-1], bounds[1:])])

    return outputs, backprop


def _refuse_docs(model: Model, docs, is_train: bool):
    raise ValueError(Errors.QA_MODEL_GIVEN_DOCS)
