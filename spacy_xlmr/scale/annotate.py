"""The worker contract of corpus annotation.

``Annotator(pipeline)`` loads a pipeline once per worker (by path or package
name, never pickled from a driver), caps torch's threads to the worker's CPUs,
uses the GPU Ray assigned, and maps a batch of input rows (a pyarrow Table, a
pandas DataFrame or a dict of columns) to plain output columns, so that
``Doc`` objects and ``doc._.trf_data`` never leave the worker::

    ds.map_batches(Annotator, fn_constructor_kwargs={"pipeline": "./ner"},
                   batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=4),
                   num_cpus=2)
    spark_df.mapInPandas(map_in_pandas("./ner"), schema=spark_schema(columns))

Output columns (``pipeline_columns``): ``id``, ``text``, then what the
pipeline's components assign (``ents``, ``cats``, ``answers``, ``fill_mask``,
``tags``, ``spans``), then ``error``: None, or why the row wasn't annotated.
A bad row (text missing, not a string, empty, with lone surrogates, longer
than ``max_chars``, invalid questions) gets its ``error``; the others of its
batch are annotated.
"""
import sys
from pathlib import Path
from typing import (
    TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Set, Tuple,
    cast,
)

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from thinc.api import Config

from ..errors import Errors
from ..qa.data import EXTENSION as QUESTIONS, validate_questions

if TYPE_CHECKING:
    from ..pipeline.qa import XLMRQuestionAnswerer

Row = Dict[str, Any]
# Output columns, in order, and the component assignment that produces each.
COLUMNS = ("id", "text", "ents", "cats", "answers", "fill_mask", "tags", "spans", "error")
_ASSIGNS = {
    "ents": "doc.ents",
    "cats": "doc.cats",
    "answers": "doc._.qa_answers",
    "fill_mask": "doc._.fill_mask",
    "tags": "token.tag",
    "spans": "doc.spans",
}
# Components whose doc.spans are their own column already.
_OWN_SPANS = {"xlmr_qa"}
_SPAN_DDL = "struct<start_char:bigint,end_char:bigint,label:string,score:double>"
_SPARK_TYPES = {
    "id": "string",
    "text": "string",
    "ents": f"array<{_SPAN_DDL}>",
    "cats": "map<string,double>",
    "answers": "map<string,array<struct<text:string,start:bigint,end:bigint,score:double>>>",
    "fill_mask": "array<array<struct<token_str:string,score:double,sequence:string>>>",
    "tags": "array<struct<start_char:bigint,end_char:bigint,tag:string>>",
    "spans": f"map<string,array<{_SPAN_DDL}>>",
    "error": "string",
}


def pipeline_columns(config: Config) -> List[str]:
    """The output columns of a pipeline, from the ``assigns`` of the
    factories of its enabled components (no weights are loaded)."""
    disabled = set(config["nlp"].get("disabled", []))
    assigns: Set[str] = set()
    for name in config["nlp"]["pipeline"]:
        if name in disabled:
            continue
        factory = config["components"][name]["factory"]
        own_spans = factory in _OWN_SPANS
        assigns.update(a for a in Language.get_factory_meta(factory).assigns
                       if not (own_spans and a == "doc.spans"))
    return [c for c in COLUMNS if c not in _ASSIGNS or _ASSIGNS[c] in assigns]


def pipeline_path(pipeline: str) -> Path:
    """The directory of a pipeline directory or installed package (what
    ``spacy.load`` takes), found without loading it. Raises ValueError."""
    path = Path(pipeline)
    if not path.exists() and spacy.util.is_package(pipeline):
        package = spacy.util.get_package_path(pipeline)
        path = next((p.parent for p in package.glob("*/config.cfg")), package)
    if not (path / "config.cfg").exists():
        raise ValueError(Errors.NO_PIPELINE_AT.format(pipeline=pipeline))
    return path


def arrow_schema(columns: Iterable[str]) -> Any:
    """The pyarrow schema of the output columns (maps for ``cats``,
    ``answers`` and ``spans``, whose keys vary)."""
    import pyarrow as pa

    def struct(*fields: Tuple[str, Any]) -> Any:
        return pa.struct(list(fields))

    span = struct(("start_char", pa.int64()), ("end_char", pa.int64()),
                  ("label", pa.string()), ("score", pa.float64()))
    types = {
        "id": pa.string(),
        "text": pa.string(),
        "ents": pa.list_(span),
        "cats": pa.map_(pa.string(), pa.float64()),
        "answers": pa.map_(pa.string(), pa.list_(struct(
            ("text", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
            ("score", pa.float64()),
        ))),
        "fill_mask": pa.list_(pa.list_(struct(
            ("token_str", pa.string()), ("score", pa.float64()), ("sequence", pa.string()),
        ))),
        "tags": pa.list_(struct(("start_char", pa.int64()), ("end_char", pa.int64()),
                                ("tag", pa.string()))),
        "spans": pa.map_(pa.string(), pa.list_(span)),
        "error": pa.string(),
        "doc": pa.binary(),
    }
    return pa.schema([(column, types[column]) for column in columns])


def spark_schema(columns: Iterable[str]) -> str:
    """The output columns as a Spark DDL schema string, for ``mapInPandas``."""
    return ", ".join(f"{column} {_SPARK_TYPES[column]}" for column in columns)


def text_error(text: Any) -> Optional[str]:
    """Why ``text`` can't be annotated (None if it can)."""
    if not isinstance(text, str):
        return f"text is {type(text).__name__}, not a string: give every row a string text"
    if not text.strip():
        return "text is empty or whitespace: nothing to annotate"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return (f"text has a lone surrogate at character {err.start} (invalid UTF-8/16 "
                "in the source): fix the text's encoding")
    return None


def normalize_questions(value: Any) -> List[Dict[str, str]]:
    """Questions as ``[{"id", "question"}]``: strings get the ids "q0",
    "q1", ... as in ``qa.ask``; None (or NaN) is none. Raises ValueError."""
    if _missing(value):
        return []
    if isinstance(value, (str, dict)):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise ValueError(
            Errors.QUESTIONS_NOT_A_LIST.format(type_name=type(value).__name__)
        ) from None
    questions = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"id": f"q{i}", "question": item}
        if not (isinstance(item, Mapping) and isinstance(item.get("id"), str)
                and isinstance(item.get("question"), str)):
            raise ValueError(Errors.BAD_QUESTION.format(i=i, item=item))
        questions.append({"id": item["id"], "question": item["question"]})
    return questions


def _span(span: Span, score: Any) -> Row:
    return {"start_char": span.start_char, "end_char": span.end_char,
            "label": span.label_, "score": None if score is None else float(score)}


def doc_to_row(doc: Doc, columns: Iterable[str], *, spans_exclude: Iterable[str] = ()) -> Row:
    """The annotations of ``doc`` as plain values, one per column (``id``
    and ``error`` are None; ``spans`` leaves out the keys ``spans_exclude``)."""
    row: Row = {}
    for column in columns:
        if column == "text":
            row[column] = doc.text
        elif column == "ents":
            row[column] = [_span(e, e._.ent_score) for e in doc.ents]
        elif column == "cats":
            row[column] = {label: float(score) for label, score in doc.cats.items()}
        elif column == "answers":
            row[column] = {
                qid: [{"text": a["answer"], "start": a["start"], "end": a["end"],
                       "score": float(a["score"])} for a in answers]
                for qid, answers in (doc._.qa_answers or {}).items()
            }
        elif column == "fill_mask":
            row[column] = [
                [{"token_str": p["token_str"], "score": float(p["score"]),
                  "sequence": p["sequence"]} for p in predictions]
                for predictions in doc._.fill_mask or []
            ]
        elif column == "tags":
            row[column] = [{"start_char": t.idx, "end_char": t.idx + len(t), "tag": t.tag_}
                           for t in doc]
        elif column == "spans":
            row[column] = {
                key: [_span(s, score) for s, score in zip(group, _scores(group))]
                for key, group in doc.spans.items() if key not in spans_exclude
            }
        else:
            row[column] = None
    return row


def _scores(group: Any) -> List[Any]:
    scores = group.attrs.get("scores")
    return [None] * len(group) if scores is None else list(scores)


def _ray_actor_context() -> Any:
    """Ray's runtime context in a Ray actor, else None (Ray isn't imported
    just to find out)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    return context if context.get_actor_id() is not None else None


def _assigned_cpus() -> Optional[int]:
    """The CPUs Ray assigned to this actor (None outside one)."""
    context = _ray_actor_context()
    cpus = context.get_assigned_resources().get("CPU") if context else None
    return max(1, int(cpus)) if cpus else None


def _assigned_gpu() -> Optional[int]:
    """0 (the first visible device) where Ray assigned this actor a GPU."""
    context = _ray_actor_context()
    return 0 if context and context.get_accelerator_ids().get("GPU") else None


class Annotator:
    """Load a pipeline once and map batches of rows to output columns.

    pipeline (str): A pipeline directory or installed package name.
    text_key / id_key / questions_key (str): Input columns. Rows without an
        id get None; questions (for ``xlmr_qa``) are strings or
        ``{"id", "question"}`` dicts.
    batch_size (int): ``nlp.pipe`` batch size.
    threads (int): torch threads (default: the CPUs Ray assigned the worker,
        else torch's default).
    gpu_id (int): GPU to use, -1 for CPU (default: the GPU Ray assigned, if any).
    max_chars (int): Longer texts get an error (default ``nlp.max_length``).
    with_docs (bool): Add a ``doc`` column: the Doc as DocBin bytes (user
        data kept, ``doc._.trf_data`` dropped), for ``.spacy`` output.
    """

    def __init__(
        self,
        pipeline: str,
        *,
        text_key: str = "text",
        id_key: str = "id",
        questions_key: str = "questions",
        batch_size: int = 64,
        threads: Optional[int] = None,
        gpu_id: Optional[int] = None,
        max_chars: Optional[int] = None,
        with_docs: bool = False,
    ) -> None:
        import torch

        threads = threads or _assigned_cpus()
        if threads:
            torch.set_num_threads(threads)
        gpu_id = _assigned_gpu() if gpu_id is None else gpu_id
        if gpu_id is not None and gpu_id >= 0:
            spacy.require_gpu(gpu_id)
        self.nlp = spacy.load(pipeline)
        self.columns = pipeline_columns(self.nlp.config) + (["doc"] if with_docs else [])
        self.text_key = text_key
        self.id_key = id_key
        self.questions_key = questions_key
        self.batch_size = batch_size
        self.max_chars = max_chars or self.nlp.max_length
        self._asks = "answers" in self.columns
        self._spans_exclude = [
            cast("XLMRQuestionAnswerer", pipe).spans_key for name, pipe in self.nlp.pipeline
            if self.nlp.get_pipe_meta(name).factory in _OWN_SPANS
        ]

    def __call__(self, batch: Any) -> Any:
        """Map a batch to the output columns: a pyarrow Table to a Table, a
        pandas DataFrame to a DataFrame, a dict of columns to a dict of lists."""
        kind = type(batch).__module__.split(".")[0]
        if kind == "pyarrow":
            records = batch.to_pylist()
        elif kind == "pandas":
            records = batch.to_dict("records")
        elif isinstance(batch, Mapping):
            records = _dict_records(batch)
        else:
            raise TypeError(
                Errors.ANNOTATE_BAD_INPUT_FORMAT.format(type_name=type(batch).__name__)
            )
        if records and self.text_key not in records[0]:
            raise ValueError(
                Errors.NO_TEXT_COLUMN.format(
                    text_key=self.text_key, columns=", ".join(map(str, records[0]))
                )
            )
        rows = self.annotate(records)
        if kind == "pyarrow":
            return type(batch).from_pylist(rows, schema=arrow_schema(self.columns))
        if kind == "pandas":
            return type(batch)(rows, columns=self.columns)
        return {column: [row[column] for row in rows] for column in self.columns}

    def annotate(self, records: Iterable[Mapping[str, Any]], *, n_process: int = 1) -> List[Row]:
        """One output row per record, in order. A record's ``error`` (e.g. a
        line the reader couldn't decode) is passed through unannotated."""
        rows: List[Row] = []
        todo: List[Tuple[int, str, Any]] = []  # (row, text, questions) to annotate
        for record in records:
            row = dict.fromkeys(self.columns)
            row_id = record.get(self.id_key)
            row["id"] = None if _missing(row_id) else str(row_id)
            text = record.get(self.text_key)
            row["text"] = text if isinstance(text, str) and not has_lone_surrogates(text) else None
            row["error"] = record.get("error") or self._text_error(text)
            if row["error"] is None:  # then the text is a str
                todo.append((len(rows), cast(str, text), record.get(self.questions_key)))
            rows.append(row)
        docs = []
        for i, text, questions in todo:
            try:
                docs.append(self._make_doc(text, questions))
            except ValueError as err:
                rows[i]["error"] = str(err)
        todo = [item for item in todo if rows[item[0]]["error"] is None]
        try:
            done = list(self.nlp.pipe(docs, batch_size=self.batch_size, n_process=n_process))
        except Exception:  # annotate the docs one by one: only those at fault fail
            done = [self._annotate_one(text, questions) for _, text, questions in todo]
        for (i, _, _), doc in zip(todo, done):
            if isinstance(doc, str):
                rows[i]["error"] = doc
            else:
                rows[i].update(self._convert(doc))
        return rows

    def _text_error(self, text: Any) -> Optional[str]:
        error = text_error(text)
        if error is None and len(text) > self.max_chars:
            error = (f"text has {len(text)} characters, more than max_chars "
                     f"({self.max_chars}): split it or raise max_chars")
        return error

    def _make_doc(self, text: str, questions: Any) -> Doc:
        """An unannotated doc, with its questions when the pipeline answers
        them. Raises ValueError for invalid questions."""
        doc = self.nlp.make_doc(text)
        if self._asks:
            doc._.set(QUESTIONS, normalize_questions(questions))
            validate_questions(doc)
        return doc

    def _annotate_one(self, text: str, questions: Any) -> Any:
        """The annotated doc of ``text``, or the error's message."""
        try:
            return self.nlp(self._make_doc(text, questions))
        except Exception as err:
            return f"{type(err).__name__}: {err}"

    def _convert(self, doc: Doc) -> Row:
        row = doc_to_row(doc, [c for c in self.columns if c not in ("id", "doc")],
                         spans_exclude=self._spans_exclude)
        if "doc" in self.columns:
            if doc.has_extension("trf_data"):
                doc._.trf_data = None
            row["doc"] = DocBin(docs=[doc], store_user_data=True).to_bytes()
        return row


def _missing(value: Any) -> bool:
    """None, or a float NaN (pandas' missing value)."""
    return value is None or (isinstance(value, float) and value != value)


def has_lone_surrogates(text: str) -> bool:
    """Whether ``text`` can't be encoded as UTF-8 (a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _dict_records(batch: Mapping[str, Any]) -> List[Row]:
    """Rows of a dict of columns (lists or numpy arrays)."""
    columns = {key: list(values) for key, values in batch.items()}
    n_rows = len(next(iter(columns.values()), []))
    return [{key: values[i] for key, values in columns.items()} for i in range(n_rows)]


def map_in_pandas(pipeline: str, **options: Any) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """A function for Spark's ``mapInPandas``: each task loads the pipeline
    once (in the executor) and maps its pandas DataFrames to output columns.
    ``options`` are ``Annotator``'s (e.g. ``threads=spark.task.cpus``)."""

    def annotate(batches: Iterator[Any]) -> Iterator[Any]:
        annotator = Annotator(pipeline, **options)
        for batch in batches:
            yield annotator(batch)

    return annotate
