"""``spacy-xlmr apply``: annotate a corpus with a pipeline, on this machine
(``nlp.pipe``) or on a Ray cluster (one Ray Data ``map_batches`` stage over a
pool of actors that each read and annotate whole shards), into sharded,
resumable output (``corpus_io``)."""
import hashlib
import ipaddress
import itertools
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import spacy
from tqdm import tqdm

from ..errors import Errors
from .annotate import Annotator, Row, arrow_schema, pipeline_columns, pipeline_path
from .corpus_io import (
    Position, ShardedOutput, check_inputs, input_files, read_records, scan, shards,
)

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
    progress: Optional[bool] = None,
) -> ApplyResult:
    """Annotate every row of ``input_spec`` with ``pipeline`` into
    ``output`` (see ``spacy-xlmr apply --help``); shards finished by an
    earlier run with the same input and options are kept."""
    if engine not in ENGINES:
        raise ValueError(Errors.UNKNOWN_ENGINE.format(engine=engine, choices=" or ".join(ENGINES)))
    if shard_size < 1 or batch_size < 1 or workers < 1:
        raise ValueError(Errors.APPLY_SIZES_TOO_SMALL)
    files = input_files(input_spec)
    check_inputs(files, text_key)
    path = pipeline_path(pipeline)
    columns = pipeline_columns(spacy.util.load_config(path / "config.cfg"))
    out = ShardedOutput(output, fmt)
    scanned = scan(files, shard_size)
    n_rows = scanned.rows
    out.start({
        "input": scanned.fingerprint,
        "rows": n_rows,
        "pipeline": _fingerprint(path / "config.cfg", path / "meta.json"),
        "options": {"text_key": text_key, "id_key": id_key, "shard_size": shard_size},
    })
    n_shards = -(-n_rows // shard_size)
    done = [i for i in range(n_shards) if out.done(i)]
    read: Dict[str, Any] = {
        "text_key": text_key, "id_key": id_key,
        "questions_key": "questions" if "answers" in columns else None,
    }
    options: Dict[str, Any] = {"batch_size": batch_size, "with_docs": out.format == "spacy"}
    if engine == "local":
        records = read_records(files, **read)
        pending = ((i, rows) for i, rows in shards(records, shard_size) if not out.done(i))
        results = _run_local(pipeline, pending, n_process=n_process, threads=threads,
                             gpu_id=gpu_id, **options)
    else:
        todo = [
            RayShard(i, start, min(shard_size, n_rows - start.row))
            for i, start in enumerate(scanned.shard_starts) if not out.done(i)
        ]
        if Path(pipeline).exists():  # the actors may run in another directory
            pipeline = str(Path(pipeline).resolve())
        results = _run_ray(pipeline, [str(f.resolve()) for f in files], todo, read=read,
                           workers=workers, threads=threads, gpus_per_worker=gpus_per_worker,
                           address=address, **options)
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
    """Join the Ray cluster at ``address`` ("auto", "host:port" of its GCS,
    "ray://host:port"), or start a local one on 127.0.0.1 without dashboard
    or usage stats. Returns whether a connection was made (False: Ray was
    initialised). An address with nothing listening is a ValueError naming
    it, at once (Ray would retry for minutes)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    target = os.environ.get("RAY_ADDRESS") if address == "auto" else address
    host_port = _ray_host_port(target)
    if not address or (host_port and _is_loopback(host_port[0])):
        # Read when Ray is imported: off, a local cluster uses the loopback
        # address (as Ray does on macOS and Windows), not the machine's, and
        # a driver joining one on 127.0.0.1 doesn't swap in the machine's.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if host_port:
        try:
            socket.create_connection(host_port, timeout=10).close()
        except OSError as err:
            raise ValueError(Errors.NO_RAY_CLUSTER.format(target=target, error=err)) from None
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    else:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False)
    return True


def _ray_host_port(address: Optional[str]) -> Optional[Tuple[str, int]]:
    """(host, port) of a Ray address "host:port" or "ray://host:port"."""
    host, _, port = (address or "").split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class RayShard:
    """A shard for the Ray engine: its index, where its first input row is,
    how many rows it has."""

    index: int
    start: Position
    rows: int


def _run_ray(
    pipeline: str, files: List[str], todo: List[RayShard], *, read: Dict[str, Any],
    workers: int, threads: Optional[int], gpus_per_worker: float, address: Optional[str],
    batch_size: int, with_docs: bool,
) -> Iterator[Shard]:
    """Annotate the shards ``todo`` with one Ray Data pipeline: a dataset of
    shard positions (one block each) mapped by a pool of ``workers``
    ShardAnnotator actors, each of which reads a shard's rows from the input
    files and annotates them. Yields the shards in order as they arrive."""
    if not todo:
        return
    started = init_ray(address)
    import ray

    context = ray.data.DataContext.get_current()
    preserve_order = context.execution_options.preserve_order
    progress_bars = context.enable_progress_bars
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # apply shows its own
    try:
        cpus = threads or max(1, int(ray.cluster_resources().get("CPU", 1)) // workers)
        kwargs = {"files": files, "read": read, "pipeline": pipeline, "batch_size": batch_size,
                  "threads": cpus, "with_docs": with_docs}
        items = [{"shard": s.index, "file": s.start.file, "offset": s.start.offset,
                  "line": s.start.line, "row": s.start.row, "rows": s.rows} for s in todo]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ShardAnnotator, fn_constructor_kwargs=kwargs, batch_format="pyarrow", batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(items))),
            num_cpus=cpus, num_gpus=gpus_per_worker or None,
        )
        batches: Iterable[Any] = dataset.iter_batches(batch_format="pyarrow", batch_size=None)
        rows = (row for batch in batches for row in batch.to_pylist(maps_as_pydicts="strict"))
        for shard in todo:
            annotated = list(itertools.islice(rows, shard.rows))
            if len(annotated) != shard.rows or any(
                r.pop(SHARD_COLUMN) != shard.index for r in annotated
            ):
                raise RuntimeError(Errors.RAY_ROWS_OUT_OF_ORDER.format(shard=shard.index))
            yield shard.index, annotated
    finally:
        context.execution_options.preserve_order = preserve_order
        context.enable_progress_bars = progress_bars
        if started:
            ray.shutdown()


SHARD_COLUMN = "_shard"


class ShardAnnotator:
    """A Ray Data actor of the Ray engine: loads the pipeline once, then maps
    a batch of shard positions (``shard``, ``file``, ``offset``, ``line``,
    ``row``, ``rows``) to the annotated rows of those shards, which it reads
    from the input files itself (so the driver never holds the corpus), with
    their shard index in a ``_shard`` column."""

    def __init__(self, files: List[str], read: Dict[str, Any], **annotator: Any) -> None:
        self.files = [Path(f) for f in files]
        self.read = read
        self.annotator = Annotator(**annotator)
        self.schema = arrow_schema(self.annotator.columns)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        tables = []
        for item in batch.to_pylist():
            start = Position(item["file"], item["offset"], item["line"], item["row"])
            records = list(itertools.islice(
                read_records(self.files, start=start, **self.read), item["rows"]
            ))
            if len(records) != item["rows"]:
                raise RuntimeError(
                    Errors.INPUT_CHANGED.format(
                        shard=item["shard"], n_read=len(records), n_rows=item["rows"]
                    )
                )
            table = pa.Table.from_pylist(self.annotator.annotate(records), schema=self.schema)
            tables.append(table.append_column(
                SHARD_COLUMN, pa.array([item["shard"]] * len(table), pa.int64())
            ))
        return pa.concat_tables(tables)
