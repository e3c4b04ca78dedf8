"""spaCy's training loop on one rank of a ``torch.distributed`` process
group (``train``, which ``training.train_distributed`` runs on every rank).

Every rank has built the same pipeline from the same config; the loop checks
that it is the same (``describe_pipeline``), then takes rank 0's weights.
Every rank reads the same stream of batches (spaCy's own corpus, shuffling
and batcher, with a random generator of their own so that training can't
make the streams diverge: ``own_random_state``); each step takes
``world_size`` consecutive batches and rank ``r`` trains on the ``r``-th
(``deal_batches``), so no example is seen twice per epoch and every rank
takes the same steps (a rank whose batch is missing at the end of the stream
trains on nothing and still steps). Between the last backward pass of a step
and the first weight update, the gradients of every trainable weight are
averaged over the ranks (``collectives.average_gradients``; summed for the
components in ``summed_components``) in ``train_while_improving``. Rank 0
evaluates and shares the scores so that every rank stops at the same step;
it alone logs and saves.
"""
import hashlib
import random
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from timeit import default_timer as timer
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional, Tuple

import torch
from spacy import util
from spacy.language import Language
from spacy.schemas import ConfigSchemaTraining
from spacy.training import Example
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


@dataclass(frozen=True)
class Ranks:
    """This process's place in the process group."""

    rank: int
    world_size: int
    device: torch.device
    gpu_id: int  # -1 on CPU


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
