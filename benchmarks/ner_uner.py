#!/usr/bin/env python
"""NER on Universal NER: spacy_xlmr vs spacy-transformers, same encoder init.

Trains two pipelines per language with ``spacy train`` and scores them with
``spacy evaluate`` on the test set:

  A. ``xlmr_transformer`` + ``xlmr_ner``              (configs/ner_xlmr.cfg)
  B. spacy-transformers ``transformer`` + spaCy ``ner`` (configs/ner_spacy_trf.cfg)
  C. (ablation, ``--systems C``) ``xlmr_transformer`` + spaCy ``ner`` with
     B's listener (configs/ner_xlmr_spacy_ner.cfg)

Both start from the same tiny, randomly initialised XLM-R checkpoint (built
once with ``spacy_xlmr.checkpoints.build_checkpoint``), use the same seed,
data, batcher, optimizer, learning-rate schedule and number of update steps.
The configs differ only in their [components] blocks; the batcher wrapper
below fixes the order of the examples, so every system sees the same batches.

It also measures how each encoder aligns spaCy tokens to XLM-R pieces on the
test texts (see ``alignment_quality``).

Usage (from the repository root):

    /work/venv/bin/python benchmarks/ner_uner.py                 # zh pt, defaults
    /work/venv/bin/python benchmarks/ner_uner.py pt --max-steps 50 --train-limit 500

This file is also passed to ``spacy train --code``: it registers the batcher
wrapper and logger that time every update step (``spacy-xlmr-bench.*``).
"""
import argparse
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from spacy.util import registry

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
CONFIG_DIR = HERE / "configs"
SYSTEMS = {
    # key: (label, config, description)
    "A": ("spacy_xlmr", CONFIG_DIR / "ner_xlmr.cfg", "xlmr_transformer + xlmr_ner"),
    "B": (
        "spacy-transformers",
        CONFIG_DIR / "ner_spacy_trf.cfg",
        "transformer (TransformerModel.v3) + ner (TransformerListener.v1, reduce_mean)",
    ),
    # Ablation, only with --systems ...C: A's encoder with B's head.
    "C": (
        "xlmr encoder + spaCy ner",
        CONFIG_DIR / "ner_xlmr_spacy_ner.cfg",
        "xlmr_transformer + ner (TransformerListener.v1, reduce_mean)",
    ),
    # Ablation, only with --systems ...M: A with mean pooling over each
    # token's pieces instead of its first piece.
    "M": (
        "spacy_xlmr, mean pooling",
        CONFIG_DIR / "ner_xlmr_mean.cfg",
        "xlmr_transformer + xlmr_ner (reduce_mean)",
    ),
}
DEFAULT_MAX_STEPS = 2000
DEFAULT_BATCH_SIZE = 16  # sentences per update (spacy.batch_by_sequence.v1)


# ---------------------------------------------------------------------------
# Registered functions used by the configs (loaded with `spacy train --code`).
# ---------------------------------------------------------------------------

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


@registry.loggers("spacy-xlmr-bench.step_timer.v1")
def step_timer(path: Optional[str] = None) -> Callable:
    """spaCy's console logger, plus a JSON file with one record per update
    step: start and end time, words, and whether the step was evaluated (an
    evaluated step's time includes the dev evaluation and checkpoint saving)."""
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
                record["dev"] = {
                    k: other.get(k) for k in ("ents_p", "ents_r", "ents_f", "speed")
                }
            steps.append(record)
            log_console(info)

        def finalize() -> None:
            finalize_console()
            if path:
                Path(path).write_text(json.dumps(steps), encoding="utf8")

        return log_step, finalize

    return setup


# ---------------------------------------------------------------------------
# Alignment quality
# ---------------------------------------------------------------------------

SPECIALS = {"<s>", "</s>", "<pad>", "<mask>"}


def _normalized_text(text: str):
    """NFKC-normalise ``text`` character by character (as XLM-R's
    SentencePiece normaliser does), returning the normalised string and, for
    every original character offset (plus the end), its normalised offset."""
    pieces = []
    starts = []
    pos = 0
    for char in text:
        starts.append(pos)
        norm = unicodedata.normalize("NFKC", char)
        pieces.append(norm)
        pos += len(norm)
    starts.append(pos)
    return "".join(pieces), starts


def _overlaps(norm_text: str, piece: str, start: int, end: int) -> Optional[bool]:
    """Does ``piece`` occur in ``norm_text`` at a position overlapping
    ``[start, end)``? None if it occurs nowhere in the text."""
    if piece not in norm_text:
        return None
    lo = max(0, start - len(piece) + 1)
    pos = norm_text.find(piece, lo)
    while pos != -1 and pos < end:
        if pos + len(piece) > start:
            return True
        pos = norm_text.find(piece, pos + 1)
    return False


def alignment_quality(nlp, docs) -> Dict:
    """Run the pipeline's ``transformer`` component on ``docs`` and check
    every token's aligned pieces, read from ``doc._.trf_data``.

    ``align`` points each token at rows of the flattened
    ``(n_windows, seq_len)`` piece grid; the piece string at a row is
    ``wordpieces.strings[row // seq_len][row % seq_len]``. A piece *overlaps*
    the token if its text (with ``▁`` removed) occurs in the doc's text
    (NFKC-normalised per character) at a position that overlaps the token's
    characters. A token is *misaligned* if one of its pieces does not overlap
    it: a piece of another word, a lone ``▁`` (which covers only the space
    before a word), or a special token. ``<unk>`` pieces and pieces whose text
    occurs nowhere in the doc (normalisation mismatch) are not judged and are
    counted separately.
    """
    transformer = nlp.get_pipe("transformer")
    counts = {
        "tokens": 0,
        "misaligned_tokens": 0,
        "misaligned_tokens_visible": 0,  # only counting pieces with visible text
        "tokens_without_pieces": 0,
        "pieces": 0,
        "foreign_pieces": 0,
        "lone_space_pieces": 0,
        "special_pieces": 0,
        "unjudged_pieces": 0,
    }
    examples = []
    for doc in transformer.pipe(docs, batch_size=64):
        trf = doc._.trf_data
        strings = trf.wordpieces.strings
        seq_len = trf.wordpieces.input_ids.shape[1]
        lengths = [int(n) for n in trf.align.lengths]
        rows = [int(r) for r in trf.align.dataXd]
        norm_text, norm_starts = _normalized_text(doc.text)
        offset = 0
        for token, n in zip(doc, lengths):
            token_rows = rows[offset : offset + n]
            offset += n
            if token.is_space:
                continue
            counts["tokens"] += 1
            if n == 0:
                counts["tokens_without_pieces"] += 1
                continue
            start = norm_starts[token.idx]
            end = norm_starts[token.idx + len(token.text)]
            bad = bad_visible = False
            pieces = []
            for row in token_rows:
                piece = strings[row // seq_len][row % seq_len]
                pieces.append(piece)
                counts["pieces"] += 1
                text = piece.replace("▁", "")
                if piece in SPECIALS:
                    counts["special_pieces"] += 1
                    bad = bad_visible = True
                elif piece == "<unk>":
                    counts["unjudged_pieces"] += 1
                elif not text:
                    counts["lone_space_pieces"] += 1
                    bad = True
                else:
                    overlap = _overlaps(norm_text, text, start, end)
                    if overlap is None:
                        counts["unjudged_pieces"] += 1
                    elif not overlap:
                        counts["foreign_pieces"] += 1
                        bad = bad_visible = True
            counts["misaligned_tokens"] += bad
            counts["misaligned_tokens_visible"] += bad_visible
            if bad and len(examples) < 8:
                examples.append({"token": token.text, "pieces": pieces})
    n = max(counts["tokens"], 1)
    return {
        **counts,
        "misaligned_frac": counts["misaligned_tokens"] / n,
        "misaligned_visible_frac": counts["misaligned_tokens_visible"] / n,
        "without_pieces_frac": counts["tokens_without_pieces"] / n,
        "examples": examples,
    }


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def versions() -> Dict[str, str]:
    from importlib.metadata import version

    result = {"python": platform.python_version()}
    for name in ("torch", "spacy", "spacy-transformers", "transformers", "thinc", "spacy-xlmr"):
        try:
            result[name] = version(name)
        except Exception:  # pragma: no cover
            result[name] = "?"
    return result


def machine() -> Dict[str, str]:
    model = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import torch

    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "platform": platform.platform(),
    }


def convert_data(data_dir: Path, lang: str, out_dir: Path, train_limit, dev_limit) -> Dict:
    from spacy_xlmr.convert.iob2 import convert_iob2

    src = data_dir / "ner" / "uner" / lang
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = {}
    splits = {"train": ("train.iob2", train_limit), "test": ("test.iob2", None)}
    # The dev set is only scored by `spacy train` for its log (the model we
    # test is model-last, so dev is never used for selection).
    dev_src = "dev.iob2" if (src / "dev.iob2").exists() else "train.iob2"
    splits["dev"] = (dev_src, dev_limit)
    for split, (filename, limit) in splits.items():
        result = convert_iob2(
            src / filename, out_dir / f"{split}.spacy", lang="xx", n_sents=1, limit=limit
        )
        stats[split] = {
            "file": str(src / filename),
            "docs": result.docs,
            "tokens": result.tokens,
            "entities": sum(result.entities.values()),
            "warnings": dict(result.warnings),
            "skipped": dict(result.skipped),
        }
    return stats


def thread_env(threads: int) -> Dict[str, str]:
    """The environment for the subprocesses: ``threads`` intra-op threads."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    return env


def run_logged(cmd: List[str], log_path: Path, threads: int) -> float:
    """Run ``cmd`` from the repo root with output to ``log_path``; return the
    wall time. Raises with the log's tail if it fails."""
    print("$ " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    with log_path.open("w", encoding="utf8") as log:
        proc = subprocess.run(
            cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=thread_env(threads)
        )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf8")[-4000:]
        raise RuntimeError(f"Command failed ({proc.returncode}), log {log_path}:\n{tail}")
    return wall


def step_stats(steps: List[Dict]) -> Dict:
    plain = [s for s in steps if not s["evaluated"]]
    update_s = sum(s["end"] - s["start"] for s in plain)
    words = sum(s["words"] for s in plain)
    words_seq = ",".join(str(s["words"]) for s in steps)
    return {
        "steps": len(steps),
        # Same fingerprint in two runs = same batches (sizes) in the same order.
        "batch_words_fingerprint": hashlib.sha1(words_seq.encode()).hexdigest()[:12],
        "train_words": sum(s["words"] for s in steps),
        "timed_steps": len(plain),
        "timed_words": words,
        "timed_update_s": update_s,
        "words_per_s": words / update_s if update_s else None,
        "loop_s": steps[-1]["end"] - steps[0]["start"] if steps else None,
        "final_losses": steps[-1].get("losses") if steps else None,
        "dev_final": steps[-1].get("dev") if steps else None,
    }


def run_system(key: str, lang: str, data: Path, out: Path, checkpoint: Path, args) -> Dict:
    label, config, description = SYSTEMS[key]
    run_dir = out / lang / key
    run_dir.mkdir(parents=True, exist_ok=True)
    train_log = run_dir / "steps.json"
    warmup = max(1, args.max_steps // 10)
    train_cmd = [
        sys.executable, "-m", "spacy", "train", str(config),
        "--output", str(run_dir / "training"),
        "--code", str(Path(__file__).resolve()),
        "--gpu-id", "-1",
        "--paths.train", str(data / "train.spacy"),
        "--paths.dev", str(data / "dev.spacy"),
        "--paths.checkpoint", str(checkpoint),
        "--paths.train_log", str(train_log),
        "--system.seed", str(args.seed),
        "--training.max_steps", str(args.max_steps),
        "--training.eval_frequency", str(args.max_steps),
        "--training.batcher.batcher.size", str(args.batch_size),
        "--training.optimizer.learn_rate.initial_rate", str(args.learn_rate),
        "--training.optimizer.learn_rate.warmup_steps", str(warmup),
        "--training.optimizer.learn_rate.total_steps", str(args.max_steps),
    ]
    load_before = os.getloadavg()[0]
    train_wall = run_logged(train_cmd, run_dir / "train.log", args.threads)
    load_after = os.getloadavg()[0]
    model = run_dir / "training" / "model-last"
    metrics_path = run_dir / "test-metrics.json"
    eval_cmd = [
        sys.executable, "-m", "spacy", "evaluate", str(model), str(data / "test.spacy"),
        "--gold-preproc", "--gpu-id", "-1", "--output", str(metrics_path),
    ]
    eval_wall = run_logged(eval_cmd, run_dir / "evaluate.log", args.threads)
    metrics = json.loads(metrics_path.read_text(encoding="utf8"))
    steps = json.loads(train_log.read_text(encoding="utf8"))
    result = {
        "system": key,
        "label": label,
        "description": description,
        "config": str(config.relative_to(REPO)),
        "train_command": train_cmd,
        "train_wall_s": train_wall,
        # 1-minute load average of the (shared) machine around the training.
        "loadavg_1min_before_after": [load_before, load_after],
        "eval_wall_s": eval_wall,
        "test": {
            k: metrics.get(k) for k in ("ents_p", "ents_r", "ents_f", "ents_per_type", "speed")
        },
        "training": step_stats(steps),
    }
    return result


def measure_alignment(model: Path, test_path: Path) -> Dict:
    import spacy
    from spacy.tokens import Doc, DocBin

    nlp = spacy.load(model)
    refs = DocBin().from_disk(test_path).get_docs(nlp.vocab)
    docs = [
        Doc(nlp.vocab, words=[t.text for t in ref], spaces=[bool(t.whitespace_) for t in ref])
        for ref in refs
    ]
    return alignment_quality(nlp, docs)


def pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def markdown_table(results: Dict) -> str:
    lines = [
        "| lang | system | ents_p | ents_r | ents_f | train wall (s) | train words/s "
        "| test words/s | misaligned tokens % | misaligned, other words' pieces only % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lang, by_system in results["languages"].items():
        for key, r in by_system["systems"].items():
            t = r["test"]
            a = r.get("alignment", {})
            wps = r["training"]["words_per_s"]
            lines.append(
                f"| {lang} | {key}. {r['label']} | {pct(t['ents_p'])} | {pct(t['ents_r'])} | "
                f"{pct(t['ents_f'])} | {r['train_wall_s']:.0f} | "
                f"{wps:.0f} | {t['speed']:.0f} | "
                f"{pct(a.get('misaligned_frac'))} | {pct(a.get('misaligned_visible_frac'))} |"
            )
    return "\n".join(lines)


def add_common_arguments(parser: argparse.ArgumentParser, name: str, systems: str) -> None:
    """Options every benchmark here shares (learning rate, seed, threads,
    systems, output, data, checkpoint)."""
    parser.add_argument("--learn-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/OpenMP threads per process (1: robust on a shared machine)")
    parser.add_argument("--systems", default="AB", help=f"which systems to run ({systems})")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "output" / name)
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="existing checkpoint dir (default: build a tiny one under --output)")


def prepare_run(args: argparse.Namespace) -> Tuple[Path, Path]:
    """Set torch's threads, create the output dir and build (or reuse) the
    tiny checkpoint. Returns (output dir, checkpoint dir)."""
    import torch

    torch.set_num_threads(args.threads)
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint
    if checkpoint is None:
        from spacy_xlmr.checkpoints import build_checkpoint, shipped_texts

        checkpoint = out / "checkpoint-tiny"
        if not (checkpoint / "config.json").exists():
            print(f"Building tiny checkpoint in {checkpoint}", flush=True)
            build_checkpoint(checkpoint, shipped_texts(), size="tiny", seed=args.seed)
    return out, checkpoint.resolve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("languages", nargs="*", default=["zh", "pt"])
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS,
                        help="update steps per training (the fixed budget)")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="use only the first N training sentences")
    parser.add_argument("--dev-limit", type=int, default=200,
                        help="dev sentences scored by spacy train (log only)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="sentences per update")
    add_common_arguments(parser, "ner_uner", "letters of A, B, C, M")
    args = parser.parse_args()

    start = time.perf_counter()
    out, checkpoint = prepare_run(args)

    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": {k: str(v) for k, v in vars(args).items()},
        "checkpoint": str(checkpoint),
        "machine": machine(),
        "versions": versions(),
        "budget": {
            "max_steps": args.max_steps,
            "update_steps": args.max_steps + 1,  # spaCy's loop runs steps 0..max_steps
            "batch_size_sentences": args.batch_size,
            "optimizer": "Adam.v1 (L2 0.01 decoupled, grad_clip 1.0)",
            "learn_rate": f"warmup_linear: {args.learn_rate} peak, "
                          f"{max(1, args.max_steps // 10)} warmup steps, {args.max_steps} total",
            "dropout": 0.1,
            "seed": args.seed,
            "threads_per_process": args.threads,
        },
        "languages": {},
    }
    for lang in args.languages:
        data = out / "data" / lang
        print(f"== {lang}: converting data", flush=True)
        data_stats = convert_data(args.data_dir, lang, data, args.train_limit, args.dev_limit)
        entry = {"data": data_stats, "systems": {}}
        results["languages"][lang] = entry
        for key in args.systems:
            print(f"== {lang}: system {key} ({SYSTEMS[key][0]})", flush=True)
            r = run_system(key, lang, data, out, checkpoint, args)
            r["alignment"] = measure_alignment(
                out / lang / key / "training" / "model-last", data / "test.spacy"
            )
            entry["systems"][key] = r
            print(
                f"   ents_f={r['test']['ents_f']:.3f} train_wall={r['train_wall_s']:.0f}s "
                f"words/s={r['training']['words_per_s']:.0f} "
                f"misaligned={pct(r['alignment']['misaligned_frac'])}%",
                flush=True,
            )
            (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf8")
    results["total_wall_s"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf8")
    table = markdown_table(results)
    (out / "results.md").write_text(table + "\n", encoding="utf8")
    print()
    print(table)
    print(f"\nTotal wall time: {results['total_wall_s']:.0f} s; results in {out / 'results.json'}")


if __name__ == "__main__":
    main()
