"""The gradient all-reduce of data-parallel training, on 2 gloo processes:
missing gradients count as zero without a hang, summed and averaged
components, one loss-scaling decision for all ranks, rank 0's weights."""
import os
import socket
from typing import Dict

import numpy
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from thinc.api import Linear, PyTorchGradScaler, PyTorchShim

from spacy_xlmr.scale.collectives import (
    Weight,
    average_gradients,
    broadcast_json,
    broadcast_weights,
    check_same_on_all_ranks,
)

CPU = torch.device("cpu")


def run_rank(rank: int, port: int, results: Dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        results[rank] = check_collectives(rank)
    finally:
        dist.destroy_process_group()


def check_collectives(rank: int) -> Dict:
    torch.manual_seed(rank)  # different weights on each rank before the broadcast
    module = torch.nn.Linear(3, 2)
    scaler = PyTorchGradScaler(enabled=True)
    shim = PyTorchShim(module, grad_scaler=scaler)
    spacy_layer = Linear(2, 3)
    spacy_layer.initialize()
    weights = [
        Weight("head:weight", "head", tensor=module.weight, shim=shim),
        Weight("head:bias", "head", tensor=module.bias, shim=shim),
        Weight("ner:W", "ner", node=spacy_layer, name="W"),
        Weight("ner:b", "ner", node=spacy_layer, name="b"),
    ]
    broadcast_weights(weights, CPU)
    out = {"weight": module.weight.detach().clone(), "W": spacy_layer.get_param("W").copy()}
    # Rank 0 has gradients for everything; rank 1 only for the head's weight
    # and the spaCy layer's W (a head without examples on that rank).
    module.weight.grad = torch.full((2, 3), float(rank + 1))
    if rank == 0:
        module.bias.grad = torch.ones(2)
    spacy_layer.set_grad("W", numpy.full((2, 3), rank + 1.0, dtype="f"))
    average_gradients(weights, CPU, summed_pipes=["ner"])
    out.update(
        weight_grad=module.weight.grad.clone(), bias_grad=module.bias.grad.clone(),
        W_grad=spacy_layer.get_grad("W").copy(), b_has_grad=spacy_layer.has_grad("b"),
        found_inf=scaler.found_inf,
    )
    # An overflow on rank 1 only: both ranks skip the step.
    module.weight.grad.fill_(float("inf") if rank == 1 else 1.0)
    average_gradients(weights, CPU)
    out["found_inf_after_overflow"] = scaler.found_inf
    out["scores"] = broadcast_json({"ents_f": 0.5 + rank} if rank == 0 else None, CPU)
    try:
        check_same_on_all_ranks("configs", {"seed": rank}, CPU, "Use one config.")
    except RuntimeError as err:
        out["mismatch"] = str(err)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def results() -> Dict:
    with mp.Manager() as manager:
        shared = manager.dict()
        context = mp.start_processes(
            run_rank, args=(free_port(), shared), nprocs=2, join=False, start_method="spawn"
        )
        for process in context.processes:
            process.join(timeout=120)
        hung = [p for p in context.processes if p.is_alive()]
        for process in hung:
            process.kill()
        assert not hung, "a rank hung"
        assert all(p.exitcode == 0 for p in context.processes), "a rank failed"
        return dict(shared)


def test_weights_are_rank_zeros(results):
    for name in ("weight", "W"):
        numpy.testing.assert_array_equal(numpy.asarray(results[0][name]), results[1][name])


def test_gradients_averaged_or_summed_missing_ones_count_as_zero(results):
    for rank in (0, 1):
        result = results[rank]
        # Averaged (a spacy-xlmr head): (1 + 2) / 2; bias only on rank 0: 1 / 2.
        torch.testing.assert_close(result["weight_grad"], torch.full((2, 3), 1.5))
        torch.testing.assert_close(result["bias_grad"], torch.full((2,), 0.5))
        # Summed (spaCy's convention): 1 + 2.
        numpy.testing.assert_array_equal(result["W_grad"], numpy.full((2, 3), 3.0))
        # No rank had a gradient for b: it still has none.
        assert result["b_has_grad"] is False
        assert result["found_inf"] is False


def test_an_overflow_on_one_rank_skips_the_step_on_all(results):
    assert results[0]["found_inf_after_overflow"] is True
    assert results[1]["found_inf_after_overflow"] is True


def test_rank_zeros_scores_and_mismatches_reach_every_rank(results):
    assert results[0]["scores"] == results[1]["scores"] == {"ents_f": 0.5}
    for rank in (0, 1):
        message = results[rank]["mismatch"]
        assert message == "Rank(s) 1 have other configs than rank 0. Use one config."
