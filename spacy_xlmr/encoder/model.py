"""The thinc model of the shared XLM-R encoder.

``Model[List[Doc], List[TransformerData]]``: tokenizes the docs (one batched
call to the fast tokenizer), aligns pieces to tokens exactly, cuts long docs
into windows counted in pieces, runs the windows of the whole batch through
``XLMRobertaModel`` in length-sorted sub-batches (little padding), and returns
one ``TransformerData`` per doc (``data.py``). ``TransformerData.align``
points every token at the encoder positions of its pieces, in the window that
owns each piece (see ``windows.py``), so listeners such as
``spacy-transformers.TransformerListener.v1`` work unchanged.

Heads don't call this module: they use the encoder's interface
(``interface.py``), which does.

The Hugging Face objects are created lazily, when the pipeline is initialized
(from ``name``) or loaded (from the pipeline directory), never when the config
is resolved.
"""
import os
import warnings
from pathlib import Path
from typing import (
    TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple, Union, cast,
)

import numpy
from spacy.tokens import Doc
from thinc.api import (
    ArgsKwargs,
    Model,
    NumpyOps,
    PyTorchGradScaler,
    PyTorchWrapper_v3,
    torch2xp,
    xp2torch,
)
from thinc.types import Floats2d, Floats3d, Ints1d, Ints2d, Ragged

if TYPE_CHECKING:
    import torch
    from transformers import XLMRobertaModel
    from transformers.tokenization_utils_fast import PreTrainedTokenizerFast

from ..errors import Errors, Warnings
from .alignment import DocPieces, tokenize_docs
from .data import TransformerData, WordpieceBatch, make_trf_data
from .module import (
    EncoderModule,
    check_tokenizer_fits,
    deserialize_module,
    enable_gradient_checkpointing,
    encoder_module,
    load_module,
    max_positions,
    module_from_files,
    serialize_module,
)
from .precision import check_precision, clear_inference_cache, predict_hidden
from .torch_module import gradients_set_aside
from .windows import (
    EncodedDoc,
    Span,
    check_window_settings,
    length_batches,
    pad_windows,
    window_spans,
)

EncoderModel = Model[List[Doc], List[TransformerData]]
# Most padding in a batch of windows on CPU, as a share of its positions:
# padding costs as much as text there, and a small batch costs no more per
# position than a large one. On GPU, full batches are worth their padding.
CPU_MAX_PADDING = 0.1


def _one_thread_after_fork() -> None:
    """torch's OpenMP thread pool doesn't survive ``fork``: a child process
    of ``nlp.pipe(n_process=...)`` that uses it hangs. Forked children run
    torch on one thread, as PyTorch's own DataLoader workers do."""
    import torch

    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_thread_after_fork)


def build_encoder(
    name: str = "xlm-roberta-base",
    window_size: int = 510,
    stride: int = 448,
    max_batch_pieces: int = 4096,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[dict] = None,
    inference_precision: str = "fp32",
    gradient_checkpointing: bool = False,
    freeze_embeddings: bool = False,
    frozen_layers: int = 0,
) -> EncoderModel:
    """An XLM-R encoder that outputs one ``TransformerData`` per doc.

    name (str): Hugging Face hub name or local directory of an XLM-R checkpoint.
    window_size (int): Pieces per window, without ``<s>`` and ``</s>``. At most
        the model's maximum length minus 2 (510 for XLM-R).
    stride (int): Smaller than ``window_size``: a long doc gets the windows
        that starting one every ``stride`` pieces would take, of equal length
        and overlapping by at least ``window_size - stride`` pieces.
    max_batch_pieces (int): Most positions (padding included) in one forward
        pass; a batch's windows are sorted by length and split accordingly.
        On CPU a batch also ends before its padding would pass 10%.
    mixed_precision (bool): Train the encoder under autocast with loss
        scaling; GPU only (on CPU: a warning, and fp32).
    grad_scaler_config (dict): Options for ``thinc.api.PyTorchGradScaler``;
        the scaler is enabled whenever mixed_precision is.
    inference_precision (str): Precision of predictions: "fp32", "bf16",
        "fp16" (GPU) or "int8" (CPU); see ``precision.py``. Training is not
        affected.
    gradient_checkpointing (bool): Recompute the layers' activations in the
        backward pass instead of keeping them: less memory in training, for
        more compute (base-sized on CPU: 26% less peak memory, 25-60% more
        time per step; benchmarks/train_speed.py).
    freeze_embeddings (bool): Don't train the embeddings (for small data).
    frozen_layers (int): Don't train the first ``frozen_layers`` transformer
        layers either (to freeze the whole encoder, list its component in
        ``[training] frozen_components``).
    """
    check_precision(inference_precision)
    if frozen_layers < 0:
        raise ValueError(Errors.FROZEN_LAYERS_NEGATIVE.format(frozen_layers=frozen_layers))
    check_window_settings(window_size, stride)
    if max_batch_pieces < window_size + 2:
        raise ValueError(
            Errors.BATCH_SMALLER_THAN_WINDOW.format(
                max_batch_pieces=max_batch_pieces, positions=window_size + 2
            )
        )
    return Model(
        "xlmr_encoder",
        forward,
        init=init,
        layers=[_wrapper(None, mixed_precision, grad_scaler_config)],
        dims={"nO": None},
        attrs={
            "name": name,
            "window_size": window_size,
            "stride": stride,
            "max_batch_pieces": max_batch_pieces,
            "mixed_precision": mixed_precision,
            "grad_scaler_config": dict(grad_scaler_config or {}),
            "inference_precision": inference_precision,
            "gradient_checkpointing": gradient_checkpointing,
            "freeze_embeddings": freeze_embeddings,
            "frozen_layers": frozen_layers,
        },
    )


def _wrapper(
    module: Optional[EncoderModule],
    mixed_precision: bool,
    grad_scaler_config: Optional[dict],
) -> Model:
    """The layer that wraps the encoder's torch module (None before loading)
    and serializes it as Hugging Face files (``module.py``)."""
    grad_scaler = PyTorchGradScaler(**{"enabled": mixed_precision, **(grad_scaler_config or {})})
    return PyTorchWrapper_v3(
        cast("torch.nn.Module", module),  # None until loaded, which thinc's shim allows
        convert_inputs=_convert_inputs,
        convert_outputs=_convert_outputs,
        mixed_precision=mixed_precision,
        grad_scaler=grad_scaler,
        serialize_model=serialize_module,
        deserialize_model=deserialize_module,
    )


def init(model: EncoderModel, X=None, Y=None) -> None:
    """Load the checkpoint named in the config, unless weights are loaded."""
    if not is_loaded(model):
        load_checkpoint(model, model.attrs["name"])


def is_loaded(model: Model) -> bool:
    """Whether the encoder has its weights and tokenizer."""
    return encoder_module(model) is not None


def unload(model: Model) -> None:
    """Drop the weights and tokenizer: the encoder is as before initialize."""
    model.layers[0] = _wrapper(None, False, model.attrs["grad_scaler_config"])


def load_checkpoint(model: EncoderModel, name_or_path: Union[str, Path]) -> None:
    """Load config, tokenizer and weights from a hub name or directory (the
    one path used by initialize, from_disk and from_bytes)."""
    name_or_path = os.path.expanduser(name_or_path)  # hub names never start with ~
    set_encoder(model, load_module(name_or_path), source=str(name_or_path))


def set_encoder(
    model: EncoderModel, module: EncoderModule, *, source: Optional[str] = None
) -> None:
    """Install an ``XLMRobertaModel`` and its fast tokenizer in ``model``
    (``source``: where they come from, for errors)."""
    transformer = module.transformer
    check_tokenizer_fits(transformer, module.tokenizer, source or model.attrs["name"])
    max_length = max_positions(transformer.config)
    check_window_settings(model.attrs["window_size"], model.attrs["stride"], max_length - 2)
    if model.attrs["gradient_checkpointing"]:
        enable_gradient_checkpointing(transformer)
    freeze(model, transformer)
    mixed_precision = model.attrs["mixed_precision"]
    if mixed_precision and isinstance(model.ops, NumpyOps):
        warnings.warn(Warnings.MIXED_PRECISION_ON_CPU)
        mixed_precision = False
    model.layers[0] = _wrapper(module, mixed_precision, model.attrs["grad_scaler_config"])
    model.set_dim("nO", transformer.config.hidden_size, force=True)


def freeze(model: EncoderModel, transformer: "XLMRobertaModel") -> None:
    """Stop the gradients of the parts ``freeze_embeddings`` and
    ``frozen_layers`` name (their weights then stay as they are)."""
    layers = transformer.encoder.layer
    n_frozen = model.attrs["frozen_layers"]
    if n_frozen > len(layers) or (n_frozen == len(layers) and model.attrs["freeze_embeddings"]):
        raise ValueError(
            Errors.NOTHING_LEFT_TO_TRAIN.format(frozen_layers=n_frozen, n_layers=len(layers))
        )
    frozen = list(layers[:n_frozen])
    if model.attrs["freeze_embeddings"]:
        frozen.append(transformer.embeddings)
    for module in frozen:
        module.requires_grad_(False)


def loaded_module(model: EncoderModel) -> EncoderModule:
    """The torch module of an initialized encoder."""
    check_loaded(model)
    return cast(EncoderModule, encoder_module(model))


def get_transformer(model: EncoderModel) -> "XLMRobertaModel":
    """The ``XLMRobertaModel`` of an initialized encoder."""
    return loaded_module(model).transformer


def get_tokenizer(model: EncoderModel) -> "PreTrainedTokenizerFast":
    """The fast tokenizer of an initialized encoder."""
    return loaded_module(model).tokenizer


def save_encoder(model: EncoderModel, path: Path) -> None:
    """Write the encoder as a Hugging Face directory (safetensors weights)."""
    loaded_module(model).save(path)


def encoder_to_bytes(model: EncoderModel) -> Dict[str, bytes]:
    """The encoder's files, by name."""
    return loaded_module(model).to_files()


def encoder_from_bytes(model: EncoderModel, files: Dict[str, bytes]) -> None:
    """Load the files written by ``encoder_to_bytes``."""
    set_encoder(model, module_from_files(files), source="bytes")


def check_loaded(model: EncoderModel) -> None:
    """Raise an error saying how to load the weights if there are none."""
    if not is_loaded(model):
        raise ValueError(Errors.ENCODER_NOT_LOADED.format(name=model.attrs["name"]))


def forward(
    model: EncoderModel, docs: List[Doc], is_train: bool
) -> Tuple[List[TransformerData], Callable]:
    """Encode the docs; an empty doc (no tokens) isn't encoded and gets
    ``TransformerData.empty()`` (no pieces, no tensors).
    The callback takes each doc's gradient (None for none; an empty doc's is
    ignored)."""
    check_loaded(model)
    trf_datas = [TransformerData.empty() for _ in docs]
    encoded = [i for i, doc in enumerate(docs) if len(doc)]
    if not encoded:
        return trf_datas, lambda d_hidden: []
    tokenizer = get_tokenizer(model)
    doc_pieces = tokenize_docs(tokenizer, [docs[i] for i in encoded])
    encodings, backprop_encoded = encode_pieces(
        model, [pieces.ids for pieces in doc_pieces], is_train
    )
    for i, pieces, encoding in zip(encoded, doc_pieces, encodings):
        trf_datas[i] = make_trf_data(
            _wordpieces(pieces, encoding.spans, model), encoding.hidden, _align(pieces, encoding)
        )

    def backprop(d_hidden: List[Optional[Floats3d]]) -> List[Doc]:
        backprop_encoded([d_hidden[i] for i in encoded])
        return []

    return trf_datas, backprop


def encode_pieces(
    model: EncoderModel, docs_ids: Sequence[Sequence[int]], is_train: bool
) -> Tuple[List[EncodedDoc], Callable[[List[Optional[Floats3d]]], None]]:
    """Run the encoder over the piece ids (without ``<s>``/``</s>``) of each
    doc: cut into windows, batched by length across docs.

    RETURNS: each doc's ``EncodedDoc``, and a callback taking each doc's
    gradient for its hidden states (None for none) back through the encoder.
    """
    tokenizer = get_tokenizer(model)
    window_size = model.attrs["window_size"]
    # Every window of every doc, as ids with <s> and </s>.
    windows: List[List[int]] = []
    doc_windows: List[List[int]] = []
    spans: List[List[Span]] = []
    for ids in docs_ids:
        spans.append(window_spans(len(ids), window_size, model.attrs["stride"]))
        doc_windows.append([])
        for start, end in spans[-1]:
            doc_windows[-1].append(len(windows))
            window_ids = list(ids[start:end])
            windows.append([tokenizer.cls_token_id, *window_ids, tokenizer.sep_token_id])
    outputs, backprop_windows = encode_windows(model, windows, is_train)

    width = model.get_dim("nO")
    hiddens = []
    for window_ids in doc_windows:
        hidden = model.ops.alloc3f(len(window_ids), max(len(windows[i]) for i in window_ids), width)
        for row, window_i in enumerate(window_ids):
            hidden[row, : len(windows[window_i])] = outputs[window_i]
        hiddens.append(hidden)

    def backprop(d_hidden: List[Optional[Floats3d]]) -> None:
        d_windows: List[Optional[Floats2d]] = [None] * len(windows)
        for doc_i, d_doc in enumerate(d_hidden):
            if d_doc is None:
                continue
            for row, window_i in enumerate(doc_windows[doc_i]):
                d_windows[window_i] = d_doc[row, : len(windows[window_i])]
        backprop_windows(d_windows)

    encodings = [EncodedDoc(hidden, doc_spans) for hidden, doc_spans in zip(hiddens, spans)]
    return encodings, backprop


def encode_windows(
    model: EncoderModel, windows: Sequence[Sequence[int]], is_train: bool
) -> Tuple[List[Floats2d], Callable[[List[Optional[Floats2d]]], None]]:
    """Run the encoder over complete inputs (ids with special tokens), in
    length-sorted batches of at most ``max_batch_pieces`` positions (and, on
    CPU, at most ``CPU_MAX_PADDING`` padding).

    RETURNS: the ``(length, width)`` hidden states of each window, and a
    callback taking each window's gradient (None for none) back through the
    encoder.
    """
    check_loaded(model)
    if is_train:
        freeze(model, get_transformer(model))  # a copy loaded by thinc has all its gradients on
        clear_inference_cache(model)  # the weights will change
    transformer = model.layers[0]
    pad_id = get_tokenizer(model).pad_token_id
    outputs: List[Optional[Floats2d]] = [None] * len(windows)
    callbacks = []
    max_padding = CPU_MAX_PADDING if isinstance(model.ops, NumpyOps) else 1.0
    for batch in length_batches(windows, model.attrs["max_batch_pieces"], max_padding):
        input_ids, mask = pad_windows([windows[i] for i in batch], pad_id)
        if is_train:
            hidden, backprop_batch = transformer((input_ids, mask), is_train)
            callbacks.append((batch, hidden.shape, backprop_batch))
        else:
            hidden = predict_hidden(model, input_ids, mask)
        for row, window_i in enumerate(batch):
            outputs[window_i] = hidden[row, : len(windows[window_i])]

    def backprop(d_windows: List[Optional[Floats2d]]) -> None:
        for batch, shape, backprop_batch in callbacks:
            d_batch = model.ops.alloc3f(*shape)
            for row, window_i in enumerate(batch):
                d_window = d_windows[window_i]
                if d_window is not None:
                    d_batch[row, : len(windows[window_i])] = d_window
            if model.attrs["mixed_precision"]:
                with gradients_set_aside(get_transformer(model)):
                    backprop_batch(d_batch)
            else:
                backprop_batch(d_batch)

    return cast(List[Floats2d], outputs), backprop  # every window is in a batch


def _wordpieces(pieces: DocPieces, spans: List[Span], model: EncoderModel) -> WordpieceBatch:
    tokenizer = get_tokenizer(model)
    ids = [
        [tokenizer.cls_token_id, *pieces.ids[start:end], tokenizer.sep_token_id]
        for start, end in spans
    ]
    strings = [
        [tokenizer.cls_token, *pieces.strings[start:end], tokenizer.sep_token]
        for start, end in spans
    ]
    input_ids, mask = pad_windows(ids, tokenizer.pad_token_id)
    return WordpieceBatch(
        strings=strings,
        input_ids=cast(Ints2d, input_ids),
        attention_mask=cast(Floats2d, mask.astype("float32")),
        lengths=[len(window) for window in ids],
        token_type_ids=None,
    )


def _align(pieces: DocPieces, encoding: EncodedDoc) -> Ragged:
    """Token → rows of the doc's flattened ``(windows * seq_len, width)``
    output, each piece taken from the window that owns it."""
    rows = encoding.piece_rows()
    lengths = numpy.array([len(p) for p in pieces.token_pieces], dtype="int32")
    data = numpy.array(
        [rows[p] for token in pieces.token_pieces for p in token], dtype="int32"
    )
    return Ragged(cast(Ints1d, data), cast(Ints1d, lengths))


def _convert_inputs(model: Model, X, is_train: bool):
    input_ids, mask = X
    kwargs = {"input_ids": xp2torch(input_ids), "attention_mask": xp2torch(mask)}
    return ArgsKwargs(args=(), kwargs=kwargs), lambda d_inputs: []


def _convert_outputs(model: Model, inputs_outputs, is_train: bool):
    _, output = inputs_outputs
    hidden = output.last_hidden_state

    def backprop(d_hidden):
        return ArgsKwargs(
            args=(hidden,), kwargs={"grad_tensors": xp2torch(d_hidden)}
        )

    return torch2xp(hidden), backprop
