"""Token classification: the head of ``XLMRobertaForTokenClassification``.

``TokenClassificationHead`` has the same parameter names as the Hugging Face
class minus the ``roberta.`` encoder (``classifier.weight``,
``classifier.bias``), so a fine-tuned checkpoint's head loads as it is.
"""
from typing import Dict, List, Optional

import torch
from spacy.tokens import Doc
from thinc.api import Model, PyTorchWrapper_v2, chain, with_array
from thinc.types import Floats2d

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
    tok2vec: Model[List[Doc], List[Floats2d]],
    nO: Optional[int] = None,
    dropout: float = 0.1,
) -> Model[List[Doc], List[Floats2d]]:
    """Per-token logits from a linear head over ``tok2vec``'s token vectors
    (with ``spacy-xlmr.reduce_first.v1`` pooling: each token's first piece,
    which is how HF token-classification heads are trained).

    The torch head is created by ``build_head`` when the component is
    initialized or loaded, once the encoder width and the tags are known.
    """
    head = Model(
        "token_classification_head",
        _head_forward,
        dims={"nI": None, "nO": nO},
        attrs={"dropout": dropout},
    )
    model = chain(tok2vec, with_array(head))
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("head", head)
    return model


def _head_forward(model: Model, X: Floats2d, is_train: bool):
    if not model.layers:
        raise ValueError(
            "The token classification head isn't built yet: initialize the "
            "component (nlp.initialize()) or load a trained pipeline."
        )
    return model.layers[0](X, is_train)


def build_head(
    model: Model, width: int, n_labels: int, *, keep_weights: bool = False
) -> None:
    """(Re)create the torch head of a token classifier for ``n_labels``
    outputs. With ``keep_weights``, existing outputs keep their weights (new
    ones start at zero), as when a label is added to a trained component."""
    head = model.get_ref("head")
    module = TokenClassificationHead(width, n_labels, head.attrs["dropout"])
    if keep_weights and head.layers:
        old = get_head_module(model).classifier
        n_kept = min(old.out_features, n_labels)
        with torch.no_grad():
            module.classifier.weight.zero_()
            module.classifier.bias.zero_()
            module.classifier.weight[:n_kept] = old.weight[:n_kept].cpu()
            module.classifier.bias[:n_kept] = old.bias[:n_kept].cpu()
    head.layers[:] = [PyTorchWrapper_v2(module)]
    head.set_dim("nI", width, force=True)
    head.set_dim("nO", n_labels, force=True)


def get_head_module(model: Model) -> TokenClassificationHead:
    """The torch module of a built token classifier."""
    return model.get_ref("head").layers[0].shims[0]._model


def set_head_state(model: Model, state: Dict[str, torch.Tensor]) -> None:
    """Load HF head weights (``classifier.*``) into a built head."""
    module = get_head_module(model)
    expected = tuple(module.classifier.weight.shape)
    got = tuple(state["classifier.weight"].shape)
    if got != expected:
        raise ValueError(
            f"The checkpoint's classifier has shape {got}, the head expects "
            f"{expected} (labels x encoder width)."
        )
    device = module.classifier.weight.device
    module.load_state_dict({k: v.to(device) for k, v in state.items()})
