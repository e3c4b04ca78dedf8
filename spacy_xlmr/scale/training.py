"""Data-parallel training on ``torch.distributed``: join the process group
that ``torchrun`` (or Ray Train) started and run spaCy's training loop on
every rank of it (``loop.train``). ``train_distributed`` is what
``spacy-xlmr train`` runs under a launcher (``launched_distributed``), as
``spacy train`` loads the config and initializes the pipeline;
``ray_train_loop`` is the function of a Ray Train worker. Joining
(``join_process_group``) refuses a rank without a GPU of its own and names
the rendezvous address a rank could not reach.
"""
import io
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Dict, Optional, Union

import torch
import torch.distributed as dist
from spacy import util
from spacy.cli._util import setup_gpu, show_validation_error
from spacy.training.initialize import init_nlp
from wasabi import Printer

from ..errors import Errors
from .loop import Ranks, train

# How long a rank waits for the others in a collective (rendezvous, a step,
# rank 0's evaluation or save) before it fails.
DEFAULT_TIMEOUT = timedelta(minutes=30)


def launched_distributed() -> bool:
    """Whether this process was started by torchrun (or another launcher
    that sets ``WORLD_SIZE``) or runs inside an initialized process group."""
    return "WORLD_SIZE" in os.environ or (dist.is_available() and dist.is_initialized())


def join_process_group(
    use_gpu: int, *, gpu_id: Optional[int] = None, timeout: timedelta = DEFAULT_TIMEOUT
) -> Ranks:
    """Join the process group the launcher describes (``nccl`` when training
    on GPUs, each rank on its ``LOCAL_RANK`` GPU unless ``gpu_id`` names
    another; ``gloo`` on CPU), or use the one a launcher like Ray Train
    initialized."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0")) if gpu_id is None else gpu_id
    gpu_id = -1
    if use_gpu >= 0:
        n_gpus = torch.cuda.device_count()
        if local_rank >= n_gpus:
            raise RuntimeError(
                Errors.NO_GPU_FOR_RANK.format(
                    local_rank=local_rank, n_gpus=n_gpus, n_procs=max(n_gpus, 1)
                )
            )
        gpu_id = local_rank
        torch.cuda.set_device(gpu_id)
    if not dist.is_initialized():
        backend = "nccl" if gpu_id >= 0 else "gloo"
        try:
            dist.init_process_group(backend, timeout=timeout)
        except Exception as err:
            address = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
            raise RuntimeError(
                Errors.CANT_JOIN_PROCESS_GROUP.format(
                    rank=os.environ.get("RANK", "?"), address=address, backend=backend,
                    error=err,
                )
            ) from err
    device = torch.device("cuda", gpu_id) if gpu_id >= 0 else torch.device("cpu")
    return Ranks(dist.get_rank(), dist.get_world_size(), device, gpu_id)


def train_distributed(
    config_path: Union[str, Path],
    output_path: Optional[Union[str, Path]] = None,
    *,
    use_gpu: int = -1,
    overrides: Dict[str, Any] = util.SimpleFrozenDict(),
    gpu_id: Optional[int] = None,
    timeout: timedelta = DEFAULT_TIMEOUT,
    stdout: IO = sys.stdout,
    stderr: IO = sys.stderr,
) -> Optional[Path]:
    """What ``spacy train`` does, on every rank of a process group: load the
    config, initialize the pipeline, train it data-parallel. Returns the
    path of ``model-last`` (on rank 0; None elsewhere)."""
    created_group = not dist.is_initialized()
    ranks = join_process_group(use_gpu, gpu_id=gpu_id, timeout=timeout)
    msg = Printer(no_print=ranks.rank != 0)
    if ranks.rank != 0:
        stdout = stderr = io.StringIO()
    try:
        config_path = Path(config_path)
        output_path = Path(output_path) if output_path is not None else None
        if use_gpu >= 0 and use_gpu != ranks.gpu_id and ranks.rank == 0:
            msg.info(f"--gpu-id {use_gpu} ignored: each rank trains on its LOCAL_RANK GPU")
        if output_path is not None and ranks.rank == 0:
            output_path.mkdir(parents=True, exist_ok=True)
            msg.info(f"Saving to output directory: {output_path}")
        msg.info(f"Data-parallel training on {ranks.world_size} ranks ({ranks.device.type})")
        setup_gpu(ranks.gpu_id, silent=True)
        with show_validation_error(config_path):
            config = util.load_config(config_path, overrides=overrides, interpolate=False)
        msg.divider("Initializing pipeline")
        with show_validation_error(config_path, hint_fill=False):
            nlp = init_nlp(config, use_gpu=ranks.gpu_id)
        msg.good("Initialized pipeline")
        msg.divider("Training pipeline")
        _, saved = train(nlp, output_path, ranks=ranks, stdout=stdout, stderr=stderr)
        dist.barrier()
        return saved
    finally:
        if created_group:
            dist.destroy_process_group()


def ray_train_loop(config: Dict[str, Any]) -> None:
    """The function each worker of a Ray Train ``TorchTrainer`` runs: trains
    as ``spacy-xlmr train`` does under torchrun, in the process group Ray
    set up. ``config`` (``train_loop_config``): ``config_path``,
    ``output_path`` (on rank 0's machine: use a shared file system) and
    optionally ``overrides`` (``{"training.max_steps": 1000}``),
    ``code_path`` (as ``--code``) and ``use_gpu`` (a bool; each worker uses
    the GPU Ray assigned it)."""
    from ray.train.torch import get_device
    from spacy.cli._util import import_code

    import_code(config.get("code_path"))
    gpu_id = None
    if config.get("use_gpu"):
        gpu_id = get_device().index or 0
    train_distributed(
        config["config_path"], config.get("output_path"),
        use_gpu=0 if gpu_id is not None else -1, gpu_id=gpu_id,
        overrides=config.get("overrides", {}),
    )
