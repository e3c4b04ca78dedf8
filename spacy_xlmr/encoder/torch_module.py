"""The one place that reaches into thinc's ``PyTorchShim`` for its torch
module and its loss scaler (thinc keeps them in the private ``_model`` and
``_grad_scaler`` and has no public accessors).
Heads and tests use the encoder's interface (``interface.py``); the encoder,
the heads' builders and the distributed collectives call these functions;
``gradients_set_aside`` works around the shim's unscaling of every gradient
after each backward pass under mixed precision."""
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from thinc.api import Model, PyTorchGradScaler, PyTorchShim

from ..errors import Errors


def shim_module(shim: PyTorchShim) -> Optional[torch.nn.Module]:
    """The torch module inside ``shim`` (None in an encoder not loaded yet)."""
    return shim._model


def shim_grad_scaler(shim: PyTorchShim) -> PyTorchGradScaler:
    """The loss scaler of ``shim`` (disabled unless mixed precision is on)."""
    return shim._grad_scaler


def wrapped_module(layer: Model) -> Optional[torch.nn.Module]:
    """The torch module wrapped by ``layer`` (a ``PyTorchWrapper`` layer), or
    None when it wraps none yet."""
    shims = [shim for shim in layer.shims if isinstance(shim, PyTorchShim)]
    if not shims:
        raise ValueError(Errors.NOT_A_TORCH_WRAPPER.format(layer=layer.name))
    return shim_module(shims[0])


def torch_module(layer: Model) -> torch.nn.Module:
    """The torch module wrapped by ``layer``."""
    module = wrapped_module(layer)
    if module is None:
        raise ValueError(Errors.NO_TORCH_MODULE_YET.format(layer=layer.name))
    return module


@contextmanager
def gradients_set_aside(module: torch.nn.Module) -> Iterator[None]:
    """Run a backward pass with the gradients of earlier passes set aside,
    and add them back after it. With loss scaling on (mixed precision), thinc's
    ``PyTorchShim`` unscales every gradient of the model after each backward
    pass: those left by earlier passes before the same optimizer step (another
    batch of windows, another head, gradient accumulation) are already
    unscaled and would be divided by the scale again."""
    earlier = {}
    for param in module.parameters():
        if param.grad is not None:
            earlier[param] = param.grad
            param.grad = None
    try:
        yield
    finally:
        for param, grad in earlier.items():
            if param.grad is not None:
                grad += param.grad
            param.grad = grad
