"""Speed of `spacy-xlmr apply` with a base-sized random encoder + xlmr_ner:
docs/s and words/s of plain `nlp.pipe` (2 threads), the local engine, and the
Ray engine with 2 workers x 1 thread and 1 worker x 2 threads; the engines'
overhead over plain `nlp.pipe`; peak RSS of this process and of each Ray
worker (ru_maxrss of an actor annotating the same docs).

Each run is timed end to end at every corpus size of ``--docs`` (e.g.
``500,2000``). With two sizes or more, a least-squares line through
(docs, seconds) splits each run into its start-up (the intercept: loading the
pipeline, starting actors, scanning and writing) and its steady throughput
(the slope's inverse, in docs/s), so engines can be compared apart from
their fixed cost.

    python benchmarks/apply_speed.py --docs 500,2000 --output benchmarks/output/apply_speed.json
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # local Ray on 127.0.0.1

from lib.corpora import ntrex_files  # noqa: E402
from lib.memory import ru_maxrss_mb  # noqa: E402

PLAIN = "nlp.pipe, 2 threads"
ENGINES: Dict[str, Dict[str, Any]] = {
    "apply local, 2 threads": {"engine": "local", "threads": 2},
    "apply ray, 2 workers x 1 thread": {"engine": "ray", "workers": 2, "threads": 1},
    "apply ray, 1 worker x 2 threads": {"engine": "ray", "workers": 1, "threads": 2},
}


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


def fit_line(points: List[Tuple[int, float]]) -> Tuple[float, float]:
    """``(start-up seconds, seconds per doc)``: the least-squares line
    through ``(docs, seconds)`` points of one run."""
    import numpy

    per_doc, start_up = numpy.polyfit([x for x, _ in points], [y for _, y in points], 1)
    return float(start_up), float(per_doc)


def time_plain(pipeline: str, texts: List[str], batch_size: int) -> float:
    """Seconds of plain ``nlp.pipe`` over ``texts`` (pipeline loaded before)."""
    import spacy
    import torch

    torch.set_num_threads(2)
    nlp = spacy.load(pipeline)
    list(nlp.pipe(texts[:16]))  # warm-up
    start = time.perf_counter()
    for doc in nlp.pipe(texts, batch_size=batch_size):
        doc._.trf_data = None
    return time.perf_counter() - start


def time_engines(pipeline: str, texts: List[str], tmp_path: Path,
                 batch_size: int) -> Dict[str, float]:
    """End-to-end seconds of each engine of ``apply`` on ``texts``."""
    from spacy_xlmr.scale.apply import apply

    source = tmp_path / f"in-{len(texts)}.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    seconds: Dict[str, float] = {}
    for i, (name, options) in enumerate(ENGINES.items()):
        start = time.perf_counter()
        apply(pipeline, str(source), tmp_path / f"out-{len(texts)}-{i}.jsonl",
              batch_size=batch_size, shard_size=250, progress=False, **options)
        seconds[name] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", default="1000",
                        help="corpus sizes, comma-separated (two or more to fit start-up)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    import torch

    from spacy_xlmr.scale.apply import init_ray

    sizes = sorted(int(n) for n in args.docs.split(","))
    results: Dict[str, Any] = {"docs": sizes, "cpus": os.cpu_count(),
                               "torch": torch.__version__, "runs": {}}
    timings: Dict[int, Dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        pipeline = str(build_pipeline(tmp_path))
        for n in sizes:  # before Ray starts its processes
            timings[n] = {PLAIN: time_plain(pipeline, sentences(n), args.batch_size)}
        init_ray(num_cpus=os.cpu_count())
        import ray

        for n in sizes:
            timings[n].update(time_engines(pipeline, sentences(n), tmp_path, args.batch_size))
        probe = ray.remote(num_cpus=1)(WorkerProbe).remote()
        results["ray_worker_peak_rss_mb"] = round(
            ray.get(probe.run.remote(pipeline, sentences(sizes[-1]), args.batch_size)), 1)
        ray.shutdown()
    for n in sizes:
        words = sum(len(t.split()) for t in sentences(n))
        base = timings[n][PLAIN]
        results["runs"][str(n)] = {name: {
            "seconds": round(seconds, 2), "docs_per_s": round(n / seconds, 1),
            "words_per_s": round(words / seconds, 1),
            "overhead_vs_nlp_pipe": round(seconds / base - 1, 3),
        } for name, seconds in timings[n].items()}
    if len(sizes) > 1:
        fits = {name: fit_line([(n, timings[n][name]) for n in sizes])
                for name in timings[sizes[0]]}
        plain_rate = 1 / fits[PLAIN][1]
        results["fit"] = {name: {
            "start_up_s": round(start_up, 2), "steady_docs_per_s": round(1 / per_doc, 1),
            "steady_vs_nlp_pipe": round(plain_rate * per_doc - 1, 3),
        } for name, (start_up, per_doc) in fits.items()}
    results["driver_peak_rss_mb"] = round(ru_maxrss_mb(), 1)  # includes the nlp.pipe runs
    results["gpu"] = "not measured (no GPU lent)"
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
