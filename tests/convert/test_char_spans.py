import json
from collections import Counter
from pathlib import Path
from typing import Any, List

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_xlmr.convert import (
    STOCKMARK_TO_UNER,
    ConversionStats,
    convert_char_span_json,
    read_char_span_json,
)

SAMPLE = Path(__file__).parents[2] / "data" / "ner" / "stockmark-ja" / "sample.json"
SAMPLE_TYPES = {
    "法人名": 59, "人名": 50, "製品名": 32, "イベント名": 30,
    "地名": 22, "施設名": 21, "政治的組織名": 15, "その他の組織名": 4,
}
EXPANDED = "entity span expanded to token boundaries"
OVERLAP = "entity overlaps a longer or earlier one"


@pytest.fixture(scope="module")
def items():
    return json.loads(SAMPLE.read_text(encoding="utf8"))


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf8")
    return path


def item(text: str, *entities) -> dict:
    return {
        "curid": "1",
        "text": text,
        "entities": [
            {"name": text[start:end], "span": [start, end], "type": label}
            for start, end, label in entities
        ],
    }


def offsets(doc) -> List[tuple]:
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


def test_sample_per_character_tokens_keep_exact_offsets(items):
    # The "zh" tokenizer splits per character, so every entity aligns.
    stats = ConversionStats()
    docs = list(read_char_span_json(SAMPLE, spacy.blank("zh"), stats=stats))
    assert len(docs) == len(items) == 100
    for doc, source in zip(docs, items):
        assert doc.text == source["text"]
        assert offsets(doc) == sorted(
            (e["span"][0], e["span"][1], e["type"]) for e in source["entities"]
        )
    assert stats.entities == Counter(SAMPLE_TYPES)
    assert (stats.docs, stats.sentences, stats.tokens) == (100, 100, 5771)
    assert not stats.warnings and not stats.skipped


def test_sample_blank_xx_expands_and_drops(items):
    # blank "xx" does not split Japanese words: entities grow to whole chunks.
    stats = ConversionStats()
    docs = list(read_char_span_json(SAMPLE, spacy.blank("xx"), stats=stats))
    assert [doc.text for doc in docs] == [source["text"] for source in items]
    assert sum(stats.entities.values()) == 91
    assert stats.warnings == Counter({EXPANDED: 91})
    assert stats.skipped == Counter({OVERLAP: 142})
    assert sum(len(doc.ents) for doc in docs) + 142 == sum(SAMPLE_TYPES.values())
    for doc, source in zip(docs, items):
        for ent in doc.ents:
            # every kept entity covers a source entity with its label
            assert any(
                ent.start_char <= e["span"][0] and e["span"][1] <= ent.end_char
                and e["type"] == ent.label_
                for e in source["entities"]
            )


def test_sample_label_map(items):
    stats = ConversionStats()
    docs = list(read_char_span_json(
        SAMPLE, spacy.blank("zh"), label_map=STOCKMARK_TO_UNER, stats=stats
    ))
    assert stats.entities == Counter({"ORG": 78, "PER": 50, "LOC": 22})
    assert stats.skipped == Counter({
        "type not in label_map: 製品名": 32,
        "type not in label_map: イベント名": 30,
        "type not in label_map: 施設名": 21,
    })
    for doc, source in zip(docs, items):
        assert offsets(doc) == sorted(
            (e["span"][0], e["span"][1], STOCKMARK_TO_UNER[e["type"]])
            for e in source["entities"] if e["type"] in STOCKMARK_TO_UNER
        )


def test_aligned_offsets_kept_and_misaligned_expanded(tmp_path):
    text = "Alice met Bob in Paris."
    path = write(tmp_path, [item(text, (0, 5, "PER"), (10, 12, "PER"), (17, 22, "LOC"))])
    stats = ConversionStats()
    (doc,) = read_char_span_json(path, spacy.blank("xx"), stats=stats)
    assert offsets(doc) == [(0, 5, "PER"), (10, 13, "PER"), (17, 22, "LOC")]
    assert [e.text for e in doc.ents] == ["Alice", "Bob", "Paris"]
    assert stats.warnings == Counter({EXPANDED: 1})
    assert stats.entities == Counter({"PER": 2, "LOC": 1})


@pytest.mark.parametrize("reverse", [False, True])
def test_overlaps_keep_longest_then_first(tmp_path, reverse):
    text = "New York City is big."
    entities = [(0, 8, "LOC"), (4, 13, "LOC"), (9, 13, "ORG"), (18, 19, "MISC")]
    source = item(text, *entities)
    if reverse:
        source["entities"].reverse()
    stats = ConversionStats()
    (doc,) = read_char_span_json(write(tmp_path, [source]), spacy.blank("xx"), stats=stats)
    # "New York" and "York City" tie on length: the one starting first in the
    # text wins, whatever the input order. "big" (expanded from "i") stays.
    assert offsets(doc) == [(0, 8, "LOC"), (9, 13, "ORG"), (17, 20, "MISC")]
    assert stats.skipped == Counter({OVERLAP: 1})
    assert stats.warnings == Counter({EXPANDED: 1})


def test_whitespace_entity_is_skipped(tmp_path):
    # spaCy's "expand" alignment gives an empty span for whitespace alone.
    path = write(tmp_path, [item("Ana em Lisboa", (3, 4, "X"), (7, 13, "LOC"))])
    stats = ConversionStats()
    (doc,) = read_char_span_json(path, spacy.blank("xx"), stats=stats)
    assert offsets(doc) == [(7, 13, "LOC")]
    assert stats.skipped == Counter({"entity covers no token": 1})
    assert stats.entities == Counter({"LOC": 1})


def test_custom_label_map_and_limit(tmp_path):
    data = [
        item("Ana em Lisboa", (0, 3, "P"), (7, 13, "L")),
        item("Google", (0, 6, "O")),
        item("Rio", (0, 3, "L")),
    ]
    stats = ConversionStats()
    docs = list(read_char_span_json(
        write(tmp_path, data), spacy.blank("xx"), label_map={"P": "PER", "O": "ORG"},
        limit=2, stats=stats,
    ))
    assert [offsets(doc) for doc in docs] == [[(0, 3, "PER")], [(0, 6, "ORG")]]
    assert stats.skipped == Counter({"type not in label_map: L": 1})
    assert stats.docs == 2


def test_docbin_round_trip(tmp_path):
    output = tmp_path / "out" / "ja.spacy"
    stats = convert_char_span_json(
        SAMPLE, output, lang="zh", label_map=STOCKMARK_TO_UNER, limit=20
    )
    assert stats.docs == 20
    nlp = spacy.blank("zh")
    expected = list(read_char_span_json(SAMPLE, nlp, label_map=STOCKMARK_TO_UNER, limit=20))
    loaded = list(DocBin().from_disk(output).get_docs(nlp.vocab))
    assert [d.text for d in loaded] == [d.text for d in expected]
    assert [offsets(d) for d in loaded] == [offsets(d) for d in expected]
    assert sum(len(d.ents) for d in loaded) == sum(stats.entities.values()) > 0
    assert "ORG" in stats.summary()


@pytest.mark.parametrize(
    "span,label,message",
    [
        ([10, 14], "P", r"span \[10, 14\] out of range for a text of 13 characters"),
        ([3, 3], "P", r"span \[3, 3\] out of range"),
        ([-1, 2], "P", r"span \[-1, 2\] out of range"),
        ([0, 4], "P", r"text at span \[0, 4\] is 'Ana ', but 'name' is 'Ana'"),
        ([0], "P", r"'span' must be \[start, end\] integers"),
        ([0, 3.0], "P", r"'span' must be \[start, end\] integers"),
        ([0, 3], "", r"'type' must be a non-empty string"),
    ],
)
def test_bad_entities_raise(tmp_path, span, label, message):
    good = item("Rio", (0, 3, "L"))
    bad = {
        "curid": "42",
        "text": "Ana em Lisboa",
        "entities": [{"name": "Ana", "span": span, "type": label}],
    }
    path = write(tmp_path, [good, bad])
    where = r"in\.json: item 1 \(curid 42\), entity 0: "
    with pytest.raises(ValueError, match=where + message):
        list(read_char_span_json(path, spacy.blank("xx")))


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"text": "x"}', "expected a JSON list of items, got dict"),
        ("[{", "invalid JSON"),
        ('[{"text": 1, "entities": []}]', "item 0: 'text' must be a string"),
        ('[{"text": "x"}]', "item 0: 'entities' must be a list"),
        ('["x"]', "item 0: expected an object, got str"),
    ],
)
def test_bad_files_raise(tmp_path, content, message):
    path = tmp_path / "in.json"
    path.write_text(content, encoding="utf8")
    with pytest.raises(ValueError, match=r"in\.json: " + message):
        list(read_char_span_json(path, spacy.blank("xx")))


def test_byte_order_mark_is_accepted(tmp_path):
    path = write(tmp_path, [item("東京で会った。", (0, 2, "地名"))])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    docs = list(read_char_span_json(path, spacy.blank("zh")))
    assert [offsets(doc) for doc in docs] == [[(0, 2, "地名")]]
