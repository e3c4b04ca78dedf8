"""The one place that reaches into thinc's ``PyTorchShim`` for its torch
module (thinc keeps it in the private ``_model`` and has no public accessor).
Heads and tests use the encoder's interface (``interface.py``); the encoder,
the heads' builders and the distributed collectives call these functions."""
import torch
from thinc.api import Model, PyTorchShim


def shim_module(shim: PyTorchShim) -> torch.nn.Module:
    """The torch module inside ``shim``."""
    return shim._model


def torch_module(layer: Model) -> torch.nn.Module:
    """The torch module wrapped by ``layer`` (a ``PyTorchWrapper_v2`` layer)."""
    shims = [shim for shim in layer.shims if isinstance(shim, PyTorchShim)]
    if not shims:
        raise ValueError(f"The layer '{layer.name}' wraps no torch module.")
    return shim_module(shims[0])
