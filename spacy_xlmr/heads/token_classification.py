"""Token classification: the head of ``XLMRobertaForTokenClassification``.

``TokenClassificationHead`` has the same parameter names as the Hugging Face
class minus the ``roberta.`` encoder (``classifier.weight``,
``classifier.bias``), so a fine-tuned checkpoint's head loads as it is.
"""
from typing import List

import torch
from spacy.tokens import Doc
from thinc.api import Model, chain, with_array
from thinc.types import Floats2d

from .torch_head import torch_head

HEAD_WEIGHT_PREFIXES = ("classifier.",)


class TokenClassificationHead(torch.nn.Module):
    """Dropout and a linear layer over token vectors, as in HF."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))


def build_token_classifier(
    tok2vec: Model[List[Doc], List[Floats2d]], dropout: float = 0.1
) -> Model[List[Doc], List[Floats2d]]:
    """Per-token logits from a linear head over ``tok2vec``'s token vectors
    (with ``spacy-xlmr.reduce_first.v1`` pooling: each token's first piece,
    which is how HF token-classification heads are trained). ``tok2vec`` is
    a listener architecture: ``chain(encoder output, pooling)``.

    The torch head is built (``build_head_module``) when the component is
    initialized or loaded, once the encoder width and the tags are known.
    """
    head = torch_head("token_classification_head", dropout)
    model: Model[List[Doc], List[Floats2d]] = chain(tok2vec, with_array(head))
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("head", head)
    return model
