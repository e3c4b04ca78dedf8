#!/usr/bin/env python
"""Training speed and memory of `spacy train`: spacy_xlmr vs spacy-transformers.

Runs ``python -m spacy train`` for a fixed number of update steps, one
subprocess per run, and reports the words per second of the update steps and
the peak resident memory of the process:

  A. ``xlmr_transformer`` + ``xlmr_ner``: ``configs/ner-tiny.cfg``
  B. spacy-transformers ``transformer`` (TransformerModel.v3) + spaCy ``ner``
     (TransformerListener.v1, reduce_mean): ``configs/ner-tiny.cfg`` with its
     [components] replaced by those of ``benchmarks/configs/ner_spacy_trf.cfg``
  C. A with ``gradient_checkpointing = true`` on the encoder
     (``spacy-xlmr.Encoder.v1``); only for the sizes in ``--gc-sizes``
     (default: base)

each with a tiny and a base-sized XLM-R checkpoint (random weights, built once
under ``--checkpoints``, default ``--output``, with
``spacy_xlmr.checkpoints.build_checkpoint``; the
SentencePiece vocabulary, about 8k pieces, is trained on ``data/text``, so the
base-sized model has xlm-roberta-base's encoder layers but a much smaller
embedding matrix, see ``--full-vocab``).

The configs actually run are written to ``<output>/configs/``. Everything but
[components] comes from ``configs/ner-tiny.cfg``, with these changes, the same
for every system of a size:

* ``[training.batcher]``: the config's batcher (tiny: ``batch_by_words.v1``,
  1000 words; base: ``batch_by_sequence.v1``, ``--base-batch`` sentences)
  wrapped in ``spacy-xlmr-bench.timed_batches.v1`` (``lib/train_hooks.py``), which fixes
  each epoch's order with its own seeded RNG (so all systems see the same
  batches) and timestamps every batch.
* ``[training.logger]``: ``spacy-xlmr-train-speed.logger.v1`` (spaCy's console
  logger plus one JSON record per step, see below).
* ``training.max_steps``; ``training.eval_frequency`` larger than that, so the
  dev set (the first ``--dev-limit`` sentences) is scored only at step 0, which
  spaCy always evaluates. ``spacy train`` runs without ``--output``: nothing is
  saved.
* base only: learn rate 5e-5 (as ``configs/ner-base.cfg``), warmup 10% of the
  steps. The learn rate doesn't change the work per step.

How words/s is computed. spaCy's loop runs steps 0..max_steps. For every step
the batcher wrapper records the time (``time.perf_counter``, and the process CPU
time, ``time.process_time``) just before it hands the batch to the loop, and the
logger records them again when the loop calls it after that step: the
interval covers ``nlp.update`` (forward and backward of every component), each
component's ``finish_update`` (the optimizer) and the schedule step; it
excludes reading and batching the data. Step 0 (evaluated) and the following
``--tiny-warmup`` / ``--base-warmup`` steps are not timed. words/s = sum of the timed steps' words /
sum of their intervals, where a step's words are ``sum(len(eg) for eg in
batch)``, the number spaCy's own logger counts (tokens of the predicted docs;
the corpus has ``gold_preproc = false``, so spaCy's ``xx`` tokenizer's tokens).
"words/CPU-s" divides by CPU time instead of wall time; with one thread per
process it is the measure less affected by other jobs on a shared machine.

Memory, read by the logger inside the ``spacy train`` process from
``/proc/self/status``. "train peak" is the peak during the update steps only:
the logger resets the kernel's high-water mark (``/proc/self/clear_refs``,
``5``) when it is set up (after the pipeline is initialised) and after step 0
(evaluated), and reads ``VmHWM`` after every step; "train peak" is the maximum
over the non-evaluated steps, so it includes the weights, gradients, Adam
moments and the activations of the largest step, but not the start-up peak.
"peak RSS" is the peak of the whole process up to the last step (the maximum
of all readings, the one at set-up included). ``ru_maxrss`` from ``os.wait4``
is in the JSON but not used: exec() carries the RSS of the forked child, that
is of this driver, into it.

glibc's malloc keeps much of the memory torch frees in its heap (its mmap
threshold rises after large blocks are freed), so RSS grows over a run by
more than the live memory: ``malloc_trim(0)`` after 1000 tiny steps brought
one process from 1584 to 521 MB. ``--malloc-mmap-threshold 131072`` sets
``MALLOC_MMAP_THRESHOLD_`` for the training processes: large blocks are then
mapped and unmapped each time, and the peaks measure live memory (the time
per step then includes those page faults, so take speed from a run without).

``--xlmr-rev REV`` exports ``spacy_xlmr/`` and ``configs/`` of git revision
REV under ``--output`` and puts it first on the training processes'
PYTHONPATH (they run in their run directory, not the repository root, since
``python -m`` puts the working directory before PYTHONPATH), so a run
measures one commit even while the working tree is being edited.

Usage (from the repository root):

    python benchmarks/train_speed.py
    python benchmarks/train_speed.py --sizes tiny --tiny-steps 50

``lib/train_hooks.py`` is passed to ``spacy train --code`` (it registers the
batcher wrapper and the logger).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict

from lib.checkpoints import VOCAB_SIZE as FULL_VOCAB
from lib.checkpoints import build_checkpoints
from lib.corpora import convert_uner
from lib.env import CONFIG_DIR, OUTPUT_DIR, REPO, export_library, git_state
from lib.results import finish, fmt, header, save
from lib.systems import System
from lib.training import HOOKS, memory_step_stats, run_measured

BASE_CONFIG = REPO / "configs" / "ner-tiny.cfg"
SPACY_TRF_CONFIG = CONFIG_DIR / "ner_spacy_trf.cfg"
SYSTEMS = {
    "A": System("spacy_xlmr", "xlmr_transformer + xlmr_ner (configs/ner-tiny.cfg)"),
    "B": System(
        "spacy-transformers + ner",
        "transformer (TransformerModel.v3, strided spans 128/96) + spaCy ner "
        "(TransitionBasedParser.v2, TransformerListener.v1, reduce_mean)",
    ),
    "C": System("spacy_xlmr, gradient checkpointing", "A with gradient_checkpointing = true"),
}


def convert_data(data_dir: Path, out_dir: Path, dev_limit: int) -> Dict:
    """The shipped UNER sample: train, and the first ``dev_limit`` dev sentences."""
    splits = {"train": ("train.iob2", None), "dev": ("dev.iob2", dev_limit)}
    return convert_uner(data_dir, out_dir, splits, details=False)


def make_config(system: str, size: str, args, path: Path) -> Dict:
    """Write the config of one run to ``path``; return a summary of what
    differs from configs/ner-tiny.cfg."""
    from spacy.util import load_config

    base_config = args.xlmr_src / "configs" / BASE_CONFIG.name if args.xlmr_src else BASE_CONFIG
    cfg = load_config(base_config, interpolate=False)
    changes: Dict[str, object] = {}
    if system == "B":
        trf = load_config(SPACY_TRF_CONFIG, interpolate=False)
        components = trf["components"]
        components["transformer"]["model"]["name"] = "${paths.encoder}"
        cfg["components"] = components
        # [initialize.components.ner] holds xlmr_ner's settings.
        cfg["initialize"]["components"] = {}
        changes["components"] = f"from {SPACY_TRF_CONFIG.relative_to(REPO)}"
    if system == "C":
        cfg["components"]["transformer"]["model"]["gradient_checkpointing"] = True
        changes["components.transformer.model.gradient_checkpointing"] = True
    T = cfg["training"]
    steps = args.tiny_steps if size == "tiny" else args.base_steps
    T["max_steps"] = steps
    T["eval_frequency"] = steps + 1000  # only step 0 is evaluated
    inner = dict(T["batcher"])
    if size == "base":
        inner = {
            "@batchers": "spacy.batch_by_sequence.v1", "size": args.base_batch, "get_length": None,
        }
        T["optimizer"]["learn_rate"]["initial_rate"] = 5e-5
        T["optimizer"]["learn_rate"]["warmup_steps"] = max(1, steps // 10)
        changes["training.optimizer.learn_rate"] = (
            f"initial_rate 5e-5, warmup_steps {max(1, steps // 10)}"
        )
    T["batcher"] = {
        "@batchers": "spacy-xlmr-bench.timed_batches.v1",
        "shuffle_seed": "${system.seed}",
        "batcher": inner,
    }
    T["logger"] = {"@loggers": "spacy-xlmr-train-speed.logger.v1", "path": "${paths.train_log}"}
    cfg["paths"]["train_log"] = None
    changes.update(
        {
            "training.max_steps": steps,
            "training.eval_frequency": T["eval_frequency"],
            "training.batcher": {k: v for k, v in inner.items() if v is not None},
            "training.logger": "spacy-xlmr-train-speed.logger.v1",
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg.to_disk(path)
    return changes


def run_one(system: str, size: str, checkpoint: Path, data: Path, out: Path, args) -> Dict:
    run_dir = out / "runs" / f"{size}-{system}"
    run_dir.mkdir(parents=True, exist_ok=True)
    config = out / "configs" / f"{size}-{system}.cfg"
    changes = make_config(system, size, args, config)
    train_log = run_dir / "steps.json"
    cmd = [
        sys.executable, "-m", "spacy", "train", str(config),
        "--code", str(HOOKS),
        "--gpu-id", "-1",
        "--paths.train", str(data / "train.spacy"),
        "--paths.dev", str(data / "dev.spacy"),
        "--paths.encoder", str(checkpoint),
        "--paths.train_log", str(train_log),
        "--system.seed", str(args.seed),
    ]
    load_before = os.getloadavg()[0]
    proc = run_measured(
        cmd, run_dir / "train.log", args.threads, args.malloc_mmap_threshold, args.xlmr_src
    )
    load_after = os.getloadavg()[0]
    log = json.loads(train_log.read_text(encoding="utf8"))
    warmup = args.tiny_warmup if size == "tiny" else args.base_warmup
    return {
        "system": system,
        "label": SYSTEMS[system].label,
        "description": SYSTEMS[system].description,
        "size": size,
        "checkpoint": str(checkpoint),
        "config": str(config),
        "config_changes": changes,
        "command": cmd,
        "process": proc,
        "loadavg_1min_before_after": [load_before, load_after],
        "warmup_steps_skipped": warmup,
        "training": memory_step_stats(log, warmup),
    }


def markdown_table(results: Dict) -> str:
    lines = [
        "| system | encoder | steps (timed) | words/step | words/s | words/CPU-s "
        "| ratio to B (words/s) | peak RSS MB | train peak RSS MB | ratio to B (train peak) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, by_system in results["runs"].items():
        ref = by_system.get("B")
        for key, r in by_system.items():
            t = r["training"]
            ratio = ratio_mem = None
            if ref is not None:
                rt = ref["training"]
                if t["words_per_s"] and rt["words_per_s"]:
                    ratio = t["words_per_s"] / rt["words_per_s"]
                if t["train_peak_rss_mb"] and rt["train_peak_rss_mb"]:
                    ratio_mem = t["train_peak_rss_mb"] / rt["train_peak_rss_mb"]
            lines.append(
                f"| {key}. {r['label']} | {size} | {t['steps']} ({t['timed_steps']}) | "
                f"{fmt(t['words_per_step'])} | {fmt(t['words_per_s'])} | "
                f"{fmt(t['words_per_cpu_s'])} | "
                f"{fmt(ratio, '.2f')} | {fmt(t['peak_rss_mb'])} | "
                f"{fmt(t['train_peak_rss_mb'])} | {fmt(ratio_mem, '.2f')} |"
            )
    for size, by_system in results["runs"].items():
        if "A" in by_system and "C" in by_system:
            a, c = by_system["A"]["training"], by_system["C"]["training"]
            keys = ("words_per_s", "words_per_cpu_s", "train_peak_rss_mb")
            if not all(a[k] and c[k] for k in keys):
                continue
            saved = a["train_peak_rss_mb"] - c["train_peak_rss_mb"]
            lines.append("")
            lines.append(
                f"Gradient checkpointing, {size}: "
                f"C/A words/s {c['words_per_s'] / a['words_per_s']:.2f} "
                f"(words/CPU-s {c['words_per_cpu_s'] / a['words_per_cpu_s']:.2f}); train peak RSS "
                f"{a['train_peak_rss_mb']:.0f} → {c['train_peak_rss_mb']:.0f} MB "
                f"({saved:.0f} MB saved, {100 * saved / a['train_peak_rss_mb']:.1f}%)."
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "base"],
                        choices=["tiny", "small", "base"])
    parser.add_argument("--systems", default="AB", help="letters of A, B, C for every size")
    parser.add_argument("--gc-sizes", nargs="*", default=["base"],
                        help="sizes for which C (gradient checkpointing) also runs")
    parser.add_argument("--tiny-steps", type=int, default=300,
                        help="max_steps for tiny (and small)")
    parser.add_argument("--base-steps", type=int, default=25, help="max_steps for base")
    parser.add_argument("--tiny-warmup", type=int, default=20,
                        help="steps after step 0 not timed (tiny)")
    parser.add_argument("--base-warmup", type=int, default=3,
                        help="steps after step 0 not timed (base)")
    parser.add_argument("--base-batch", type=int, default=16, help="sentences per update (base)")
    parser.add_argument("--lang", default="pt", help="data/ner/uner-<lang>")
    parser.add_argument("--dev-limit", type=int, default=20,
                        help="dev sentences (scored once, at step 0)")
    parser.add_argument("--full-vocab", action="store_true",
                        help=f"resize the embeddings to xlm-roberta-base's {FULL_VOCAB} rows")
    parser.add_argument("--malloc-mmap-threshold", type=int, default=None,
                        help="set MALLOC_MMAP_THRESHOLD_ (bytes) for the training processes")
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="where the checkpoints are built/cached (default: --output)")
    parser.add_argument("--xlmr-rev", default=None,
                        help="run spacy_xlmr and configs/ of this git revision (e.g. HEAD), "
                             "exported under --output, instead of the working tree")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per process")
    parser.add_argument("--output", type=Path,
                        default=OUTPUT_DIR / "train_speed")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    args.xlmr_src = (
        export_library(args.xlmr_rev, out, ("spacy_xlmr", "configs", "pyproject.toml")).resolve()
        if args.xlmr_rev else None
    )
    if args.xlmr_src:  # checkpoints and data conversion too
        sys.path.insert(0, str(args.xlmr_src))
    ckpt_root = (args.checkpoints or out).resolve()
    ckpt_root.mkdir(parents=True, exist_ok=True)
    checkpoints = build_checkpoints(ckpt_root, args.sizes, args.seed, args.full_vocab)
    data = out / "data" / args.lang
    data_stats = convert_data(REPO / "data" / "ner" / f"uner-{args.lang}", data, args.dev_limit)
    results = {
        **header(args),
        "git": git_state(args.xlmr_src),
        "data": data_stats,
        "runs": {},
    }
    for size in args.sizes:
        systems = args.systems + ("C" if size in args.gc_sizes and "C" not in args.systems else "")
        results["runs"][size] = {}
        for key in systems:
            print(f"== {size}: system {key} ({SYSTEMS[key].label})", flush=True)
            r = run_one(key, size, checkpoints[size], data, out, args)
            results["runs"][size][key] = r
            t = r["training"]
            print(
                f"   words/s={fmt(t['words_per_s'])} words/CPU-s={fmt(t['words_per_cpu_s'])} "
                f"peak RSS={t['peak_rss_mb']:.0f} MB "
                f"train peak={fmt(t['train_peak_rss_mb'])} MB wall={r['process']['wall_s']:.0f} s",
                flush=True,
            )
            save(results, out)
    finish(results, out, start, markdown_table)


if __name__ == "__main__":
    main()
