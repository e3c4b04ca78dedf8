"""Masked language modelling: the head of ``XLMRobertaForMaskedLM``.

``MaskedLMHead`` has HF's parameter names (``lm_head.dense.*``,
``lm_head.layer_norm.*``, ``lm_head.bias``). Its decoder is the encoder's word
embedding matrix, passed in at call time rather than stored: the head holds no
second copy of the ``vocab × hidden`` matrix in memory or on disk, and the tie
survives saving and loading because there is nothing to untie. Logits are only
computed for the rows it is given (the mask positions).
"""
from functools import partial
from typing import Callable, List, Tuple

import torch
from spacy.tokens import Doc
from spacy_transformers.data_classes import TransformerData
from thinc.api import ArgsKwargs, Model, PyTorchWrapper_v2, chain, torch2xp, xp2torch
from thinc.types import Floats2d

from ..encoder.listener import XLMRListener
from ..encoder.model import get_transformer

HEAD_WEIGHT_PREFIXES = ("lm_head.dense.", "lm_head.layer_norm.", "lm_head.bias")


class LMHead(torch.nn.Module):
    """dense → gelu → layer_norm → (tied decoder) + bias."""

    def __init__(self, hidden_size: int, vocab_size: int, layer_norm_eps: float = 1e-5):
        super().__init__()
        self.dense = torch.nn.Linear(hidden_size, hidden_size)
        self.layer_norm = torch.nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.bias = torch.nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        hidden = self.layer_norm(torch.nn.functional.gelu(self.dense(hidden)))
        return torch.nn.functional.linear(hidden, embeddings, self.bias)


class MaskedLMHead(torch.nn.Module):
    """Wraps ``LMHead`` as ``lm_head``, like the HF model."""

    def __init__(self, hidden_size: int, vocab_size: int, layer_norm_eps: float = 1e-5):
        super().__init__()
        self.lm_head = LMHead(hidden_size, vocab_size, layer_norm_eps)

    def forward(self, hidden: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden, embeddings)


def build_masked_lm(upstream: str = "*") -> Model[List[Doc], List[Floats2d]]:
    """Vocabulary logits at the ``<mask>`` pieces of each doc (one row per
    mask, in text order), from the pipeline's encoder.

    The torch head is created when the component is initialized or loaded;
    the decoder weights are the word embeddings of the encoder the listener is
    connected to.
    """
    listener = XLMRListener(upstream_name=upstream)
    head = Model("masked_lm_head", partial(_head_forward, listener=listener))
    model = chain(listener, head)
    model.set_ref("listener", listener)
    model.set_ref("head", head)
    return model


def build_head_module(model: Model, vocab_size: int, width: int, eps: float) -> None:
    """Create the torch head of a masked-LM model."""
    module = MaskedLMHead(width, vocab_size, eps)
    model.get_ref("head").layers[:] = [
        PyTorchWrapper_v2(module, convert_inputs=_convert_inputs, convert_outputs=_convert_outputs)
    ]


def encoder_of(model: Model) -> Model:
    """The encoder model the listener of ``model`` is connected to."""
    return _connected_encoder(model.get_ref("listener"))


def _connected_encoder(listener: XLMRListener) -> Model:
    encoder = getattr(listener, "encoder", None)
    if encoder is None:
        raise ValueError(
            "The masked-LM head isn't connected to an xlmr_transformer encoder "
            "(its decoder is the encoder's word embeddings). Add it after the "
            "encoder in the pipeline."
        )
    return encoder


def mask_rows(trf_data: TransformerData, mask_token_id: int) -> List[int]:
    """Rows of the doc's flattened encoder output that hold ``<mask>`` pieces,
    in text order, each from the window that owns it."""
    ids = trf_data.wordpieces.input_ids.reshape(-1)
    owned = {int(row) for row in trf_data.align.dataXd}
    return sorted(row for row in owned if ids[row] == mask_token_id)


def _head_forward(
    model: Model, trf_datas: List[TransformerData], is_train: bool, *, listener: XLMRListener
) -> Tuple[List[Floats2d], Callable]:
    if is_train:
        raise NotImplementedError("Training the masked-LM head isn't supported yet.")
    if not model.layers:
        raise ValueError(
            "The masked-LM head isn't built yet: initialize the component "
            "(nlp.initialize()) or load a trained pipeline."
        )
    encoder = _connected_encoder(listener)
    mask_id = encoder.attrs["tokenizer"].mask_token_id
    embeddings = get_transformer(encoder).embeddings.word_embeddings.weight
    outputs = []
    for trf_data in trf_datas:
        hidden = trf_data.model_output.last_hidden_state
        flat = hidden.reshape(-1, hidden.shape[-1])[mask_rows(trf_data, mask_id)]
        logits, _ = model.layers[0]((model.ops.xp.ascontiguousarray(flat), embeddings), False)
        outputs.append(logits)
    return outputs, lambda d_outputs: []


def _convert_inputs(model: Model, X, is_train: bool):
    hidden, embeddings = X
    return ArgsKwargs(args=(xp2torch(hidden), embeddings), kwargs={}), lambda d: []


def _convert_outputs(model: Model, inputs_outputs, is_train: bool):
    _, logits = inputs_outputs
    return torch2xp(logits), lambda d: []
