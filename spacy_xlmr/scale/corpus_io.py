"""Corpus input and sharded, resumable output for ``spacy-xlmr apply``.

Input: ``.jsonl`` (an object per line), ``.txt`` (a doc per line) or
``.parquet`` files, or a directory or glob of them, read as one stream of
records ``{"id", "text", "questions", "error"}`` in file order. A line that
isn't UTF-8 or JSON becomes a record with its ``error``; a missing id becomes
the row's 0-based index in the stream. ``scan`` also finds where each shard
starts (a ``Position``), from which ``read_records`` reads that shard alone.

Output: shard ``i`` (input rows ``i * shard_size`` onwards) is written to
``part-{i:05d}.{jsonl,parquet,spacy}`` under a temporary name and renamed when
complete; ``manifest.json`` records the input's fingerprint and the options,
so a rerun skips finished shards, and a different input is refused.
"""
import glob
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from spacy.tokens import DocBin

from ..errors import Errors
from .annotate import Row, arrow_schema, has_lone_surrogates, normalize_questions, text_error

INPUT_SUFFIXES = (".jsonl", ".txt", ".parquet")
FORMATS = ("jsonl", "parquet", "spacy")
MANIFEST = "manifest.json"
_MANIFEST_VERSION = 1


def input_files(spec: str) -> List[Path]:
    """The input files of a file, directory or glob, sorted by name."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in INPUT_SUFFIXES)
    elif path.exists():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(spec) if Path(p).suffix in INPUT_SUFFIXES)
    unknown = [str(p) for p in files if p.suffix not in INPUT_SUFFIXES]
    if unknown:
        raise ValueError(
            Errors.UNKNOWN_INPUT_SUFFIX.format(
                paths=", ".join(unknown), suffixes=", ".join(INPUT_SUFFIXES)
            )
        )
    if not files:
        raise ValueError(
            Errors.NO_INPUT_FILES.format(suffixes=", ".join(INPUT_SUFFIXES), spec=spec)
        )
    return files


@dataclass(frozen=True)
class Position:
    """Where an input row starts: ``file`` (index into the input files),
    ``offset`` (byte offset in a .jsonl/.txt file, row in a .parquet file),
    ``line`` (0-based line number of a .jsonl/.txt file) and ``row`` (its
    0-based index in the whole input)."""

    file: int
    offset: int
    line: int
    row: int


@dataclass
class Scan:
    """What ``scan`` found: the input's fingerprint, its row count and the
    position of the first row of each shard."""

    fingerprint: str
    rows: int
    shard_starts: List[Position]


def scan(files: Sequence[Path], shard_size: int) -> Scan:
    """Read the files once: their fingerprint (SHA-256 of the bytes, in
    order), row count and where each shard of ``shard_size`` rows starts."""
    digest = hashlib.sha256()
    n_rows = 0
    starts: List[Position] = []
    for file_index, path in enumerate(files):
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            with path.open("rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
            in_file = pq.ParquetFile(path).metadata.num_rows
            first = -n_rows % shard_size  # the first row of the file that starts a shard
            starts.extend(Position(file_index, offset, 0, n_rows + offset)
                          for offset in range(first, in_file, shard_size))
            n_rows += in_file
            continue
        offset = 0
        with path.open("rb") as file:
            for line_no, line in enumerate(file):
                digest.update(line)
                if _is_row(path, line):
                    if n_rows % shard_size == 0:
                        starts.append(Position(file_index, offset, line_no, n_rows))
                    n_rows += 1
                offset += len(line)
    return Scan(digest.hexdigest(), n_rows, starts)


def _is_row(path: Path, line: bytes) -> bool:
    """Every line of a .txt file is a row; blank .jsonl lines aren't."""
    return path.suffix == ".txt" or bool(line.strip())


def read_records(
    files: Sequence[Path], *, text_key: str = "text", id_key: str = "id",
    questions_key: Optional[str] = None, start: Optional[Position] = None,
) -> Iterator[Row]:
    """Records ``{"id", "text", "questions", "error"}`` of every input row,
    in order (questions read only with a ``questions_key``), from the row at
    ``start`` (a ``Position`` from ``scan``) if given."""
    index = start.row if start else 0
    for file_index, path in enumerate(files):
        if start is not None and file_index < start.file:
            continue
        here = start if start is not None and file_index == start.file else None
        for raw in _raw_rows(path, text_key, id_key, questions_key, here):
            record = {"id": raw.get("id"), "text": raw.get("text"), "questions": None,
                      "error": raw.get("error")}
            if record["id"] is None:
                record["id"] = str(index)
            elif not isinstance(record["id"], str):
                record["id"] = json.dumps(record["id"], ensure_ascii=False)
            if record["error"] is None:
                record["error"] = text_error(record["text"])
            if record["error"] is None and questions_key is not None:
                try:
                    record["questions"] = normalize_questions(raw.get("questions"))
                except ValueError as err:
                    record["error"] = str(err)
            text = record["text"]
            if not isinstance(text, str) or has_lone_surrogates(text):
                record["text"] = None  # not writable as UTF-8
            yield record
            index += 1


def check_inputs(files: Sequence[Path], text_key: str) -> None:
    """Raise ValueError if the first row of a .jsonl or .parquet file has
    no ``text_key`` (a wrong schema fails before any work)."""
    for path in files:
        _check_text_key(path, text_key)


def _check_text_key(path: Path, text_key: str) -> None:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        names = pq.ParquetFile(path).schema_arrow.names
    elif path.suffix == ".jsonl":
        names = None
        with path.open("rb") as file:
            for line in file:
                if line.strip():
                    try:
                        first = json.loads(line)
                    except ValueError:
                        return  # the row gets its error
                    names = list(first) if isinstance(first, dict) else []
                    break
        if names is None:
            return
    else:
        return
    if text_key not in names:
        raise ValueError(
            Errors.NO_TEXT_KEY.format(
                path=path, text_key=text_key, names=", ".join(names) or "none"
            )
        )


def _raw_rows(
    path: Path, text_key: str, id_key: str, questions_key: Optional[str],
    start: Optional[Position] = None,
) -> Iterator[Row]:
    """``{"id", "text", "questions"}`` (or ``{"error"}``) per row of a file,
    from ``start`` (its offset and line) if given."""
    keys = {"id": id_key, "text": text_key}
    if questions_key is not None:
        keys["questions"] = questions_key
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        columns = [key for key in keys.values() if key in parquet.schema_arrow.names]
        skip = start.offset if start else 0  # rows before the start
        groups: List[int] = []
        for group in range(parquet.num_row_groups):
            group_rows = parquet.metadata.row_group(group).num_rows
            if not groups and skip >= group_rows:
                skip -= group_rows
            else:
                groups.append(group)
        if not groups:
            return
        for batch in parquet.iter_batches(row_groups=groups, columns=columns):
            rows = batch.to_pylist()
            if skip:
                rows, skip = rows[skip:], max(0, skip - len(rows))
            for row in rows:
                yield {name: row.get(key) for name, key in keys.items()}
        return
    with path.open("rb") as file:
        if start is not None:
            file.seek(start.offset)
        for line_no, line in enumerate(file, start.line if start else 0):
            if not _is_row(path, line):
                continue
            where = f"{path.name} line {line_no + 1}"
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                yield {"error": f"{where}: invalid UTF-8 at byte {err.start}: fix the encoding"}
                continue
            if path.suffix == ".txt":
                yield {"text": text.rstrip("\r\n")}
                continue
            try:
                obj = json.loads(text)
            except ValueError as err:
                yield {"error": f"{where}: not JSON ({err})"}
                continue
            if not isinstance(obj, dict):
                yield {"error": f"{where}: not a JSON object"}
                continue
            if text_key not in obj:
                yield {"id": obj.get(id_key), "error": f"{where}: no '{text_key}'"}
                continue
            yield {name: obj.get(key) for name, key in keys.items()}


def shards(records: Iterable[Row], shard_size: int) -> Iterator[Tuple[int, List[Row]]]:
    """``(index, records)`` of consecutive shards of ``shard_size`` records."""
    batch: List[Row] = []
    index = 0
    for record in records:
        batch.append(record)
        if len(batch) == shard_size:
            yield index, batch
            index, batch = index + 1, []
    if batch:
        yield index, batch


class ShardedOutput:
    """A directory of shard files and a manifest; or, for a single output
    file, such a directory next to it, concatenated into it by ``finish``."""

    def __init__(self, output: Path, fmt: Optional[str] = None) -> None:
        output = Path(output)
        self.single = output.suffix in tuple(f".{f}" for f in FORMATS)
        self.format = output.suffix[1:] if self.single else (fmt or "jsonl")
        if self.format not in FORMATS:
            raise ValueError(
                Errors.UNKNOWN_OUTPUT_FORMAT.format(format=self.format, choices=", ".join(FORMATS))
            )
        if self.single and fmt not in (None, self.format):
            raise ValueError(
                Errors.OUTPUT_SUFFIX_CONFLICT.format(output=output, format=self.format, fmt=fmt)
            )
        self.output = output
        self.directory = output.with_name(f".{output.name}.shards") if self.single else output

    def start(self, identity: Dict[str, Any]) -> None:
        """Create the directory with its manifest, or check that an existing
        one was written from the same input and options."""
        manifest = self.directory / MANIFEST
        identity = {"version": _MANIFEST_VERSION, "format": self.format, **identity}
        if manifest.exists():
            found = json.loads(manifest.read_text(encoding="utf8"))
            differ = sorted(k for k in {*found, *identity} if found.get(k) != identity.get(k))
            if differ:
                raise ValueError(
                    Errors.SHARDS_OF_OTHER_JOB.format(
                        directory=self.directory, differ=", ".join(differ)
                    )
                )
            return
        if self.directory.exists() and any(self.directory.iterdir()):
            raise ValueError(
                Errors.NOT_APPLY_OUTPUT.format(directory=self.directory, manifest=MANIFEST)
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(manifest, json.dumps(identity, indent=2).encode("utf8"))

    def path(self, index: int) -> Path:
        return self.directory / f"part-{index:05d}.{self.format}"

    def done(self, index: int) -> bool:
        return self.path(index).exists()

    def write(self, index: int, rows: List[Row]) -> None:
        """Write shard ``index`` (renamed into place once complete)."""
        if self.format == "jsonl":
            data = "".join(
                json.dumps({k: v for k, v in row.items() if k != "doc"}, ensure_ascii=False) + "\n"
                for row in rows
            ).encode("utf8")
        elif self.format == "parquet":
            data = _parquet_bytes(rows)
        else:
            doc_bin = DocBin(store_user_data=True)
            for row in rows:
                if row.get("doc") is not None:
                    doc_bin.merge(DocBin(store_user_data=True).from_bytes(row["doc"]))
            data = doc_bin.to_bytes()
        _write_atomic(self.path(index), data)

    def finish(self, n_shards: int) -> Path:
        """For a single output file, concatenate the shards into it (atomic
        rename) and remove the shard directory; returns the output."""
        if not self.single:
            return self.output
        parts = [self.path(i) for i in range(n_shards)]
        tmp = self.output.with_name(f".{self.output.name}.tmp")
        if self.format == "jsonl":
            with tmp.open("wb") as out:
                for part in parts:
                    with part.open("rb") as file:
                        shutil.copyfileobj(file, out)
        elif self.format == "parquet":
            import pyarrow.parquet as pq

            writer = None
            for part in parts:
                table = pq.read_table(part)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
            if writer is not None:
                writer.close()
        else:
            doc_bin = DocBin(store_user_data=True)
            for part in parts:
                doc_bin.merge(DocBin(store_user_data=True).from_disk(part))
            doc_bin.to_disk(tmp)
        os.replace(tmp, self.output)
        shutil.rmtree(self.directory)
        return self.output


def _parquet_bytes(rows: List[Row]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [column for column in rows[0] if column != "doc"]
    table = pa.Table.from_pylist(rows, schema=arrow_schema(columns))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file, flush it to disk, rename it."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
