#!/usr/bin/env python
"""Data-parallel `spacy-xlmr train` under torchrun: does it pay off on CPU?

Question: on a 2-core CPU machine, how many training words/s does
`torchrun --nproc-per-node 2 -m spacy_xlmr train` (2 ranks x 1 thread, gloo) get
compared with 1 rank x 1 thread and with the fair single-process baseline on
the same cores, 1 rank x 2 threads; and how much memory does each rank hold?

Setups: `configs/ner-tiny.cfg` (`xlmr_transformer` + `xlmr_ner`) with (a) the
tiny random encoder (`build_checkpoint(..., size="tiny")`, the config's batcher:
`batch_by_words.v1`, 1000 words) and (b) a base-sized random encoder (12 layers,
hidden 768, 8k-piece vocabulary; `--paths.encoder` pointing at it, batches of
`--base-batch-words` words). Data: the shipped `data/ner/uner-pt` sample, converted
like `spacy-xlmr convert-iob2` (one sentence per doc; dev = first `--dev-limit`
sentences). Checkpoints and data are built once (`lib.checkpoints`, `lib.corpora`).

Every run is `torchrun --nproc-per-node R --master-addr 127.0.0.1 --master-port P
-m spacy_xlmr train CONFIG --training.max_steps S --training.eval_frequency S+1000`
(no `--output`: nothing is saved), with OMP/MKL/OpenBLAS_NUM_THREADS = T set for
every rank (torchrun only sets OMP_NUM_THREADS=1 when it is unset and R > 1; each
rank records `torch.get_num_threads()` to check). Each step takes R consecutive
batches of one shared stream, one per rank, so R ranks process R x the words per step.

* **words/s (all ranks)**: the `N steps on R rank(s), X words/s over all ranks` line
  that rank 0 prints: words of all ranks' batches / wall time of spaCy's loop
  (steps 0..S, including step 0's dev evaluation).
* **scaling efficiency**: words/s / (units x words/s of 1 rank x 1 thread), units =
  ranks x threads on CPU (cores used), ranks with `--gpu`. 1.0 = linear scaling.
* **peak RSS per rank**: `VmHWM` of each rank's process (a `--code` file written to
  `lib/train_hooks.py` reports it, and `ru_maxrss`, at exit; the max over ranks is shown);
  with `--gpu` also `torch.cuda.max_memory_allocated`.

Machine: 2 vCPUs (AMD EPYC, KVM guest), 24 GB RAM, no GPU, shared with other jobs
(the 1-min load average is recorded before and after every run). Command (from the
repository root):

    python benchmarks/train_distributed.py
    python benchmarks/train_distributed.py --sizes tiny --tiny-steps 30  # quick check

`benchmarks/train_distributed_gpu.sh` runs the GPU variant (`--gpu`, `--variant`).
"""
import argparse
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

from lib.checkpoints import build_checkpoints
from lib.corpora import convert_uner
from lib.env import OUTPUT_DIR, REPO, machine, thread_env, versions
from lib.memory import MEM_ENV
from lib.training import HOOKS

SPEED_LINE = re.compile(r"(\d+) steps on (\d+) rank\(s\), (\d+) words/s over all ranks")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_torchrun(
    train_args: List[str], ranks: int, threads: int, run_dir: Path, code: Path
) -> Dict:
    """Train with ``torchrun`` on ``ranks`` processes of ``threads`` threads each;
    return the speed line's numbers, each rank's memory, wall time and load."""
    mem_dir = run_dir / "memory"
    mem_dir.mkdir(parents=True, exist_ok=True)
    for old in mem_dir.glob("rank*.json"):
        old.unlink()
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks),
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
        "-m", "spacy_xlmr", "train", *train_args, "--code", str(code),
    ]
    env = thread_env(threads)
    env[MEM_ENV] = str(mem_dir)
    print("$ " + shlex.join(cmd), flush=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    log_path = run_dir / "train.log"
    with log_path.open("w", encoding="utf8") as log:
        proc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - start
    log_text = log_path.read_text(encoding="utf8")
    match = SPEED_LINE.search(log_text)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"torchrun failed ({proc.returncode}), {log_path}:\n{log_text[-4000:]}")
    memory = [json.loads(p.read_text()) for p in sorted(mem_dir.glob("rank*.json"))]
    if len(memory) != ranks:
        raise RuntimeError(f"{len(memory)} memory records for {ranks} ranks in {mem_dir}")
    return {
        "command": shlex.join(cmd), "ranks": ranks, "threads": threads,
        "steps": int(match.group(1)), "words_per_s": float(match.group(3)),
        "wall_s": wall, "load_before": load_before, "load_after": os.getloadavg()[0],
        "memory": memory,
    }


def parse_run(spec: str) -> Tuple[int, int]:
    ranks, _, threads = spec.partition("x")
    return int(ranks), int(threads or 1)


def parse_variant(spec: str) -> Tuple[str, List[str]]:
    """``NAME=--section.key value ...`` (NAME alone: no overrides)."""
    name, _, overrides = spec.partition("=")
    return name, shlex.split(overrides)


def markdown_table(rows: List[Dict], gpu: bool) -> str:
    head = ["config", "ranks × threads", "steps", "words/s (all ranks)",
            "scaling efficiency", "peak RSS per rank (MB)"]
    if gpu:
        head.append("peak GPU memory per rank (MB)")
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for row in rows:
        mem = row["memory"]
        cells = [
            row["label"], f"{row['ranks']} × {row['threads']}", str(row["steps"]),
            f"{row['words_per_s']:.0f}",
            "–" if row["efficiency"] is None else f"{row['efficiency']:.2f}",
            " / ".join(f"{m['vmhwm_mb']:.0f}" for m in mem),
        ]
        if gpu:
            cells.append(" / ".join(f"{m.get('gpu_peak_mb', 0):.0f}" for m in mem))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "ner-tiny.cfg")
    parser.add_argument("--sizes", nargs="+", default=["tiny", "base"], choices=["tiny", "base"])
    parser.add_argument("--runs", nargs="+", default=["1x1", "1x2", "2x1"],
                        help="RANKSxTHREADS per run; efficiency needs 1x1")
    parser.add_argument("--variant", action="append", default=None,
                        help="NAME=OVERRIDES, e.g. 'amp=--components.transformer.model."
                        "mixed_precision true' (repeatable; default: one, no overrides)")
    parser.add_argument("--tiny-steps", type=int, default=100)
    parser.add_argument("--base-steps", type=int, default=20)
    parser.add_argument("--tiny-batch-words", type=int, default=None,
                        help="training.batcher.size for tiny (default: the config's)")
    parser.add_argument("--base-batch-words", type=int, default=300)
    parser.add_argument("--dev-limit", type=int, default=20)
    parser.add_argument("--gpu", action="store_true", help="--gpu-id 0 (each rank: its GPU)")
    parser.add_argument("--encoder", type=Path, help="use this encoder instead of building one")
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR / "train_distributed",
                        help="default benchmarks/output/train_distributed")
    args = parser.parse_args()

    started = time.perf_counter()
    load_start = os.getloadavg()
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    code = HOOKS  # records each rank's memory at exit (SPACY_XLMR_BENCH_MEM_DIR)
    data_stats = convert_uner(
        REPO / "data" / "ner" / "uner-pt", out / "data",
        {"train": ("train.iob2", None), "dev": ("dev.iob2", args.dev_limit)}, details=False,
    )
    encoders = {size: args.encoder for size in args.sizes} if args.encoder else \
        build_checkpoints(out, args.sizes, seed=0, full_vocab=False)
    variants = [parse_variant(v) for v in args.variant or [""]]
    rows: List[Dict] = []
    for size in args.sizes:
        steps = args.tiny_steps if size == "tiny" else args.base_steps
        batch = args.tiny_batch_words if size == "tiny" else args.base_batch_words
        for name, overrides in variants:
            label = f"{args.config.name}, {size} encoder" + (f", {name}" if name else "")
            train_args = [
                str(args.config), "--paths.train", str(out / "data" / "train.spacy"),
                "--paths.dev", str(out / "data" / "dev.spacy"),
                "--paths.encoder", str(encoders[size]), "--training.max_steps", str(steps),
                "--training.eval_frequency", str(steps + 1000),
                *(["--training.batcher.size", str(batch)] if batch else []),
                *(["--gpu-id", "0"] if args.gpu else []), *overrides,
            ]
            group: List[Dict] = []
            for spec in args.runs:
                ranks, threads = parse_run(spec)
                run_dir = out / "runs" / f"{size}-{name or 'default'}-{ranks}x{threads}"
                result = run_torchrun(train_args, ranks, threads, run_dir, code)
                result.update(label=label, size=size, variant=name, batch_words=batch)
                print(f"  {result['words_per_s']:.0f} words/s, {result['wall_s']:.0f} s, "
                      f"load {result['load_before']:.2f} -> {result['load_after']:.2f}, "
                      f"threads {[m['torch_threads'] for m in result['memory']]}", flush=True)
                group.append(result)
            single = next((r for r in group if r["ranks"] == 1 and r["threads"] == 1), None)
            for result in group:
                units = result["ranks"] * (1 if args.gpu else result["threads"])
                result["efficiency"] = (
                    result["words_per_s"] / (units * single["words_per_s"]) if single else None
                )
            rows.extend(group)
    table = markdown_table(rows, args.gpu)
    summary = {
        "versions": versions(), "machine": machine(), "data": data_stats,
        "load_start": load_start, "load_end": os.getloadavg(),
        "total_s": time.perf_counter() - started, "runs": rows,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2), encoding="utf8")
    (out / "results.md").write_text(table + "\n", encoding="utf8")
    print("\n" + table)
    print(f"\nload average (1/5/15 min): start {load_start}, end {summary['load_end']}; "
          f"total {summary['total_s']:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
