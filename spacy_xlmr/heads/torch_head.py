"""A thinc layer holding a torch head that is built once its sizes are known.

Heads are created when their component is initialized (labels from data or
from a Hugging Face ``id2label``, width from the encoder) or loaded (sizes from
the component's cfg), so the layer starts empty. Every head goes through the
same functions here: build, resize when a label is added, load HF weights.
"""
from typing import Callable, Dict

import torch
from thinc.api import Model, PyTorchWrapper_v2

from ..encoder.torch_module import torch_module
from ..errors import Errors


def torch_head(name: str, dropout: float) -> Model:
    """An empty head layer; ``set_head_module`` fills it."""
    return Model(
        name,
        _forward,
        dims={"nI": None, "nO": None},
        attrs={"dropout": dropout},
    )


def _forward(model: Model, X, is_train: bool):
    return built_layer(model)(X, is_train)


def built_layer(head: Model) -> Model:
    """The layer of a built head; an error naming the fix before it is built."""
    if not head.layers:
        raise ValueError(Errors.HEAD_NOT_BUILT.format(head_name=head.name))
    return head.layers[0]


def build_head_module(
    head: Model,
    make_module: Callable[[int, int, float], torch.nn.Module],
    width: int,
    n_labels: int,
    *,
    keep_weights: bool = False,
) -> None:
    """(Re)create the torch module of ``head`` with ``make_module(width,
    n_labels, dropout)``. With ``keep_weights``, parameters are copied from the
    current module; outputs it didn't have start at zero (adding a label keeps
    the predictions for the others)."""
    module = make_module(width, n_labels, head.attrs["dropout"])
    if keep_weights and head.layers:
        old = dict(get_head_module(head).named_parameters())
        with torch.no_grad():
            for name, param in module.named_parameters():
                if name not in old:
                    continue
                source = old[name].detach().cpu()
                if source.shape == param.shape:
                    param.copy_(source)
                elif source.shape[1:] == param.shape[1:]:  # an output layer
                    param.zero_()
                    n_kept = min(source.shape[0], param.shape[0])
                    param[:n_kept] = source[:n_kept]
    head.layers[:] = [PyTorchWrapper_v2(module)]
    head.set_dim("nI", width, force=True)
    head.set_dim("nO", n_labels, force=True)


def get_head_module(head: Model) -> torch.nn.Module:
    """The torch module of a built head."""
    return torch_module(head.layers[0])


def load_head_state(head: Model, state: Dict[str, torch.Tensor]) -> None:
    """Load Hugging Face head weights (same parameter names) into a built head."""
    module = get_head_module(head)
    expected = {name: tuple(p.shape) for name, p in module.state_dict().items()}
    got = {name: tuple(p.shape) for name, p in state.items()}
    if expected != got:
        raise ValueError(Errors.HEAD_STATE_MISMATCH.format(expected=expected, got=got))
    device = next(module.parameters()).device
    module.load_state_dict({name: p.to(device) for name, p in state.items()})
