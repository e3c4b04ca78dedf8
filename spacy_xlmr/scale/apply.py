"""``spacy-xlmr apply``: annotate a corpus with a pipeline, on this machine
(``nlp.pipe``) or on a Ray cluster (Ray Data ``map_batches`` over
``Annotator`` actors), into sharded, resumable output (``corpus_io``)."""
import hashlib
import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import spacy
from tqdm import tqdm

from .annotate import Annotator, Row, pipeline_columns, pipeline_path
from .corpus_io import ShardedOutput, check_inputs, input_files, read_records, scan, shards

ENGINES = ("local", "ray")
Shard = Tuple[int, List[Row]]


@dataclass
class ApplyResult:
    """What a run of ``apply`` did."""

    output: Path
    rows: int  # input rows
    annotated: int  # rows written by this run (the rest: shards of an earlier run)
    errors: int  # rows of this run with an error


def apply(
    pipeline: str,
    input_spec: str,
    output: Path,
    *,
    engine: str = "local",
    fmt: Optional[str] = None,
    text_key: str = "text",
    id_key: str = "id",
    shard_size: int = 1000,
    batch_size: int = 64,
    n_process: int = 1,
    threads: Optional[int] = None,
    gpu_id: int = -1,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    address: Optional[str] = None,
    window_shards: int = 64,
    progress: Optional[bool] = None,
) -> ApplyResult:
    """Annotate every row of ``input_spec`` with ``pipeline`` into
    ``output`` (see ``spacy-xlmr apply --help``); shards finished by an
    earlier run with the same input and options are kept."""
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine '{engine}': use {' or '.join(ENGINES)}")
    if shard_size < 1 or batch_size < 1 or workers < 1:
        raise ValueError("shard_size, batch_size and workers must be at least 1")
    files = input_files(input_spec)
    check_inputs(files, text_key)
    path = pipeline_path(pipeline)
    columns = pipeline_columns(spacy.util.load_config(path / "config.cfg"))
    out = ShardedOutput(output, fmt)
    fingerprint, n_rows = scan(files)
    out.start({
        "input": fingerprint,
        "rows": n_rows,
        "pipeline": _fingerprint(path / "config.cfg", path / "meta.json"),
        "options": {"text_key": text_key, "id_key": id_key, "shard_size": shard_size},
    })
    n_shards = -(-n_rows // shard_size)
    done = [i for i in range(n_shards) if out.done(i)]
    records = read_records(files, text_key=text_key, id_key=id_key,
                           questions_key="questions" if "answers" in columns else None)
    pending = ((i, rows) for i, rows in shards(records, shard_size) if not out.done(i))
    options: Dict[str, Any] = {"batch_size": batch_size, "with_docs": out.format == "spacy"}
    if engine == "local":
        results = _run_local(pipeline, pending, n_process=n_process, threads=threads,
                             gpu_id=gpu_id, **options)
    else:
        results = _run_ray(pipeline, pending, workers=workers, threads=threads,
                           gpus_per_worker=gpus_per_worker, address=address,
                           window_shards=window_shards, **options)
    annotated = errors = 0
    initial = sum(min(shard_size, n_rows - i * shard_size) for i in done)
    if progress is None:
        progress = sys.stderr.isatty()
    with tqdm(total=n_rows, initial=initial, unit="doc", disable=not progress,
              file=sys.stderr, smoothing=0.1) as bar:
        for index, rows in results:
            out.write(index, rows)
            annotated += len(rows)
            errors += sum(row["error"] is not None for row in rows)
            bar.update(len(rows))
    return ApplyResult(out.finish(n_shards), n_rows, annotated, errors)


def _fingerprint(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _run_local(
    pipeline: str, pending: Iterable[Shard], *, n_process: int, threads: Optional[int],
    gpu_id: int, batch_size: int, with_docs: bool,
) -> Iterator[Shard]:
    """Annotate each shard with ``nlp.pipe`` in this process (``n_process``
    forked children if more than one)."""
    if n_process > 1:  # HF tokenizers would warn in every forked child
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    annotator = Annotator(pipeline, batch_size=batch_size, threads=threads, gpu_id=gpu_id,
                          with_docs=with_docs)
    for index, records in pending:
        yield index, annotator.annotate(records, n_process=n_process)


def init_ray(address: Optional[str] = None, num_cpus: Optional[int] = None) -> bool:
    """Join the Ray cluster at ``address`` ("auto", "ray://host:port"), or
    start a local one on 127.0.0.1 without dashboard or usage stats.
    Returns whether a connection was made (False: Ray was initialised)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not address:
        # Read when Ray is imported: off, a local cluster uses the loopback
        # address (as Ray does on macOS and Windows), not the machine's.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    else:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False)
    return True


def _run_ray(
    pipeline: str, pending: Iterable[Shard], *, workers: int, threads: Optional[int],
    gpus_per_worker: float, address: Optional[str], window_shards: int, batch_size: int,
    with_docs: bool,
) -> Iterator[Shard]:
    """Annotate the shards with ``workers`` Annotator actors in Ray Data,
    ``window_shards`` shards per dataset; output rows in input order."""
    started = init_ray(address)
    import pyarrow as pa
    import ray

    context = ray.data.DataContext.get_current()
    preserve_order = context.execution_options.preserve_order
    progress_bars = context.enable_progress_bars
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # apply shows its own, over all windows
    try:
        cpus = threads or max(1, int(ray.cluster_resources().get("CPU", 1)) // workers)
        kwargs = {"pipeline": pipeline, "batch_size": batch_size, "threads": cpus,
                  "with_docs": with_docs}
        question = pa.struct([("id", pa.string()), ("question", pa.string())])
        schema = pa.schema([("id", pa.string()), ("text", pa.string()),
                            ("questions", pa.list_(question)), ("error", pa.string())])
        pending = iter(pending)
        while True:
            window = list(itertools.islice(pending, window_shards))
            if not window:
                break
            table = pa.Table.from_pylist([r for _, rows in window for r in rows], schema=schema)
            blocks = [table.slice(i, batch_size) for i in range(0, len(table), batch_size)]
            dataset = ray.data.from_arrow(blocks).map_batches(
                Annotator, fn_constructor_kwargs=kwargs, batch_format="pyarrow",
                batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=cpus,
                num_gpus=gpus_per_worker or None,
            )
            rows = (
                row for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None)
                for row in batch.to_pylist(maps_as_pydicts="strict")
            )
            for index, records in window:
                annotated = list(itertools.islice(rows, len(records)))
                if [r["id"] for r in annotated] != [r["id"] for r in records]:
                    raise RuntimeError(f"Ray Data returned shard {index}'s rows out of order")
                yield index, annotated
    finally:
        context.execution_options.preserve_order = preserve_order
        context.enable_progress_bars = progress_bars
        if started:
            ray.shutdown()
