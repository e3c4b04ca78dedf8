"""Functions the benchmarks' training configs name, registered with spaCy.

This file is what the scripts pass to ``spacy train --code`` (and to
``spacy-xlmr train --code``): spaCy loads it by its path, not as part of the
``lib`` package, so it puts ``benchmarks/`` on ``sys.path`` itself to import
``lib.memory``.

* ``spacy-xlmr-bench.timed_batches.v1``: a batcher wrapper that fixes each
  epoch's order with its own seeded RNG and timestamps every batch.
* ``spacy-xlmr-bench.step_timer.v1``: spaCy's console logger plus one JSON
  record per update step (NER dev scores at evaluated steps).
* ``spacy-xlmr-bench.cats_step_timer.v1``: the same with textcat dev scores.
* ``spacy-xlmr-train-speed.logger.v1``: the same with wall and CPU time and
  the process's memory after every step.
* With ``SPACY_XLMR_BENCH_MEM_DIR`` set, every process that loads this file
  writes its peak memory to ``<dir>/rank<RANK>.json`` at exit.
"""
import atexit
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

from spacy.util import registry

if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lib.memory import MEM_ENV, proc_status_kb, reset_peak_rss, ru_maxrss_mb  # noqa: E402

CODE = Path(__file__).resolve()
NER_DEV_KEYS = ("ents_p", "ents_r", "ents_f", "speed")
CATS_DEV_KEYS = ("cats_score", "cats_macro_f", "cats_micro_f", "cats_macro_auc", "speed")

_BATCHES: Dict[str, List] = {"start": [], "cpu_start": [], "words": []}


@registry.batchers("spacy-xlmr-bench.timed_batches.v1")
def timed_batches(
    batcher: Callable[[Iterable], Iterable[List]], shuffle_seed: Optional[int] = None
) -> Callable:
    """Wrap a batcher: record, for every batch the training loop draws, the
    time it was drawn (= the start of that update step; wall and CPU time)
    and its word count.

    With ``shuffle_seed``, each epoch's examples are first put in a canonical
    order and shuffled with a private RNG seeded by (shuffle_seed, epoch).
    spaCy's own per-epoch shuffle uses the global ``random`` module, which
    components also draw from during updates (the transition-based ``ner``
    does), so without this the two systems would see the same examples in
    different orders from the second epoch on."""
    epochs = [0]

    def batch(items: Iterable) -> Iterable[List]:
        if shuffle_seed is not None:
            items = sorted(items, key=_example_key)
            random.Random(f"{shuffle_seed}-{epochs[0]}").shuffle(items)
        epochs[0] += 1
        for examples in batcher(items):
            _BATCHES["words"].append(sum(len(eg) for eg in examples))
            _BATCHES["cpu_start"].append(time.process_time())
            _BATCHES["start"].append(time.perf_counter())
            yield examples

    return batch


def _example_key(eg) -> tuple:
    ref = eg.reference
    return (
        ref.text,
        tuple(t.text for t in ref),
        tuple((e.start, e.end, e.label_) for e in ref.ents),
    )


def _step_logger(path: Optional[str], dev_keys) -> Callable:
    """spaCy's console logger, plus a JSON file with one record per update
    step: start and end time, words, and whether the step was evaluated (an
    evaluated step's time includes the dev evaluation and checkpoint saving),
    with the ``dev_keys`` of the dev scores at evaluated steps."""
    console = registry.loggers.get("spacy.ConsoleLogger.v3")(progress_bar=None)

    def setup(nlp, stdout=sys.stdout, stderr=sys.stderr):
        log_console, finalize_console = console(nlp, stdout, stderr)
        steps: List[Dict] = []

        def log_step(info: Optional[Dict]) -> None:
            end = time.perf_counter()
            i = len(steps)
            record = {
                "step": i,
                "start": _BATCHES["start"][i],
                "end": end,
                "words": _BATCHES["words"][i],
                "evaluated": info is not None,
            }
            if info is not None:
                record["score"] = info["score"]
                record["losses"] = {k: float(v) for k, v in info["losses"].items()}
                other = info.get("other_scores") or {}
                record["dev"] = {k: other.get(k) for k in dev_keys}
            steps.append(record)
            log_console(info)

        def finalize() -> None:
            finalize_console()
            if path:
                Path(path).write_text(json.dumps(steps), encoding="utf8")

        return log_step, finalize

    return setup


@registry.loggers("spacy-xlmr-bench.step_timer.v1")
def step_timer(path: Optional[str] = None) -> Callable:
    """One JSON record per update step, NER dev scores (see ``_step_logger``)."""
    return _step_logger(path, NER_DEV_KEYS)


@registry.loggers("spacy-xlmr-bench.cats_step_timer.v1")
def cats_step_timer(path: Optional[str] = None) -> Callable:
    """One JSON record per update step, textcat dev scores."""
    return _step_logger(path, CATS_DEV_KEYS)


@registry.loggers("spacy-xlmr-train-speed.logger.v1")
def memory_step_logger(path: Optional[str] = None) -> Callable:
    """spaCy's console logger, plus a JSON file with one record per step:
    start/end wall and CPU time, words, whether it was evaluated, and the
    process's VmRSS and VmHWM after the step. The high-water mark is reset
    when the logger is set up (after the pipeline is initialised) and after
    every evaluated step, so a non-evaluated step's VmHWM is the peak since
    the last evaluation."""
    console = registry.loggers.get("spacy.ConsoleLogger.v3")(progress_bar=None)

    def setup(nlp, stdout=sys.stdout, stderr=sys.stderr):
        log_console, finalize_console = console(nlp, stdout, stderr)
        init_mem = proc_status_kb("VmRSS", "VmHWM")
        can_reset = reset_peak_rss()
        steps: List[Dict] = []

        def log_step(info: Optional[Dict]) -> None:
            end = time.perf_counter()
            cpu_end = time.process_time()
            mem = proc_status_kb("VmRSS", "VmHWM")
            i = len(steps)
            record = {
                "step": i,
                "start": _BATCHES["start"][i],
                "end": end,
                "cpu_start": _BATCHES["cpu_start"][i],
                "cpu_end": cpu_end,
                "words": _BATCHES["words"][i],
                "evaluated": info is not None,
                "rss_kb": mem["VmRSS"],
                "hwm_kb": mem["VmHWM"],
            }
            if info is not None:
                record["losses"] = {k: float(v) for k, v in info["losses"].items()}
                reset_peak_rss()
            steps.append(record)
            log_console(info)

        def finalize() -> None:
            finalize_console()
            if path:
                import spacy_xlmr

                data = {
                    "spacy_xlmr_file": spacy_xlmr.__file__,
                    "init_rss_kb": init_mem["VmRSS"],
                    "init_hwm_kb": init_mem["VmHWM"],
                    "hwm_reset_supported": can_reset,
                    "steps": steps,
                }
                Path(path).write_text(json.dumps(data), encoding="utf8")

        return log_step, finalize

    return setup


def _record_memory() -> None:
    """At exit, with ``SPACY_XLMR_BENCH_MEM_DIR`` set: this process's peak
    RSS, threads (and peak GPU memory) in ``<dir>/rank<RANK>.json``."""
    folder = os.environ.get(MEM_ENV)
    if not folder:
        return
    import torch

    record = {
        "vmhwm_mb": proc_status_kb("VmHWM")["VmHWM"] / 1024,
        "ru_maxrss_mb": ru_maxrss_mb(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        record["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    rank = os.environ.get("RANK", "0")
    with open(os.path.join(folder, f"rank{rank}.json"), "w", encoding="utf8") as file_:
        json.dump(record, file_)


atexit.register(_record_memory)
