"""The encoder's prediction pass, in full or reduced precision.

``inference_precision`` of ``spacy-xlmr.Encoder.v1`` (prediction only;
training always runs in full precision, or mixed precision on GPU with
``mixed_precision``):

* ``fp32``: full precision;
* ``bf16``: ``torch.autocast`` to bfloat16 (CPU with AVX512-BF16 or AMX, or
  GPU);
* ``fp16``: ``torch.autocast`` to float16 (GPU only);
* ``int8``: dynamic int8 quantization of the Linear layers
  (``torch.ao.quantization.quantize_dynamic``; CPU only), with weights
  quantized per output channel and, on CPUs with VNNI, inputs quantized to
  all 8 bits (torch's dynamic Linear uses 7, which CPUs without VNNI need
  against int16 overflow). Together they cut the deviation from fp32 by
  about 40% at the same speed (benchmarks/README.md). The quantized layer
  stack is a copy made at the first prediction (holding only the int8
  weights: every fp32 tensor is the original's) and made again after the
  weights change, so the encoder stays trainable and saves in full
  precision.

Predictions run under ``torch.inference_mode``; the hidden states come back
as float32 whatever the precision.

Batch composition: in fp32 a doc's predictions are the same alone
(``nlp(doc)``) and in any ``nlp.pipe`` batch (hidden states within float
rounding, 1e-5; labels equal). In reduced precision they move slightly with
the other docs of the batch: int8 quantizes each Linear layer's input with
one scale for the whole padded batch, and bf16/fp16 kernels round
differently for other shapes. Measured on the tiny test encoder (hidden
states, relative to a doc's largest value): fp32 2e-7, bf16 1e-4, int8 8e-4
(tests/encoder/test_precision.py asserts 1e-5, 1e-3, 3e-3); a prediction
near a decision boundary can flip with the batch.
"""
import contextlib
import copy
import itertools
import weakref
from typing import Any, ContextManager, cast

import numpy
import torch
from thinc.api import Model, torch2xp, xp2torch
from thinc.types import Floats3d, Ints2d

from ..errors import Errors
from .module import EncoderModule, encoder_module

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# The int8 copy of each transformer that predicted in int8, until its weights
# change. Kept outside the thinc model's attrs, which Model.copy deep-copies.
_INT8_COPIES: "weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module]" = (
    weakref.WeakKeyDictionary()
)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(
            Errors.UNKNOWN_PRECISION.format(precision=precision, choices=", ".join(PRECISIONS))
        )


def predict_hidden(model: Model, input_ids: numpy.ndarray, mask: numpy.ndarray) -> Floats3d:
    """The last hidden states of a padded batch (2-D int arrays of ids and
    attention mask), for prediction."""
    module = inference_module(model)
    device = next(module.parameters()).device
    with torch.inference_mode(), _autocast(model, device):
        output = module(
            input_ids=xp2torch(cast(Ints2d, input_ids), device=device),
            attention_mask=xp2torch(cast(Ints2d, mask), device=device),
        )
    return cast(Floats3d, torch2xp(output.last_hidden_state.float()))


def clear_inference_cache(model: Model) -> None:
    """Drop the int8 copy (call when the encoder's weights change)."""
    module = encoder_module(model)
    if module is not None:
        _INT8_COPIES.pop(cast(EncoderModule, module).transformer, None)


def _autocast(model: Model, device: torch.device) -> ContextManager[Any]:
    precision = model.attrs["inference_precision"]
    if precision in _AUTOCAST_DTYPES:
        if precision == "fp16" and device.type != "cuda":
            raise ValueError(Errors.FP16_ON_CPU)
        return torch.autocast(device.type, dtype=_AUTOCAST_DTYPES[precision])
    if model.attrs["mixed_precision"] and device.type == "cuda":
        return torch.autocast("cuda")
    return contextlib.nullcontext()


def inference_module(model: Model) -> torch.nn.Module:
    """The torch module the encoder predicts with: its transformer, or for
    ``int8`` the quantized copy (made by ``quantize_int8`` at the first
    prediction after the weights change)."""
    transformer = cast(EncoderModule, encoder_module(model)).transformer
    transformer.eval()
    if model.attrs["inference_precision"] != "int8":
        return transformer
    if transformer not in _INT8_COPIES:
        _INT8_COPIES[transformer] = quantize_int8(transformer)
    return _INT8_COPIES[transformer]


def quantize_int8(transformer: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``transformer`` whose layer stack has int8 Linear layers;
    every other tensor (embeddings, LayerNorms, biases of the unquantized
    parts) is the original's, so the copy adds only the int8 weights."""
    if next(transformer.parameters()).device.type != "cpu":
        raise ValueError(Errors.INT8_ON_GPU)
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    linear = _FullRangeInt8Linear if _int8_full_range() else torch.ao.nn.quantized.dynamic.Linear
    # quantize_dynamic's own copy would duplicate all the fp32 weights first
    # (+340 MB at peak for xlm-roberta-base): copy the modules, share the tensors.
    stack = transformer.get_submodule("encoder")
    shared = {id(t): t for t in itertools.chain(stack.parameters(), stack.buffers())}
    layers = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(stack, memo=shared), {torch.nn.Linear: qconfig},
        mapping={torch.nn.Linear: linear}, inplace=True,
    )
    quantized = copy.copy(transformer)
    quantized._modules = dict(transformer._modules)
    quantized._modules["encoder"] = layers
    return quantized.eval()


def _int8_full_range() -> bool:
    """Whether int8 matrix products can take inputs in all 8 bits: with
    fbgemm (torch's x86 backends) only where the CPU has VNNI; without it the
    int16 intermediate sums of u8 x s8 products can overflow. (torch's check
    for VNNI is private; where it is missing, 7 bits.)"""
    has_vnni = getattr(torch.cpu, "_is_vnni_supported", lambda: False)
    return torch.backends.quantized.engine in ("x86", "fbgemm") and has_vnni()


class _FullRangeInt8Linear(torch.ao.nn.quantized.dynamic.Linear):
    """torch's dynamic int8 Linear, its input quantized to 256 levels, not 128."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = torch.ops.quantized.linear_dynamic(
            x, self._packed_params._packed_params, reduce_range=False
        )
        return output.to(x.dtype)
