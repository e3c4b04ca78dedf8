"""Memory of a long `nlp.pipe` stream: is it flat?

Runs an `xlmr_transformer` + `xlmr_ner` + `xlmr_textcat` pipeline (tiny
encoder, random weights: memory doesn't depend on weight values) over a
stream of short docs (the shipped NTREX lines, cycled) and records the
process's resident memory every `--every` docs, in four set-ups, each in its
own process:

* `discard`: the consumer drops each doc (`doc._.trf_data` kept on the doc);
* `discard+cleaner`: the same with spaCy's `doc_cleaner` dropping
  `doc._.trf_data` after the heads;
* `keep`: the consumer keeps every doc (memory must grow: the docs are kept);
* `keep+cleaner`: keeps every doc, without their encoder output.

    python benchmarks/memory_stream.py --docs 100000
"""
import argparse
import json
import subprocess
import sys
import time
from itertools import cycle, islice
from pathlib import Path

from lib.checkpoints import tiny_checkpoint
from lib.corpora import ntrex_files, ntrex_lines
from lib.env import OUTPUT_DIR
from lib.memory import rss_mb

SETUPS = ["discard", "discard+cleaner", "keep", "keep+cleaner"]


def run_setup(setup: str, checkpoint: Path, n_docs: int, every: int, batch_size: int) -> dict:
    import spacy
    import torch

    torch.set_num_threads(1)
    texts = [line for path in ntrex_files() for line in ntrex_lines(path)]
    nlp = spacy.blank("xx")
    nlp.add_pipe(
        "xlmr_transformer", name="transformer", config={"model": {"name": str(checkpoint)}}
    )
    nlp.add_pipe("xlmr_ner", name="ner")
    nlp.add_pipe("xlmr_textcat", name="textcat")
    nlp.config["initialize"]["components"]["ner"] = {"labels": ["PER", "ORG", "LOC"]}
    nlp.config["initialize"]["components"]["textcat"] = {"labels": ["A", "B", "C"]}
    nlp.initialize()
    if setup.endswith("+cleaner"):
        nlp.add_pipe("doc_cleaner", config={"attrs": {"_.trf_data": None}})
    kept = []
    samples = [(0, rss_mb())]
    start = time.perf_counter()
    for i, doc in enumerate(nlp.pipe(islice(cycle(texts), n_docs), batch_size=batch_size), 1):
        if setup.startswith("keep"):
            kept.append(doc)
        if i % every == 0:
            samples.append((i, rss_mb()))
    elapsed = time.perf_counter() - start
    return {"setup": setup, "docs": n_docs, "seconds": elapsed, "rss_mb": samples}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--setups", nargs="+", default=SETUPS, choices=SETUPS)
    parser.add_argument(
        "--output", type=Path, default=OUTPUT_DIR / "memory_stream"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    checkpoint = args.output / "checkpoint-tiny"
    if args.worker:
        result = run_setup(args.worker, checkpoint, args.docs, args.every, args.batch_size)
        print(json.dumps(result))
        return
    tiny_checkpoint(checkpoint, verbose=False)
    results = []
    for setup in args.setups:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", setup, "--docs", str(args.docs),
             "--every", str(args.every), "--batch-size", str(args.batch_size),
             "--output", str(args.output)],
            check=True, capture_output=True, text=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps(results, indent=2))
    print(
        "| set-up | docs | docs/s | RSS after first block (MB) | RSS at end (MB) "
        "| growth per 10k docs after the first block (MB) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for result in results:
        samples = result["rss_mb"]
        (n0, first), (n1, last) = samples[1], samples[-1]
        growth = (last - first) / max(n1 - n0, 1) * 10_000
        print(
            f"| {result['setup']} | {result['docs']} | {result['docs'] / result['seconds']:.0f} "
            f"| {first:.0f} | {last:.0f} | {growth:.1f} |"
        )


if __name__ == "__main__":
    main()
