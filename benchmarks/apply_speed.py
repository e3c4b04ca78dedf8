"""Speed of `spacy-xlmr apply` with a base-sized random encoder + xlmr_ner:
docs/s and words/s of plain `nlp.pipe` (2 threads), the local engine, and the
Ray engine with 2 workers x 1 thread and 1 worker x 2 threads; the engines'
overhead over plain `nlp.pipe`; peak RSS of this process and of each Ray
worker (ru_maxrss of an actor annotating the same docs).

    python benchmarks/apply_speed.py --docs 1000 --output benchmarks/output/apply_speed.json
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # local Ray on 127.0.0.1

from lib.corpora import ntrex_files  # noqa: E402
from lib.memory import ru_maxrss_mb  # noqa: E402


def sentences(n: int) -> List[str]:
    per_language = [p.read_text(encoding="utf8").splitlines() for p in ntrex_files()]
    mixed = [line for lines in zip(*per_language) for line in lines if line.strip()]
    return [mixed[i % len(mixed)] for i in range(n)]


def build_pipeline(path: Path) -> Path:
    from spacy_xlmr.checkpoints import build_checkpoint, shipped_texts
    import spacy

    checkpoint = build_checkpoint(path / "encoder", shipped_texts(), size="base")
    nlp = spacy.blank("xx")
    nlp.add_pipe("xlmr_transformer", name="transformer",
                 config={"model": {"name": str(checkpoint)}})
    ner = nlp.add_pipe("xlmr_ner", name="ner")
    for label in ("PER", "ORG", "LOC"):
        ner.add_label(label)
    nlp.initialize()
    nlp.to_disk(path / "pipeline")
    return path / "pipeline"


class WorkerProbe:
    """A Ray actor that annotates like an apply worker and reports its peak RSS."""

    def run(self, pipeline: str, texts: List[str], batch_size: int) -> float:
        # Not lib.memory.ru_maxrss_mb: a Ray worker can't import `lib`
        # (benchmarks/ isn't on its path), and this class travels by value.
        import resource

        from spacy_xlmr.scale.annotate import Annotator

        Annotator(pipeline, threads=1, batch_size=batch_size)({"text": texts})
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    import torch

    from spacy_xlmr.scale.apply import apply, init_ray

    texts = sentences(args.docs)
    words = sum(len(t.split()) for t in texts)
    results: Dict[str, Any] = {"docs": len(texts), "words": words, "cpus": os.cpu_count(),
                               "torch": torch.__version__, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        pipeline = str(build_pipeline(tmp_path))
        source = tmp_path / "in.jsonl"
        source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))

        import spacy

        torch.set_num_threads(2)
        nlp = spacy.load(pipeline)
        list(nlp.pipe(texts[:16]))  # warm-up
        start = time.perf_counter()
        for doc in nlp.pipe(texts, batch_size=args.batch_size):
            doc._.trf_data = None
        results["runs"]["nlp.pipe, 2 threads"] = time.perf_counter() - start
        del nlp

        runs = {
            "apply local, 2 threads": {"engine": "local", "threads": 2},
            "apply ray, 2 workers x 1 thread": {"engine": "ray", "workers": 2, "threads": 1},
            "apply ray, 1 worker x 2 threads": {"engine": "ray", "workers": 1, "threads": 2},
        }
        init_ray(num_cpus=os.cpu_count())
        import ray

        for name, options in runs.items():
            start = time.perf_counter()
            apply(pipeline, str(source), tmp_path / f"{len(results['runs'])}.jsonl",
                  batch_size=args.batch_size, shard_size=250, progress=False, **options)
            results["runs"][name] = time.perf_counter() - start
        probe = ray.remote(num_cpus=1)(WorkerProbe).remote()
        results["ray_worker_peak_rss_mb"] = round(
            ray.get(probe.run.remote(pipeline, texts, args.batch_size)), 1)
        ray.shutdown()
    base = results["runs"]["nlp.pipe, 2 threads"]
    for name, seconds in list(results["runs"].items()):
        results["runs"][name] = {
            "seconds": round(seconds, 2), "docs_per_s": round(len(texts) / seconds, 1),
            "words_per_s": round(words / seconds, 1),
            "overhead_vs_nlp_pipe": round(seconds / base - 1, 3),
        }
    results["driver_peak_rss_mb"] = round(ru_maxrss_mb(), 1)  # includes the nlp.pipe run
    results["gpu"] = "not measured (no GPU lent)"
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
