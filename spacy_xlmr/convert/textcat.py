"""Read text classification data into spaCy ``Doc`` objects with ``doc.cats``.

Formats (``format=``):

* ``"sib200"``: SIB-200 TSV, header ``index_id \\t category \\t text``, written
  by ``pandas.to_csv(sep="\\t")``, so a text containing ``"`` is CSV-quoted
  (wrapped in ``"`` with inner quotes doubled). It is read with the ``csv``
  module's default quoting, never ``QUOTE_NONE``.
* ``"nusax"``: NusaX-Senti CSV, header ``id,text,label``.
* ``"csv"`` / ``"tsv"``: any comma / tab separated file with a header line and
  one label per row; the columns are ``text_column`` (default ``"text"``) and
  ``label_column`` (default ``"label"``).
* ``"jsonl"``: one JSON object per line, with the text under ``"text"`` (or
  ``text_column``) and exactly one of ``"cats": {"label": 1.0, ...}``,
  ``"label": "x"`` or ``"labels": ["x", "y"]`` (multi-label).

Every label of the label set is a key of each doc's ``cats``: 1.0 for the
gold label(s), 0.0 otherwise (JSONL ``cats`` values are kept as given).
"""
import csv
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import spacy
from spacy.language import Language
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc
from spacy.vocab import Vocab

from ..errors import Errors
from .output import write_docbin
from .stats import ConversionStats
from .text_files import open_text

TEXTCAT_FORMATS = ("sib200", "nusax", "jsonl", "csv", "tsv")
SIB200_HEADER = ["index_id", "category", "text"]
NUSAX_HEADER = ["id", "text", "label"]

# (delimiter, default text column, default label column) of the table formats.
_TABLES = {
    "sib200": ("\t", "text", "category"),
    "tsv": ("\t", "text", "label"),
    "nusax": (",", "text", "label"),
    "csv": (",", "text", "label"),
}
_JSON_LABEL_KEYS = ("cats", "label", "labels")
# A cats value at or above this counts as a gold label in the stats.
GOLD_THRESHOLD = 0.5
_SOFT_WARNING = "cats value other than 0.0/1.0 kept (spaCy's textcat needs 0.0 or 1.0)"


@dataclass
class _Example:
    """One row or line: its line number and either a reason to skip it or its
    text and gold ``cats`` (labels it doesn't mention are 0.0)."""

    line: int
    text: str = ""
    cats: Optional[Dict[str, float]] = None
    skip: Optional[str] = None


def detect_textcat_format(path: Union[str, Path]) -> str:
    """Guess the format of a text classification file from its suffix and
    first line: ``.jsonl``/``.ndjson`` or a first line starting with ``{`` is
    ``"jsonl"``; ``.tsv`` or a tab in the first line is ``"sib200"`` if the
    header is SIB-200's, else ``"tsv"``; anything else is ``"nusax"`` if the
    header is NusaX's, else ``"csv"``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    with open_text(path, newline="") as file_:
        first = file_.readline().rstrip("\r\n")
    if suffix not in (".csv", ".tsv"):
        if first.lstrip().startswith("{"):
            return "jsonl"
        if first.lstrip().startswith("["):
            raise ValueError(Errors.TEXTCAT_JSON_ARRAY.format(path=path))
    if suffix == ".tsv" or (suffix != ".csv" and "\t" in first):
        header = next(csv.reader([first], delimiter="\t"), [])
        return "sib200" if header == SIB200_HEADER else "tsv"
    header = next(csv.reader([first]), [])
    return "nusax" if header == NUSAX_HEADER else "csv"


def read_labels(path: Union[str, Path]) -> List[str]:
    """Read a label set, one label a line (like SIB-200's ``labels.txt``),
    in file order; blank lines are ignored, duplicates raise ValueError."""
    path = Path(path)
    labels: List[str] = []
    with open_text(path) as file_:
        for line_no, line in enumerate(file_, 1):
            label = line.rstrip("\r\n")
            if not label.strip():
                continue
            if label in labels:
                raise ValueError(
                    Errors.TEXTCAT_LABELS_FILE_DUPLICATE.format(
                        path=path, line_no=line_no, label=label
                    )
                )
            labels.append(label)
    return labels


def _read_table(
    path: Path, delimiter: str, text_column: str, label_column: str
) -> Iterator[_Example]:
    """Yield the rows of a CSV/TSV file with a header line, one label a row."""
    with open_text(path, newline="") as file_:
        reader = csv.reader(file_, delimiter=delimiter, strict=True)
        line_no = 1
        try:
            header = next(reader, None)
            if header is None:
                raise ValueError(Errors.TEXTCAT_EMPTY_TABLE.format(path=path))
            missing = [c for c in (text_column, label_column) if c not in header]
            if missing:
                raise ValueError(
                    Errors.TEXTCAT_MISSING_COLUMNS.format(
                        path=path, missing=", ".join(map(repr, missing)), header=header
                    )
                )
            text_i, label_i = header.index(text_column), header.index(label_column)
            while True:
                line_no = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    return
                where = f"{path}:{line_no}"
                if not row:
                    yield _Example(line_no, skip="blank line")
                    continue
                if len(row) != len(header):
                    raise ValueError(
                        Errors.TEXTCAT_COLUMN_COUNT.format(
                            where=where,
                            n_columns=len(header),
                            delimiter_name=_delimiter_name(delimiter),
                            n_found=len(row),
                        )
                    )
                text, label = row[text_i], row[label_i]
                if not text.strip():
                    yield _Example(line_no, skip="empty text")
                    continue
                if not label.strip():
                    raise ValueError(
                        Errors.TEXTCAT_EMPTY_LABEL.format(where=where, label_column=label_column)
                    )
                yield _Example(line_no, text, {label: 1.0})
        except csv.Error as err:
            raise ValueError(
                Errors.TEXTCAT_MALFORMED_CSV.format(path=path, line_no=line_no, error=err)
            ) from err


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma"}.get(delimiter, repr(delimiter))


def _check_label(label: Any, where: str, key: str) -> str:
    if not isinstance(label, str) or not label.strip():
        raise ValueError(Errors.TEXTCAT_BAD_LABEL.format(where=where, key=key, label=label))
    return label


def _json_cats(obj: Dict[str, Any], key: str, where: str) -> Dict[str, float]:
    """The gold cats of a JSONL object's ``cats``, ``label`` or ``labels``."""
    value = obj[key]
    if key == "label":
        return {_check_label(value, where, key): 1.0}
    if key == "labels":
        if not isinstance(value, list):
            raise ValueError(
                Errors.TEXTCAT_LABELS_NOT_A_LIST.format(where=where, type_name=type(value).__name__)
            )
        labels = [_check_label(label, where, key) for label in value]
        if len(set(labels)) != len(labels):
            raise ValueError(Errors.TEXTCAT_DUPLICATE_LABEL.format(where=where, labels=labels))
        return dict.fromkeys(labels, 1.0)
    if not isinstance(value, dict):
        raise ValueError(
            Errors.TEXTCAT_CATS_NOT_AN_OBJECT.format(where=where, type_name=type(value).__name__)
        )
    cats: Dict[str, float] = {}
    for label, score in value.items():
        _check_label(label, where, key)
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise ValueError(
                Errors.TEXTCAT_CATS_NOT_A_NUMBER.format(where=where, label=label, score=score)
            )
        if not (math.isfinite(score) and 0.0 <= score <= 1.0):
            raise ValueError(
                Errors.TEXTCAT_CATS_OUT_OF_RANGE.format(where=where, label=label, score=score)
            )
        cats[label] = float(score)
    return cats


def _read_jsonl(path: Path, text_key: str) -> Iterator[_Example]:
    """Yield the lines of a JSONL file."""
    with open_text(path) as file_:
        for line_no, line in enumerate(file_, 1):
            where = f"{path}:{line_no}"
            if not line.strip():
                yield _Example(line_no, skip="blank line")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(
                    Errors.TEXTCAT_INVALID_JSON_LINE.format(
                        where=where, message=err.msg, column=err.colno
                    )
                ) from err
            if not isinstance(obj, dict):
                raise ValueError(
                    Errors.TEXTCAT_LINE_NOT_AN_OBJECT.format(
                        where=where, type_name=type(obj).__name__
                    )
                )
            if text_key not in obj:
                raise ValueError(
                    Errors.TEXTCAT_MISSING_TEXT_KEY.format(where=where, text_key=text_key)
                )
            text = obj[text_key]
            if not isinstance(text, str):
                raise ValueError(
                    Errors.TEXTCAT_TEXT_NOT_A_STRING.format(
                        where=where, text_key=text_key, type_name=type(text).__name__
                    )
                )
            keys = [key for key in _JSON_LABEL_KEYS if key in obj]
            if len(keys) != 1:
                raise ValueError(
                    Errors.TEXTCAT_LABEL_KEYS.format(where=where, keys=keys if keys else "none")
                )
            cats = _json_cats(obj, keys[0], where)
            if not text.strip():
                yield _Example(line_no, skip="empty text")
                continue
            yield _Example(line_no, text, cats)


def _label_set(labels: Optional[Iterable[str]]) -> Optional[List[str]]:
    if labels is None:
        return None
    if isinstance(labels, str):
        raise TypeError(Errors.TEXTCAT_LABELS_IS_A_STRING)
    label_list = list(labels)
    if not label_list:
        raise ValueError(Errors.TEXTCAT_LABELS_EMPTY)
    for label in label_list:
        if not isinstance(label, str) or not label.strip():
            raise ValueError(Errors.TEXTCAT_LABELS_NOT_STRINGS.format(label=label))
    duplicates = sorted({label for label in label_list if label_list.count(label) > 1})
    if duplicates:
        raise ValueError(Errors.TEXTCAT_LABELS_DUPLICATES.format(duplicates=duplicates))
    return label_list


def _doc_maker(nlp_or_vocab: Union[Language, Vocab]) -> Callable[[str], Doc]:
    if isinstance(nlp_or_vocab, Language):
        return nlp_or_vocab.make_doc
    if isinstance(nlp_or_vocab, Vocab):
        # A tokenizer without rules splits on whitespace only.
        return Tokenizer(nlp_or_vocab)
    raise TypeError(
        Errors.TEXTCAT_NOT_NLP_OR_VOCAB.format(type_name=type(nlp_or_vocab).__name__)
    )


def _docs(
    path: Path,
    examples: Iterable[_Example],
    labels: Sequence[str],
    make_doc: Callable[[str], Doc],
    stats: ConversionStats,
) -> Iterator[Doc]:
    label_set = set(labels)
    for example in examples:
        if example.skip is not None:
            stats.skipped[example.skip] += 1
            continue
        assert example.cats is not None
        unknown = [label for label in example.cats if label not in label_set]
        if unknown:
            raise ValueError(
                Errors.TEXTCAT_UNKNOWN_LABELS.format(
                    path=path,
                    line_no=example.line,
                    unknown=", ".join(map(repr, unknown)),
                    labels=list(labels),
                )
            )
        doc = make_doc(example.text)
        doc.cats = {label: example.cats.get(label, 0.0) for label in labels}
        gold = [label for label, score in doc.cats.items() if score >= GOLD_THRESHOLD]
        soft = sum(score not in (0.0, 1.0) for score in doc.cats.values())
        if soft:
            stats.warnings[_SOFT_WARNING] += soft
        stats.docs += 1
        stats.tokens += len(doc)
        stats.labels.update(gold)
        stats.labels_per_doc[len(gold)] += 1
        yield doc


def read_textcat(
    path: Union[str, Path],
    nlp_or_vocab: Union[Language, Vocab],
    *,
    format: Optional[str] = None,
    labels: Optional[Iterable[str]] = None,
    text_column: Optional[str] = None,
    label_column: Optional[str] = None,
    limit: Optional[int] = None,
    stats: Optional[ConversionStats] = None,
) -> Iterator[Doc]:
    """Yield one Doc with ``cats`` per example of a text classification file.

    ``format`` is one of ``TEXTCAT_FORMATS``, or None to detect it with
    ``detect_textcat_format``. ``labels`` is the label set and the order of
    the keys of every doc's ``cats``; by default it is every label of the
    file's kept examples, sorted (which reads the whole file before the first
    doc, also with ``limit``). A label not in ``labels`` raises ValueError.
    ``text_column`` / ``label_column`` override the column names of the
    CSV/TSV formats; ``text_column`` also names the text key of JSONL.

    Texts are kept exactly. With a Language they are tokenized by
    ``nlp.make_doc``, with a Vocab split on whitespace only. Examples with an
    empty or whitespace-only text, and blank lines, are skipped and counted in
    ``stats.skipped``. ``limit`` caps the number of docs. Counts (docs,
    tokens, docs per gold label, docs per number of gold labels; a JSONL
    ``cats`` value counts as gold from 0.5) are added to ``stats`` if given.
    Malformed input raises ValueError naming the file and line.
    """
    path = Path(path)
    fmt = detect_textcat_format(path) if format is None else format
    if fmt not in TEXTCAT_FORMATS:
        raise ValueError(
            Errors.TEXTCAT_UNKNOWN_FORMAT.format(fmt=fmt, formats=TEXTCAT_FORMATS)
        )
    if limit is not None and limit < 0:
        raise ValueError(Errors.LIMIT_NEGATIVE.format(limit=limit))
    label_list = _label_set(labels)
    make_doc = _doc_maker(nlp_or_vocab)
    if fmt == "jsonl":
        if label_column is not None:
            raise ValueError(Errors.TEXTCAT_LABEL_COLUMN_FOR_JSONL)
        examples: Iterable[_Example] = _read_jsonl(path, text_column or "text")
    else:
        delimiter, default_text, default_label = _TABLES[fmt]
        examples = _read_table(
            path, delimiter, text_column or default_text, label_column or default_label
        )
    if label_list is None:
        examples = list(examples)
        label_list = sorted(
            {label for ex in examples if ex.cats is not None for label in ex.cats}
        )
    stats = ConversionStats() if stats is None else stats
    return itertools.islice(_docs(path, examples, label_list, make_doc, stats), limit)


def convert_textcat(
    input_path: Union[str, Path],
    output_path: Union[str, Path],
    *,
    lang: str = "xx",
    format: Optional[str] = None,
    labels: Optional[Iterable[str]] = None,
    text_column: Optional[str] = None,
    label_column: Optional[str] = None,
    limit: Optional[int] = None,
) -> ConversionStats:
    """Convert a text classification file to a ``.spacy`` DocBin file,
    tokenizing with ``spacy.blank(lang)``; see ``read_textcat``."""
    stats = ConversionStats()
    docs = read_textcat(
        input_path,
        spacy.blank(lang),
        format=format,
        labels=labels,
        text_column=text_column,
        label_column=label_column,
        limit=limit,
        stats=stats,
    )
    write_docbin(docs, output_path)
    return stats
