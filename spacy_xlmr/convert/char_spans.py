"""Read NER data with character-offset entities (the Stockmark Japanese
Wikipedia NER JSON) into spaCy ``Doc`` objects.

The input is a JSON list of ``{"curid", "text", "entities": [{"name",
"span": [start, end], "type"}]}`` items; ``span`` is a character offset into
``text`` with an exclusive end.
"""
import itertools
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple, Union

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from ..errors import Errors
from .output import write_docbin
from .stats import ConversionStats
from .text_files import open_text

# Stockmark's Japanese entity types mapped to the UNER labels. The other
# types (施設名 facility, 製品名 product, イベント名 event) have no UNER label.
STOCKMARK_TO_UNER: Dict[str, str] = {
    "人名": "PER",
    "法人名": "ORG",
    "政治的組織名": "ORG",
    "その他の組織名": "ORG",
    "地名": "LOC",
}

_Entity = Tuple[int, int, str]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_item(item: Any, where: str) -> Tuple[str, List[_Entity]]:
    """Return an item's text and ``(start, end, type)`` entities, raising
    ValueError naming ``where`` if anything is malformed."""
    if not isinstance(item, dict):
        raise ValueError(
            Errors.JSON_NOT_AN_OBJECT.format(where=where, type_name=type(item).__name__)
        )
    text = item.get("text")
    if not isinstance(text, str):
        raise ValueError(Errors.CHAR_SPANS_TEXT_NOT_A_STRING.format(where=where, text=text))
    raw_entities = item.get("entities")
    if not isinstance(raw_entities, list):
        raise ValueError(
            Errors.CHAR_SPANS_ENTITIES_NOT_A_LIST.format(where=where, entities=raw_entities)
        )
    entities: List[_Entity] = []
    for j, entity in enumerate(raw_entities):
        ent_where = f"{where}, entity {j}"
        if not isinstance(entity, dict):
            raise ValueError(
                Errors.CHAR_SPANS_ENTITY_NOT_AN_OBJECT.format(where=ent_where, entity=entity)
            )
        span, name, label = entity.get("span"), entity.get("name"), entity.get("type")
        if not (isinstance(span, list) and len(span) == 2 and all(map(_is_int, span))):
            raise ValueError(Errors.CHAR_SPANS_BAD_SPAN.format(where=ent_where, span=span))
        if not (isinstance(label, str) and label):
            raise ValueError(Errors.CHAR_SPANS_BAD_TYPE.format(where=ent_where, label=label))
        start, end = span
        if not 0 <= start < end <= len(text):
            raise ValueError(
                Errors.CHAR_SPANS_SPAN_OUT_OF_RANGE.format(
                    where=ent_where, span=span, n_chars=len(text)
                )
            )
        if text[start:end] != name:
            raise ValueError(
                Errors.CHAR_SPANS_NAME_MISMATCH.format(
                    where=ent_where, span=span, found=text[start:end], name=name
                )
            )
        entities.append((start, end, label))
    return text, entities


def _make_doc(
    nlp: Language,
    text: str,
    entities: List[_Entity],
    label_map: Optional[Dict[str, str]],
    stats: ConversionStats,
) -> Doc:
    """Tokenize ``text`` and set its entities, expanded to token boundaries."""
    doc = nlp.make_doc(text)
    spans: List[Span] = []
    expanded: Set[int] = set()
    for start, end, label in entities:
        if label_map is not None:
            if label not in label_map:
                stats.skipped[f"type not in label_map: {label}"] += 1
                continue
            label = label_map[label]
        span = doc.char_span(start, end, label=label, alignment_mode="expand")
        if span is None or len(span) == 0:
            stats.skipped["entity covers no token"] += 1
            continue
        if (span.start_char, span.end_char) != (start, end):
            expanded.add(id(span))
        spans.append(span)
    kept = filter_spans(spans)
    n_overlapping = len(spans) - len(kept)
    if n_overlapping:
        stats.skipped["entity overlaps a longer or earlier one"] += n_overlapping
    n_expanded = sum(id(span) in expanded for span in kept)
    if n_expanded:
        stats.warnings["entity span expanded to token boundaries"] += n_expanded
    doc.ents = kept
    stats.docs += 1
    stats.sentences += 1
    stats.tokens += len(doc)
    stats.entities.update(span.label_ for span in kept)
    return doc


def read_char_span_json(
    path: Union[str, Path],
    nlp: Language,
    *,
    label_map: Optional[Dict[str, str]] = None,
    limit: Optional[int] = None,
    stats: Optional[ConversionStats] = None,
) -> Iterator[Doc]:
    """Yield one Doc per item of a character-span NER JSON file.

    Texts are tokenized with ``nlp.make_doc``. Entities are expanded to token
    boundaries (counted in ``stats.warnings``); of overlapping entities the
    longest, then the one starting first, is kept (``spacy.util.filter_spans``;
    the others are counted in ``stats.skipped``).
    With ``label_map``, types are renamed and types missing from it dropped.
    ``limit`` caps the number of items read. Raises ValueError on malformed
    items, out-of-range spans and spans whose text differs from ``name``.

    ``spacy.blank("xx")`` does not split Japanese into words, so most
    Japanese entities get expanded; a per-character tokenizer such as
    ``spacy.blank("zh")`` keeps them exact.
    """
    path = Path(path)
    stats = ConversionStats() if stats is None else stats
    with open_text(path) as file_:
        try:
            items = json.load(file_)
        except json.JSONDecodeError as err:
            raise ValueError(Errors.INVALID_JSON.format(path=path, error=err)) from err
    if not isinstance(items, list):
        raise ValueError(
            Errors.CHAR_SPANS_NOT_A_LIST.format(path=path, type_name=type(items).__name__)
        )
    for i, item in enumerate(itertools.islice(items, limit)):
        curid = item.get("curid") if isinstance(item, dict) else None
        where = f"{path}: item {i}" + ("" if curid is None else f" (curid {curid})")
        text, entities = _check_item(item, where)
        yield _make_doc(nlp, text, entities, label_map, stats)


def convert_char_span_json(
    input_path: Union[str, Path],
    output_path: Union[str, Path],
    *,
    lang: str = "xx",
    label_map: Optional[Dict[str, str]] = None,
    limit: Optional[int] = None,
) -> ConversionStats:
    """Convert a character-span NER JSON file to a ``.spacy`` DocBin file,
    tokenizing with ``spacy.blank(lang)``."""
    stats = ConversionStats()
    docs = read_char_span_json(
        input_path, spacy.blank(lang), label_map=label_map, limit=limit, stats=stats
    )
    write_docbin(docs, output_path)
    return stats
