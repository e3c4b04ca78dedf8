"""What the ``spacy train`` comparisons share: options, set-up, the train
command line, and statistics of the step records ``train_hooks`` writes."""
import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .checkpoints import tiny_checkpoint
from .env import OUTPUT_DIR, SHARED_DATA_DIR, thread_env

# The file passed to `spacy train --code` (see train_hooks.py).
HOOKS = Path(__file__).resolve().parent / "train_hooks.py"
OPTIMIZER = "Adam.v1 (L2 0.01 decoupled, grad_clip 1.0)"


def add_common_arguments(parser: argparse.ArgumentParser, name: str, systems: str) -> None:
    """Options every training comparison shares (learning rate, seed, threads,
    systems, output, data, checkpoint)."""
    parser.add_argument("--learn-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/OpenMP threads per process (1: robust on a shared machine)")
    parser.add_argument("--systems", default="AB", help=f"which systems to run ({systems})")
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR / name)
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA_DIR)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="existing checkpoint dir (default: build a tiny one under --output)")


def prepare_run(args: argparse.Namespace) -> Tuple[Path, Path]:
    """Set torch's threads, create the output dir and build (or reuse) the
    tiny checkpoint. Returns (output dir, checkpoint dir)."""
    import torch

    torch.set_num_threads(args.threads)
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint or tiny_checkpoint(out / "checkpoint-tiny", args.seed)
    return out, checkpoint.resolve()


def budget(args: argparse.Namespace, batch_key: str) -> Dict:
    """The fixed training budget of a run, as the results JSON records it."""
    return {
        "max_steps": args.max_steps,
        "update_steps": args.max_steps + 1,  # spaCy's loop runs steps 0..max_steps
        batch_key: args.batch_size,
        "optimizer": OPTIMIZER,
        "learn_rate": f"warmup_linear: {args.learn_rate} peak, "
                      f"{max(1, args.max_steps // 10)} warmup steps, {args.max_steps} total",
        "dropout": 0.1,
        "seed": args.seed,
        "threads_per_process": args.threads,
    }


def train_command(
    config: Path, output: Path, train: Path, dev: Path, checkpoint: Path, train_log: Path,
    args: argparse.Namespace,
) -> List[str]:
    """``spacy train`` of a comparison config: paths, seed, budget and the
    warmup_linear schedule (10% warmup) as overrides."""
    warmup = max(1, args.max_steps // 10)
    return [
        sys.executable, "-m", "spacy", "train", str(config),
        "--output", str(output),
        "--code", str(HOOKS),
        "--gpu-id", "-1",
        "--paths.train", str(train),
        "--paths.dev", str(dev),
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


def fingerprint(steps: List[Dict]) -> str:
    """Same fingerprint in two runs = same batch sizes in the same order."""
    words_seq = ",".join(str(s["words"]) for s in steps)
    return hashlib.sha1(words_seq.encode()).hexdigest()[:12]


def step_stats(steps: List[Dict]) -> Dict:
    """Words/s of the update steps without a dev evaluation (step_timer's records)."""
    plain = [s for s in steps if not s["evaluated"]]
    update_s = sum(s["end"] - s["start"] for s in plain)
    words = sum(s["words"] for s in plain)
    return {
        "steps": len(steps),
        "batch_words_fingerprint": fingerprint(steps),
        "train_words": sum(s["words"] for s in steps),
        "timed_steps": len(plain),
        "timed_words": words,
        "timed_update_s": update_s,
        "words_per_s": words / update_s if update_s else None,
        "loop_s": steps[-1]["end"] - steps[0]["start"] if steps else None,
        "final_losses": steps[-1].get("losses") if steps else None,
        "dev_final": steps[-1].get("dev") if steps else None,
    }


def memory_step_stats(log: Dict, warmup: int) -> Dict:
    """Words/s, words/CPU-s and peak RSS of the steps after step 0 and
    ``warmup`` more (the records of ``spacy-xlmr-train-speed.logger.v1``)."""
    steps = log["steps"]
    timed = [s for s in steps[1 + warmup :] if not s["evaluated"]]
    wall = sum(s["end"] - s["start"] for s in timed)
    cpu = sum(s["cpu_end"] - s["cpu_start"] for s in timed)
    words = sum(s["words"] for s in timed)
    per_step = sorted(s["end"] - s["start"] for s in timed)
    train_hwm = [s["hwm_kb"] for s in steps if not s["evaluated"]]
    return {
        "steps": len(steps),
        "timed_steps": len(timed),
        "timed_words": words,
        "words_per_step": words / len(timed) if timed else None,
        "timed_wall_s": wall,
        "timed_cpu_s": cpu,
        "words_per_s": words / wall if wall else None,
        "words_per_cpu_s": words / cpu if cpu else None,
        "step_s_median": per_step[len(per_step) // 2] if per_step else None,
        "step_s_min": per_step[0] if per_step else None,
        "step_s_max": per_step[-1] if per_step else None,
        "batch_words_fingerprint": fingerprint(steps),
        "init_peak_rss_mb": log["init_hwm_kb"] / 1024,
        # The whole process: start-up to the last step (VmHWM is only reset
        # right after it was read, so the maximum of the readings is the peak).
        "peak_rss_mb": max([log["init_hwm_kb"]] + [s["hwm_kb"] for s in steps]) / 1024,
        "train_peak_rss_mb": (
            max(train_hwm) / 1024 if train_hwm and log["hwm_reset_supported"] else None
        ),
        "rss_after_last_step_mb": steps[-1]["rss_kb"] / 1024 if steps else None,
        # spaCy passes losses to the logger only at evaluated steps: step 0.
        "losses_at_last_eval": next((s["losses"] for s in reversed(steps) if "losses" in s), None),
    }


def run_measured(
    cmd: List[str], log_path: Path, threads: int, mmap_threshold: Optional[int] = None,
    xlmr_src: Optional[Path] = None,
) -> Dict:
    """Run ``cmd`` in ``log_path``'s directory, output to ``log_path``; return
    its wall time and CPU time (and ``ru_maxrss``, not a peak of its own:
    exec() carries the RSS the forked child had, i.e. this driver's, into it)."""
    print("$ " + " ".join(cmd), flush=True)
    env = thread_env(threads, xlmr_src=xlmr_src)
    if mmap_threshold is not None:
        # A fixed threshold also turns off glibc's dynamic one, which lets
        # freed large blocks stay in the heap (RSS that isn't live memory).
        env["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
    start = time.perf_counter()
    with log_path.open("w", encoding="utf8") as log:
        # Not from the repository root: `python -m` puts the working
        # directory first on sys.path, before PYTHONPATH (--xlmr-rev).
        proc = subprocess.Popen(
            cmd, cwd=log_path.parent, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf8")[-4000:]
        raise RuntimeError(f"Command failed ({proc.returncode}), log {log_path}:\n{tail}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "ru_maxrss_mb": usage.ru_maxrss / 1024,
    }
