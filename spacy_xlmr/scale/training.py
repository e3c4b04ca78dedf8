"""Data-parallel training on ``torch.distributed``: spaCy's training loop
run on every rank of a process group started by ``torchrun`` (or Ray Train).

Every rank builds the same pipeline from the same config, then takes rank
0's weights. Every rank reads the same stream of batches (spaCy's own
corpus, shuffling and batcher, with a random generator of their own so that
training can't make the streams diverge); each step takes ``world_size``
consecutive batches and rank ``r`` trains on the ``r``-th, so no example is
seen twice per epoch and every rank takes the same steps (a rank whose
batch is missing at the end of the stream trains on nothing and still
steps). Between the last backward pass of a step and the first weight
update, the gradients of every trainable weight are averaged over the ranks
(``collectives.average_gradients``). Rank 0 evaluates and shares the scores
so that every rank stops at the same step; it alone logs and saves.
"""
import hashlib
import io
import os
import random
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from timeit import default_timer as timer
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import torch
import torch.distributed as dist
from spacy import util
from spacy.cli._util import setup_gpu, show_validation_error
from spacy.language import Language
from spacy.schemas import ConfigSchemaTraining
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.training.loop import (
    DIR_MODEL_BEST,
    DIR_MODEL_LAST,
    clean_output_dir,
    create_before_to_disk_callback,
    create_evaluation_callback,
    create_train_batches,
    subdivide_batch,
    update_meta,
)
from thinc.api import constant, fix_random_seed, set_gpu_allocator
from wasabi import Printer

from ..pipeline.transformer import XLMRTransformer
from ..storage import copy_pipeline, save_pipeline
from .collectives import (
    all_sum,
    average_gradients,
    broadcast_json,
    broadcast_weights,
    check_same_on_all_ranks,
    pipeline_weights,
    share_seen_classes,
)

# How long a rank waits for the others in a collective (rendezvous, a step,
# rank 0's evaluation or save) before it fails.
DEFAULT_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Ranks:
    """This process's place in the process group."""

    rank: int
    world_size: int
    device: torch.device
    gpu_id: int  # -1 on CPU


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
                f"Local rank {local_rank} has no GPU: this machine has {n_gpus} visible "
                f"GPU(s). Start at most {n_gpus} processes per node (torchrun "
                f"--nproc-per-node {max(n_gpus, 1)}), or train on CPU without --gpu-id."
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
                f"Rank {os.environ.get('RANK', '?')} could not join the process group at "
                f"{address} ({backend}): {err}. Check that every node can reach that "
                "address (torchrun --rdzv-endpoint / --master-addr) and that all "
                "ranks were started."
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


def train(
    nlp: Language,
    output_path: Optional[Path],
    *,
    ranks: Ranks,
    stdout: IO = sys.stdout,
    stderr: IO = sys.stderr,
) -> Tuple[Language, Optional[Path]]:
    """spaCy's ``spacy.training.loop.train`` for one rank of a process group:
    the same config keys and the same logs (on rank 0), with weights
    broadcast, batches dealt, gradients averaged and evaluation shared."""
    msg = Printer(no_print=True)
    config = nlp.config.interpolate()
    seed = config["training"]["seed"]
    if seed is not None:
        fix_random_seed(seed)
    data_rng = random.getstate()
    allocator = config["training"]["gpu_allocator"]
    if ranks.gpu_id >= 0 and allocator:
        set_gpu_allocator(allocator)
    T = util.registry.resolve(config["training"], schema=ConfigSchemaTraining)
    train_corpus, dev_corpus = util.resolve_dot_names(
        config, [T["train_corpus"], T["dev_corpus"]]
    )
    optimizer = T["optimizer"]
    frozen_components = T["frozen_components"]
    before_to_disk = create_before_to_disk_callback(T["before_to_disk"])
    is_main = ranks.rank == 0

    check_same_on_all_ranks(
        "pipelines", describe_pipeline(nlp), ranks.device,
        "Start every rank with the same config, overrides, code and data "
        "(the [initialize] step reads labels from the training data).",
    )
    broadcast_weights(pipeline_weights(nlp, trainable_only=False), ranks.device)
    if seed is not None:
        # Dropout and masking draw differently on each rank.
        fix_random_seed(seed + ranks.rank)
    trainable = pipeline_weights(nlp, exclude=frozen_components)
    summed_pipes = summed_components(nlp)
    encoders = [proc for _, proc in nlp.pipeline if isinstance(proc, XLMRTransformer)]
    for encoder in encoders:
        encoder.listener_gradient_scales = {name: float(ranks.world_size) for name in summed_pipes}

    def save_checkpoint(is_best: bool) -> None:
        if output_path is None or not is_main:
            return
        # Unlike spaCy's loop, all or nothing: an interrupted save keeps the
        # previous model-last and model-best.
        with nlp.use_params(optimizer.averages):
            save_pipeline(before_to_disk(nlp), output_path / DIR_MODEL_LAST)
        if is_best:
            copy_pipeline(output_path / DIR_MODEL_LAST, output_path / DIR_MODEL_BEST)

    evaluate = create_evaluation_callback(nlp, dev_corpus, T["score_weights"])

    def evaluate_on_rank_zero() -> Tuple[float, Dict[str, Any]]:
        score, scores = broadcast_json(list(evaluate()) if is_main else None, ranks.device)
        return score, scores

    steps = train_while_improving(
        nlp,
        optimizer,
        deal_batches(
            own_random_state(
                create_train_batches(nlp, train_corpus, T["batcher"], T["max_epochs"]),
                data_rng,
            ),
            ranks,
        ),
        evaluate_on_rank_zero,
        trainable=trainable,
        summed_pipes=summed_pipes,
        ranks=ranks,
        dropout=T["dropout"],
        accumulate_gradient=T["accumulate_gradient"],
        patience=T["patience"],
        max_steps=T["max_steps"],
        eval_frequency=T["eval_frequency"],
        exclude=frozen_components,
        annotating_components=T["annotating_components"],
        before_update=T["before_update"],
    )
    if is_main:
        clean_output_dir(output_path)
        stdout.write(msg.info(f"Pipeline: {nlp.pipe_names}") + "\n")
        if frozen_components:
            stdout.write(msg.info(f"Frozen components: {frozen_components}") + "\n")
        stdout.write(msg.info(f"Initial learn rate: {optimizer.learn_rate}") + "\n")
        with nlp.select_pipes(disable=frozen_components):
            log_step, finalize_logger = T["logger"](nlp, stdout, stderr)
    else:
        log_step, finalize_logger = (lambda info: None), (lambda: None)
    info: Dict[str, Any] = {}
    start_time = timer()
    seconds = 0.0
    try:
        for info, is_best_checkpoint in steps:
            seconds = timer() - start_time  # to the last step (not its checkpoint)
            if is_best_checkpoint is not None:
                with nlp.select_pipes(disable=frozen_components):
                    update_meta(T, nlp, info)
                save_checkpoint(is_best_checkpoint)
                if output_path is not None:
                    info["output_path"] = str(output_path / DIR_MODEL_LAST)
            log_step(info if is_best_checkpoint is not None else None)
    except Exception as err:
        if output_path is not None and is_main:
            stdout.write(
                msg.warn(
                    f"Aborting and saving the final best model. Encountered exception: {err!r}"
                )
                + "\n"
            )
        raise
    finally:
        finalize_logger()
        save_checkpoint(False)
        for encoder in encoders:
            encoder.listener_gradient_scales = {}
    if optimizer.averages:
        nlp.use_params(optimizer.averages)
    if info and seconds > 0:
        words_per_second = info["words"] / seconds
        stdout.write(
            msg.info(
                f"{info['step'] + 1} steps on {ranks.world_size} rank(s), "
                f"{words_per_second:.0f} words/s over all ranks"
            )
            + "\n"
        )
    if output_path is None or not is_main:
        return nlp, None
    saved = output_path / DIR_MODEL_LAST
    stdout.write(msg.good("Saved pipeline to output directory", saved) + "\n")
    return nlp, saved


def describe_pipeline(nlp: Language) -> Dict[str, Any]:
    """What must be equal on every rank before the weights are broadcast:
    the config, the components' labels and every weight's shape."""
    labels = {}
    for name, proc in nlp.pipeline:
        try:
            labels[name] = proc.label_data  # type: ignore[attr-defined]
        except (AttributeError, NotImplementedError, ValueError):
            labels[name] = None
    return {
        "config": nlp.config.to_str(),
        "labels": repr(labels),
        "shapes": [(w.key, w.shape) for w in pipeline_weights(nlp, trainable_only=False)],
    }


def summed_components(nlp: Language) -> List[str]:
    """The components whose gradients are sums over the batch: spaCy's own
    (its convention), unless they declare ``loss_reduction = "mean"`` as
    spacy-xlmr's heads do; the XLM-R encoder's gradients come from its
    listeners, whose summed contributions it scales by the number of ranks.
    Summing these over the ranks and averaging the others gives each step
    the gradient of one process that sees the batches of all ranks."""
    return [
        name for name, proc in nlp.pipeline
        if not isinstance(proc, XLMRTransformer)
        and getattr(proc, "loss_reduction", "sum") == "sum"
    ]


def own_random_state(stream: Iterable, state: Any) -> Iterator:
    """Iterate ``stream`` with Python's global random generator set to a
    state of its own: the shuffles (and augmenters) of the batch stream then
    draw the same numbers on every rank whatever the training draws."""
    iterator = iter(stream)
    while True:
        with _random_state(state) as holder:
            try:
                item = next(iterator)
            except StopIteration:
                return
        state = holder[0]
        yield item


@contextmanager
def _random_state(state: Any) -> Iterator[List[Any]]:
    outer = random.getstate()
    random.setstate(state)
    holder = [state]
    try:
        yield holder
    finally:
        holder[0] = random.getstate()
        random.setstate(outer)


def deal_batches(
    batches: Iterable[Tuple[int, List[Example]]], ranks: Ranks
) -> Iterator[Tuple[int, List[Example], int, str]]:
    """One step per ``world_size`` consecutive batches: yields the epoch, this
    rank's batch (empty where the stream ended before it), the words of all
    ranks' batches and a digest of their texts (to check that the ranks
    read the same data)."""
    iterator = iter(batches)
    while True:
        group = []
        for _ in range(ranks.world_size):
            try:
                group.append(next(iterator))
            except StopIteration:
                break
        if not group:
            return
        digest = hashlib.sha256()
        for _, batch in group:
            for eg in batch:
                digest.update(eg.reference.text.encode("utf8", "surrogatepass"))
        words = sum(len(eg) for _, batch in group for eg in batch)
        mine = list(group[ranks.rank][1]) if ranks.rank < len(group) else []
        yield group[0][0], mine, words, digest.hexdigest()


def train_while_improving(
    nlp: Language,
    optimizer,
    steps: Iterable[Tuple[int, List[Example], int, str]],
    evaluate,
    *,
    trainable,
    summed_pipes: List[str],
    ranks: Ranks,
    dropout,
    eval_frequency: int,
    accumulate_gradient: int,
    patience: int,
    max_steps: int,
    exclude: List[str],
    annotating_components: List[str],
    before_update,
) -> Iterator[Tuple[Dict[str, Any], Optional[bool]]]:
    """``spacy.training.loop.train_while_improving`` for one rank: the same
    steps, with the gradients averaged over the ranks before the weights
    move. Yields ``(info, is_best_checkpoint)``, with the losses averaged
    over the ranks and the words of all ranks."""
    # constant() is a generator (typed as an Iterable): iter() returns it as it is.
    dropouts: Iterator[float] = iter(constant(dropout)) if isinstance(dropout, float) else dropout
    encoders = [proc for _, proc in nlp.pipeline if isinstance(proc, XLMRTransformer)]
    trained = [
        name for name, proc in nlp.pipeline
        if name not in exclude and getattr(proc, "is_trainable", False)
        and getattr(proc, "model", None) not in (True, False, None)
    ]
    results: List[Tuple[float, int]] = []
    losses: Dict[str, float] = {}
    words_seen = 0
    data_digest = hashlib.sha256()
    start_time = timer()
    for step, (epoch, batch, step_words, step_digest) in enumerate(steps):
        if before_update:
            before_update(nlp, {"step": step, "epoch": epoch})
        drop = next(dropouts)
        for subbatch in subdivide_batch(batch, accumulate_gradient):
            nlp.update(
                subbatch, drop=drop, losses=losses, sgd=False,  # type: ignore[arg-type]
                exclude=exclude, annotates=annotating_components,
            )
        for encoder in encoders:
            encoder.backprop_pending()
        average_gradients(trainable, ranks.device, summed_pipes=summed_pipes)
        share_seen_classes(nlp, ranks.device)
        for name, proc in nlp.pipeline:
            if name in trained:
                proc.finish_update(optimizer)  # type: ignore[attr-defined]
        optimizer.step_schedules()
        words_seen += step_words
        data_digest.update(step_digest.encode("ascii"))
        if not (step % eval_frequency):
            check_same_on_all_ranks(
                "training data", data_digest.hexdigest(), ranks.device,
                "Every rank must read the same [corpora.train] (copy the "
                "same files to the same path on every machine).",
            )
            for name in trained:
                losses.setdefault(name, 0.0)
            shared = {name: losses[name] for name in trained}
            summed_losses = all_sum(shared, ranks.device)
            losses.update({k: v / ranks.world_size for k, v in summed_losses.items()})
            if optimizer.averages:
                with nlp.use_params(optimizer.averages):
                    score, other_scores = evaluate()
            else:
                score, other_scores = evaluate()
            results.append((score, step))
            is_best_checkpoint: Optional[bool] = score == max(results)[0]
        else:
            score, other_scores = (None, None)
            is_best_checkpoint = None
        info = {
            "epoch": epoch,
            "step": step,
            "score": score,
            "other_scores": other_scores,
            "losses": losses,
            "checkpoints": results,
            "seconds": int(timer() - start_time),
            "words": words_seen,
        }
        yield info, is_best_checkpoint
        if is_best_checkpoint is not None:
            losses = {}
        best_score, best_negative_step = max((s, -i) for s, i in results)
        if patience and (step + best_negative_step) >= patience:
            break
        if max_steps and step >= max_steps:
            break
