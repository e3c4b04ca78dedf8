"""The collectives data-parallel training needs, over a whole spaCy pipeline:
broadcast the weights from rank 0, average the gradients of a step, agree on
small JSON values. Every weight of the pipeline takes part, whether a torch
parameter inside a thinc ``PyTorchShim`` (the encoder, the heads) or a thinc
parameter (spaCy's own components), in flattened buckets of one dtype and
device: a few collectives per step, not one per parameter."""
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, cast

import numpy
import srsly
import torch
import torch.distributed as dist
from spacy.language import Language
from thinc.api import Model, PyTorchShim, torch2xp, xp2torch
from thinc.types import FloatsXd

from ..encoder.torch_module import shim_grad_scaler, shim_module
from ..errors import Errors

# Bucket size of the flattened collectives (PyTorch DDP's default).
BUCKET_BYTES = 25 * 2**20


@dataclass
class Weight:
    """One trainable array of the pipeline: a torch parameter (``tensor``)
    or a thinc parameter (``node`` and ``name``)."""

    key: str
    pipe: str
    tensor: Optional[torch.Tensor] = None
    node: Optional[Model] = None
    name: str = ""
    shim: Optional[PyTorchShim] = None

    @property
    def shape(self) -> Tuple[int, ...]:
        if self.tensor is not None:
            return tuple(self.tensor.shape)
        return tuple(self.node.get_param(self.name).shape)  # type: ignore[union-attr]

    def value(self) -> torch.Tensor:
        if self.tensor is not None:
            return self.tensor.data
        return _as_torch(self.node.get_param(self.name))  # type: ignore[union-attr]

    def set_value(self, value: torch.Tensor) -> None:
        if self.tensor is not None:
            self.tensor.data.copy_(value.view_as(self.tensor))
        else:
            node = self.node
            assert node is not None
            array = node.get_param(self.name)
            # thinc's parameters are float arrays: so is the value reshaped to one.
            new_value = cast(FloatsXd, node.ops.asarray(torch2xp(value)).reshape(array.shape))
            node.set_param(self.name, new_value)

    def grad(self) -> Optional[torch.Tensor]:
        if self.tensor is not None:
            return self.tensor.grad
        node = self.node
        assert node is not None
        if not node.has_grad(self.name):
            return None
        return _as_torch(node.get_grad(self.name))

    def set_grad(self, value: torch.Tensor) -> None:
        if self.tensor is not None:
            if self.tensor.grad is None:
                self.tensor.grad = value.view_as(self.tensor).clone()
            else:
                self.tensor.grad.copy_(value.view_as(self.tensor))
        else:
            node = self.node
            assert node is not None
            shape = node.get_param(self.name).shape
            grad = cast(FloatsXd, node.ops.asarray(torch2xp(value)).reshape(shape).copy())
            node.set_grad(self.name, grad)


def _as_torch(array) -> torch.Tensor:
    if isinstance(array, numpy.ndarray):
        return torch.from_numpy(array)
    return xp2torch(array)


def pipeline_weights(
    nlp: Language, *, exclude: Iterable[str] = (), trainable_only: bool = True
) -> List[Weight]:
    """Every weight of the pipeline's components in a fixed order (pipeline
    order, then the order of thinc's ``walk``), each once (shared modules and
    nodes, like a head tied to the encoder's embeddings, aren't repeated).
    With ``trainable_only``, frozen torch parameters are left out; without,
    torch buffers are included (all the state a broadcast must copy)."""
    weights: List[Weight] = []
    seen_tensors = set()
    seen_nodes = set()
    for pipe_name, proc in nlp.pipeline:
        model = getattr(proc, "model", None)
        if pipe_name in exclude or not isinstance(model, Model):
            continue
        for node in model.walk():
            if node.id in seen_nodes:
                continue
            seen_nodes.add(node.id)
            for shim in node.shims:
                if not isinstance(shim, PyTorchShim):
                    continue
                module = shim_module(shim)
                if module is None:
                    continue
                tensors: List[Tuple[str, torch.Tensor]] = list(module.named_parameters())
                if not trainable_only:
                    tensors += list(module.named_buffers())
                for name, tensor in tensors:
                    if id(tensor) in seen_tensors:
                        continue
                    seen_tensors.add(id(tensor))
                    if trainable_only and not tensor.requires_grad:
                        continue
                    key = f"{pipe_name}:{node.name}:{name}"
                    weights.append(Weight(key, pipe_name, tensor=tensor, shim=shim))
            for name in node.param_names:
                if node.has_param(name):
                    key = f"{pipe_name}:{node.name}:{name}"
                    weights.append(Weight(key, pipe_name, node=node, name=name))
    return weights


def _buckets(items: Sequence[Tuple[int, torch.Tensor]]) -> Iterator[List[Tuple[int, torch.Tensor]]]:
    """Group ``(index, tensor)`` pairs into buckets of one dtype and device
    of at most ``BUCKET_BYTES`` (a larger tensor is a bucket of its own)."""
    groups: Dict[Tuple[torch.dtype, torch.device], List[Tuple[int, torch.Tensor]]] = {}
    for index, tensor in items:
        groups.setdefault((tensor.dtype, tensor.device), []).append((index, tensor))
    for group in groups.values():
        bucket: List[Tuple[int, torch.Tensor]] = []
        size = 0
        for index, tensor in group:
            nbytes = tensor.numel() * tensor.element_size()
            if bucket and size + nbytes > BUCKET_BYTES:
                yield bucket
                bucket, size = [], 0
            bucket.append((index, tensor))
            size += nbytes
        if bucket:
            yield bucket


def _flat(tensors: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors]).to(device)


def _split(flat: torch.Tensor, tensors: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    sizes = [t.numel() for t in tensors]
    return [part.view(t.shape) for part, t in zip(flat.split(sizes), tensors)]


def broadcast_weights(weights: Sequence[Weight], device: torch.device) -> None:
    """Copy rank 0's value of every weight to all ranks."""
    values = [(i, weight.value()) for i, weight in enumerate(weights)]
    for bucket in _buckets(values):
        tensors = [tensor for _, tensor in bucket]
        flat = _flat(tensors, device)
        dist.broadcast(flat, src=0)
        for (index, tensor), part in zip(bucket, _split(flat, tensors)):
            weights[index].set_value(part.to(tensor.device))


def average_gradients(
    weights: Sequence[Weight], device: torch.device, summed_pipes: Iterable[str] = ()
) -> None:
    """Average the gradients of ``weights`` across ranks, in place; sum those
    of the components in ``summed_pipes`` (whose losses are sums over the
    batch). A weight without a gradient on some rank (a head that had no
    examples there) counts as zero; it gets the result wherever any rank has
    a gradient, and stays without one where no rank has. Where loss scaling
    (mixed precision) found an overflow on any rank, every rank skips the
    step."""
    world_size = dist.get_world_size()
    summed_pipes = set(summed_pipes)
    grads = [weight.grad() for weight in weights]
    present = torch.tensor([float(g is not None) for g in grads], device=device)
    dist.all_reduce(present, op=dist.ReduceOp.MAX)
    items = []
    for i, (weight, grad, anywhere) in enumerate(zip(weights, grads, present.tolist())):
        if anywhere:
            if grad is None:
                value = weight.value()
                grad = torch.zeros(value.shape, dtype=value.dtype, device=value.device)
            items.append((i, grad))
    overflowed = set()
    for bucket in _buckets(items):
        tensors = [tensor for _, tensor in bucket]
        flat = _flat(tensors, device)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        for (index, tensor), part in zip(bucket, _split(flat, tensors)):
            weight = weights[index]
            if weight.pipe not in summed_pipes:
                part /= world_size
            weight.set_grad(part.to(tensor.device))
            if weight.shim is not None and not bool(torch.isfinite(part).all()):
                overflowed.add(weight.shim)
    for shim in overflowed:
        _mark_overflow(shim)


def _mark_overflow(shim: PyTorchShim) -> None:
    """Make a shim's loss scaler skip this step and back off, as the scaler
    of a rank whose own gradients overflowed does (all ranks keep one
    scale). Unscaling a non-finite value is the scaler's public way to
    record an overflow."""
    scaler = shim_grad_scaler(shim)
    if scaler.found_inf:
        return
    device = next(cast(torch.nn.Module, shim_module(shim)).parameters()).device
    scaler.unscale([torch.full((1,), float("inf"), device=device)])


def share_seen_classes(nlp: Language, device: torch.device) -> None:
    """spaCy's transition-based components (``ner``, ``parser``) give the
    classes their training hasn't seen yet the batch's lowest score; a class
    seen on any rank counts as seen on every rank, as in one process that
    sees the batches of all ranks."""
    nodes = []
    sizes = []
    for _, proc in nlp.pipeline:
        moves = getattr(proc, "moves", None)
        model = getattr(proc, "model", None)
        if moves is None or not isinstance(model, Model):
            continue
        for node in model.walk():
            if isinstance(node.attrs.get("unseen_classes"), set):
                nodes.append(node)
                sizes.append(moves.n_moves)
    if not nodes:
        return
    unseen = torch.zeros(sum(sizes), device=device)
    offset = 0
    for node, size in zip(nodes, sizes):
        for class_id in node.attrs["unseen_classes"]:
            unseen[offset + class_id] = 1.0
        offset += size
    dist.all_reduce(unseen, op=dist.ReduceOp.MIN)
    flags = unseen.tolist()
    offset = 0
    for node, size in zip(nodes, sizes):
        node.attrs["unseen_classes"].intersection_update(
            class_id for class_id in range(size) if flags[offset + class_id]
        )
        offset += size


def broadcast_json(value: Any, device: torch.device) -> Any:
    """Rank 0's JSON-serializable ``value`` on every rank (no pickling)."""
    data = json.dumps(value).encode("utf8") if dist.get_rank() == 0 else b""
    size = torch.tensor([len(data)], dtype=torch.int64, device=device)
    dist.broadcast(size, src=0)
    buffer = torch.zeros(int(size.item()), dtype=torch.uint8, device=device)
    if dist.get_rank() == 0:
        buffer.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    dist.broadcast(buffer, src=0)
    return json.loads(bytes(buffer.cpu().numpy()).decode("utf8"))


def all_sum(values: Dict[str, float], device: torch.device) -> Dict[str, float]:
    """Sum float values over ranks (every rank must pass the same keys)."""
    keys = sorted(values)
    tensor = torch.tensor([float(values[key]) for key in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return dict(zip(keys, tensor.tolist()))


def check_same_on_all_ranks(what: str, value: Any, device: torch.device, fix: str) -> None:
    """Raise on every rank when ``value`` (JSON-serializable) differs
    between ranks, naming the ranks that differ from rank 0."""
    digest = hashlib.sha256(srsly.json_dumps(value, sort_keys=True).encode("utf8")).digest()
    mine = torch.tensor(list(digest[:8]), dtype=torch.int64, device=device)
    gathered = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, mine)
    differing = [rank for rank, other in enumerate(gathered) if not torch.equal(other, gathered[0])]
    if differing:
        ranks = ", ".join(str(rank) for rank in differing)
        raise RuntimeError(Errors.RANKS_DIFFER.format(ranks=ranks, what=what, fix=fix))
