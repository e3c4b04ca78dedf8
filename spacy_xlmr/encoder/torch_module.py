"""The one place that reaches into thinc's ``PyTorchShim`` for its torch
module and its loss scaler (thinc keeps them in the private ``_model`` and
``_grad_scaler`` and has no public accessors).
Heads and tests use the encoder's interface (``interface.py``); the encoder,
the heads' builders and the distributed collectives call these functions."""
import torch
from thinc.api import Model, PyTorchGradScaler, PyTorchShim


def shim_module(shim: PyTorchShim) -> torch.nn.Module:
    """The torch module inside ``shim``."""
    return shim._model


def shim_grad_scaler(shim: PyTorchShim) -> PyTorchGradScaler:
    """The loss scaler of ``shim`` (disabled unless mixed precision is on)."""
    return shim._grad_scaler


def torch_module(layer: Model) -> torch.nn.Module:
    """The torch module wrapped by ``layer`` (a ``PyTorchWrapper_v2`` layer)."""
    shims = [shim for shim in layer.shims if isinstance(shim, PyTorchShim)]
    if not shims:
        raise ValueError(f"The layer '{layer.name}' wraps no torch module.")
    return shim_module(shims[0])
