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
            raise ValueError(
                f"{path}:1: a JSON array is not supported: write one JSON object "
                "per line (JSONL)"
            )
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
                raise ValueError(f"{path}:{line_no}: duplicate label {label!r}")
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
                raise ValueError(f"{path}:1: empty file, expected a header line")
            missing = [c for c in (text_column, label_column) if c not in header]
            if missing:
                raise ValueError(
                    f"{path}:1: missing column(s) {', '.join(map(repr, missing))}; "
                    f"the header has {header}"
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
                        f"{where}: expected {len(header)} {_delimiter_name(delimiter)}"
                        f"-separated columns, got {len(row)}"
                    )
                text, label = row[text_i], row[label_i]
                if not text.strip():
                    yield _Example(line_no, skip="empty text")
                    continue
                if not label.strip():
                    raise ValueError(f"{where}: empty label in column {label_column!r}")
                yield _Example(line_no, text, {label: 1.0})
        except csv.Error as err:
            raise ValueError(f"{path}:{line_no}: malformed CSV: {err}") from err


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma"}.get(delimiter, repr(delimiter))


def _check_label(label: Any, where: str, key: str) -> str:
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{where}: {key!r} must hold non-empty strings, got {label!r}")
    return label


def _json_cats(obj: Dict[str, Any], key: str, where: str) -> Dict[str, float]:
    """The gold cats of a JSONL object's ``cats``, ``label`` or ``labels``."""
    value = obj[key]
    if key == "label":
        return {_check_label(value, where, key): 1.0}
    if key == "labels":
        if not isinstance(value, list):
            raise ValueError(
                f"{where}: 'labels' must be a list of strings, got {type(value).__name__}"
            )
        labels = [_check_label(label, where, key) for label in value]
        if len(set(labels)) != len(labels):
            raise ValueError(f"{where}: duplicate label in 'labels': {labels}")
        return dict.fromkeys(labels, 1.0)
    if not isinstance(value, dict):
        raise ValueError(
            f"{where}: 'cats' must be an object of label: number, "
            f"got {type(value).__name__}"
        )
    cats: Dict[str, float] = {}
    for label, score in value.items():
        _check_label(label, where, key)
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise ValueError(
                f"{where}: non-numeric cats value for {label!r}: {score!r}"
            )
        if not (math.isfinite(score) and 0.0 <= score <= 1.0):
            raise ValueError(
                f"{where}: cats value for {label!r} must be between 0 and 1, got {score!r}"
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
                    f"{where}: invalid JSON: {err.msg} (column {err.colno})"
                ) from err
            if not isinstance(obj, dict):
                raise ValueError(
                    f"{where}: expected a JSON object, got {type(obj).__name__}"
                )
            if text_key not in obj:
                raise ValueError(f"{where}: missing key {text_key!r}")
            text = obj[text_key]
            if not isinstance(text, str):
                raise ValueError(
                    f"{where}: {text_key!r} must be a string, got {type(text).__name__}"
                )
            keys = [key for key in _JSON_LABEL_KEYS if key in obj]
            if len(keys) != 1:
                raise ValueError(
                    f"{where}: expected exactly one of 'cats', 'label', 'labels', "
                    f"got {keys if keys else 'none'}"
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
        raise TypeError("labels must be a list of labels, not a string")
    label_list = list(labels)
    if not label_list:
        raise ValueError("labels is empty")
    for label in label_list:
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"labels must be non-empty strings, got {label!r}")
    duplicates = sorted({label for label in label_list if label_list.count(label) > 1})
    if duplicates:
        raise ValueError(f"duplicate labels: {duplicates}")
    return label_list


def _doc_maker(nlp_or_vocab: Union[Language, Vocab]) -> Callable[[str], Doc]:
    if isinstance(nlp_or_vocab, Language):
        return nlp_or_vocab.make_doc
    if isinstance(nlp_or_vocab, Vocab):
        # A tokenizer without rules splits on whitespace only.
        return Tokenizer(nlp_or_vocab)
    raise TypeError(
        f"expected a spaCy Language or Vocab, got {type(nlp_or_vocab).__name__}"
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
                f"{path}:{example.line}: label(s) {', '.join(map(repr, unknown))} "
                f"not in the label set {list(labels)}"
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
        raise ValueError(f"unknown format {fmt!r}; expected one of {TEXTCAT_FORMATS}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be at least 0, got {limit}")
    label_list = _label_set(labels)
    make_doc = _doc_maker(nlp_or_vocab)
    if fmt == "jsonl":
        if label_column is not None:
            raise ValueError(
                "label_column does not apply to JSONL, whose labels are under "
                "'cats', 'label' or 'labels'"
            )
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
