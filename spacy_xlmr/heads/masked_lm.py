"""Masked language modelling: the head of ``XLMRobertaForMaskedLM``.

``MaskedLMHead`` has HF's parameter names (``lm_head.dense.*``,
``lm_head.layer_norm.*``, ``lm_head.bias``). Its decoder is the encoder's word
embedding matrix, passed in at call time rather than stored: the head holds no
second copy of the ``vocab × hidden`` matrix in memory or on disk, and the tie
survives saving and loading because there is nothing to untie. Logits are only
computed for the rows it is given (the mask positions).

Training (``masked_lm_logits`` with ``is_train``) masks the docs' pieces as
BERT/RoBERTa pretraining does (``mask_pieces``, ``mlm/masking.py``), runs the
shared encoder's weights over the masked pieces (a pass of its own: the
encoder component's output is of the unmasked text) and sends the gradients
to the head, the encoder and, through the tied decoder, the word embeddings.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.tokens import Doc
from thinc.api import ArgsKwargs, Model, PyTorchWrapper_v2, torch2xp, xp2torch
from thinc.types import Floats2d, Floats3d, Ints1d

from ..encoder.alignment import tokenize_docs
from ..encoder.data import TransformerData, hidden_states
from ..encoder.listener import XLMRListener, encoder_of
from ..errors import Errors
from ..mlm.masking import mask_pieces, mask_rows
from .torch_head import built_layer

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
    """``MaskedLM.v2`` with its listener built in (``upstream``: the encoder
    component's name, or "*"); kept for saved configs."""
    return build_masked_lm_v2(XLMRListener(upstream_name=upstream))


def build_masked_lm_v2(
    tok2vec: Model[List[Doc], List[TransformerData]],
) -> Model[List[Doc], List[Floats2d]]:
    """Vocabulary logits at the ``<mask>`` pieces of each doc (one row per
    mask, in text order), from the encoder output ``tok2vec`` gives
    (``spacy-xlmr.EncoderOutput.v1``; ``nlp.replace_listeners`` makes it the
    component's own encoder).

    The torch head is created when the component is initialized or loaded;
    the decoder weights are the word embeddings of that encoder.
    """
    if isinstance(tok2vec, XLMRListener):
        # Training masks the pieces and runs the encoder itself, so the encoder
        # component needn't compute (unmasked) training output for this listener.
        tok2vec.wants_training_output = False
    head: Model[Tuple[Floats2d, torch.Tensor], Floats2d] = Model("masked_lm_head", _head_forward)
    model: Model[List[Doc], List[Floats2d]] = Model("masked_lm", _forward, layers=[tok2vec, head])
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("listener", tok2vec)
    model.set_ref("head", head)
    return model


def build_head_module(model: Model, vocab_size: int, width: int, eps: float) -> None:
    """Create the torch head of a masked-LM model."""
    module = MaskedLMHead(width, vocab_size, eps)
    model.get_ref("head").layers[:] = [
        PyTorchWrapper_v2(module, convert_inputs=_convert_inputs, convert_outputs=_convert_outputs)
    ]


def masked_lm_logits(
    model: Model,
    docs: Sequence[Doc],
    rng: numpy.random.Generator,
    *,
    probability: float = 0.15,
    is_train: bool = False,
) -> Tuple[Floats2d, Ints1d, Callable[[Floats2d], None]]:
    """Mask the pieces of ``docs`` (``mask_pieces``), encode them with the
    encoder ``model`` listens to and predict the original pieces.

    RETURNS: the vocabulary logits of the chosen pieces (one row each, docs in
    order), their original ids, and a callback that takes the gradient of the
    logits back into the head, the encoder and its word embeddings.
    """
    encoder = encoder_of(model)
    tokenizer = encoder.tokenizer
    replacement_ids = numpy.setdiff1d(numpy.arange(len(tokenizer)), tokenizer.all_special_ids)
    docs_ids: List[List[int]] = []
    chosen: List[numpy.ndarray] = []
    targets: List[int] = []
    for pieces in tokenize_docs(tokenizer, docs):
        masked, positions = mask_pieces(
            pieces.ids, rng, mask_id=tokenizer.mask_token_id,
            replacement_ids=replacement_ids, probability=probability,
        )
        docs_ids.append(masked)
        chosen.append(positions)
        targets.extend(pieces.ids[i] for i in positions)
    encodings, backprop_encoder = encoder.encode_pieces(docs_ids, is_train)
    hiddens = [encoding.hidden for encoding in encodings]
    # Each chosen piece is read from the window that owns it.
    doc_rows: List[List[int]] = []
    for positions, encoding in zip(chosen, encodings):
        piece_rows = encoding.piece_rows()
        doc_rows.append([piece_rows[i] for i in positions])
    ops = model.ops
    width = encoder.width
    rows = [
        ops.reshape2f(hidden, -1, width)[doc_rows_]
        for hidden, doc_rows_ in zip(hiddens, doc_rows)
    ]
    flat = ops.xp.concatenate(rows) if rows else ops.alloc2f(0, width)
    embeddings = encoder.word_embeddings
    logits, backprop_head = built_layer(model.get_ref("head"))(
        (ops.xp.ascontiguousarray(flat), embeddings), is_train
    )

    def backprop(d_logits: Floats2d) -> None:
        d_flat, d_embeddings = backprop_head(d_logits)
        d_hidden: List[Optional[Floats3d]] = []
        offset = 0
        for hidden, doc_rows_ in zip(hiddens, doc_rows):
            d_doc = ops.alloc2f(hidden.shape[0] * hidden.shape[1], width)
            d_doc[doc_rows_] = d_flat[offset : offset + len(doc_rows_)]
            offset += len(doc_rows_)
            d_hidden.append(ops.reshape3f(d_doc, *hidden.shape))
        backprop_encoder(d_hidden)
        # Added after the encoder's own backward pass, which unscales the
        # gradients of its parameters when mixed precision is on.
        if not embeddings.requires_grad:  # freeze_embeddings
            return
        with torch.no_grad():
            if embeddings.grad is None:
                embeddings.grad = d_embeddings.clone()
            else:
                embeddings.grad += d_embeddings

    return logits, ops.asarray1i(targets), backprop


def _head_forward(model: Model, X: Tuple[Floats2d, torch.Tensor], is_train: bool):
    """The logits of hidden states (with the decoder's embeddings)."""
    return built_layer(model)(X, is_train)


def _forward(
    model: Model, docs: List[Doc], is_train: bool
) -> Tuple[List[Floats2d], Callable]:
    """Logits at the ``<mask>`` pieces of the encoder output (prediction)."""
    if is_train:
        raise ValueError(Errors.MLM_HEAD_TRAINED_ON_TEXT)
    trf_datas, _ = model.get_ref("tok2vec")(docs, False)
    return mask_logits(model, trf_datas), lambda d_outputs: []


def mask_logits(model: Model, trf_datas: List[TransformerData]) -> List[Floats2d]:
    """Vocabulary logits at the ``<mask>`` pieces of each doc's encoder
    output (``tok2vec``'s), one row per mask in text order (prediction)."""
    encoder = encoder_of(model)
    mask_id = encoder.tokenizer.mask_token_id
    embeddings = encoder.word_embeddings
    width = encoder.width
    # The masks of every doc through the head in one call.
    rows = [
        model.ops.reshape2f(hidden_states(trf_data), -1, width)[mask_rows(trf_data, mask_id)]
        for trf_data in trf_datas
    ]
    flat = model.ops.xp.concatenate(rows) if rows else model.ops.alloc2f(0, width)
    logits, _ = model.get_ref("head")((model.ops.xp.ascontiguousarray(flat), embeddings), False)
    ends = numpy.cumsum([len(doc_rows) for doc_rows in rows])
    return [logits[end - len(doc_rows) : end] for doc_rows, end in zip(rows, ends)]


def _convert_inputs(model: Model, X, is_train: bool):
    hidden, embeddings = X
    # The embeddings enter as a leaf of their own: their gradient comes back
    # from the backward pass and is added to the encoder's by the caller.
    inputs = (
        xp2torch(hidden, requires_grad=is_train),
        embeddings.detach().requires_grad_(is_train),
    )

    def backprop(d_inputs: ArgsKwargs):
        d_hidden, d_embeddings = d_inputs.args
        return torch2xp(d_hidden), d_embeddings

    return ArgsKwargs(args=inputs, kwargs={}), backprop


def _convert_outputs(model: Model, inputs_outputs, is_train: bool):
    _, logits = inputs_outputs

    def backprop(d_logits):
        return ArgsKwargs(args=(logits,), kwargs={"grad_tensors": xp2torch(d_logits)})

    return torch2xp(logits), backprop
