"""Sequence classification: the head of ``XLMRobertaForSequenceClassification``.

``SequenceClassificationHead`` has the Hugging Face parameter names
(``classifier.dense.*``, ``classifier.out_proj.*``) and computes the same
function (dropout → dense → tanh → dropout → out_proj), applied to one vector
per doc from ``doc_pooler``.
"""
from typing import Callable, List, Tuple

import torch
from spacy.tokens import Doc
from thinc.api import Model, chain
from thinc.types import Floats2d, Ints1d

from ..encoder.data import TransformerData, hidden_states, make_trf_data
from ..encoder.listener import XLMRListener
from ..errors import Errors
from .torch_head import torch_head

HEAD_WEIGHT_PREFIXES = ("classifier.",)
POOLINGS = ("cls", "mean")


class ClassificationHead(torch.nn.Module):
    """HF's ``XLMRobertaClassificationHead``, on an already pooled vector."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dense = torch.nn.Linear(hidden_size, hidden_size)
        self.dropout = torch.nn.Dropout(dropout)
        self.out_proj = torch.nn.Linear(hidden_size, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.dense(self.dropout(pooled)))
        return self.out_proj(self.dropout(hidden))


class SequenceClassificationHead(torch.nn.Module):
    """Wraps ``ClassificationHead`` as ``classifier``, like the HF model."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.classifier = ClassificationHead(hidden_size, num_labels, dropout)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled)


def build_sequence_classifier(
    pooling: str = "cls",
    dropout: float = 0.1,
    grad_factor: float = 1.0,
    upstream: str = "*",
) -> Model[List[Doc], Floats2d]:
    """``SequenceClassifier.v2`` with its listener built in (``upstream``:
    the encoder component's name, or "*"); kept for saved configs."""
    return build_sequence_classifier_v2(
        XLMRListener(upstream_name=upstream), pooling, dropout, grad_factor
    )


def build_sequence_classifier_v2(
    tok2vec: Model[List[Doc], List[TransformerData]],
    pooling: str = "cls",
    dropout: float = 0.1,
    grad_factor: float = 1.0,
) -> Model[List[Doc], Floats2d]:
    """One row of label logits per doc, from the encoder output ``tok2vec``
    gives (``spacy-xlmr.EncoderOutput.v1``; ``nlp.replace_listeners`` makes it
    the component's own encoder).

    pooling (str): "cls" — the ``<s>`` vector, as HF sequence classifiers are
        trained (averaged over the windows of a long doc); "mean" — the mean
        of all the doc's piece vectors.
    grad_factor (float): Scale of the gradient sent to the encoder.
    """
    if pooling not in POOLINGS:
        raise ValueError(
            Errors.UNKNOWN_POOLING.format(pooling=pooling, poolings=", ".join(POOLINGS))
        )
    pooler = doc_pooler(pooling, grad_factor)
    head = torch_head("sequence_classification_head", dropout)
    model: Model[List[Doc], Floats2d] = chain(tok2vec, pooler, head)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("listener", tok2vec)
    model.set_ref("head", head)
    return model


def doc_pooler(pooling: str, grad_factor: float) -> Model[List[TransformerData], Floats2d]:
    """One vector per doc from its encoder output (see build_sequence_classifier)."""
    return Model(
        f"doc_pooler_{pooling}",
        _pool_forward,
        attrs={"pooling": pooling, "grad_factor": grad_factor},
    )


def _pooled_rows(trf_data: TransformerData, pooling: str, xp) -> Ints1d:
    hidden = hidden_states(trf_data)
    n_windows, seq_len = hidden.shape[:2]
    if pooling == "mean" and trf_data.align.dataXd.size:
        return xp.unique(xp.asarray(trf_data.align.dataXd))
    return xp.arange(n_windows) * seq_len  # each window's <s>


def _pool_forward(
    model: Model, trf_datas: List[TransformerData], is_train: bool
) -> Tuple[Floats2d, Callable]:
    xp = model.ops.xp
    pooling = model.attrs["pooling"]
    rows = [_pooled_rows(trf_data, pooling, xp) for trf_data in trf_datas]
    width = trf_datas[0].width if trf_datas else 0
    Y = model.ops.alloc2f(len(trf_datas), width)
    for i, trf_data in enumerate(trf_datas):
        flat = model.ops.reshape2f(hidden_states(trf_data), -1, width)
        Y[i] = flat[rows[i]].mean(axis=0)

    def backprop(dY: Floats2d) -> List[TransformerData]:
        d_trf_datas = []
        for i, trf_data in enumerate(trf_datas):
            shape = hidden_states(trf_data).shape
            d_flat = model.ops.alloc2f(shape[0] * shape[1], width)
            d_flat[rows[i]] = dY[i] * (model.attrs["grad_factor"] / len(rows[i]))
            d_hidden = model.ops.reshape3f(d_flat, *shape)
            d_trf_datas.append(make_trf_data(trf_data.wordpieces, d_hidden, trf_data.align))
        return d_trf_datas

    return Y, backprop
