import json
from collections import Counter
from pathlib import Path
from typing import Any, List

import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_xlmr.cli import app
from spacy_xlmr.convert import ConversionStats, convert_squad, read_squad
from spacy_xlmr.convert.squad import REPAIR_WINDOW
from spacy_xlmr.qa.data import get_questions, validate_questions

DATA = Path(__file__).parents[2] / "data" / "qa"
XQUAD_LANGS = ("en", "es", "zh", "ar", "th", "hi")
EMPTY = "empty answer text"
INSIDE = "answer boundary inside a spaCy token"
SAMPLES = {
    # file: (docs, questions, unanswerable, answers kept, tokens with blank "xx",
    #        skipped, warnings)
    "xquad/xquad.en.json": (3, 39, 0, 39, 995, {}, {INSIDE: 1}),
    "xquad/xquad.es.json": (3, 39, 0, 39, 1184, {}, {INSIDE: 2}),
    "xquad/xquad.zh.json": (3, 39, 0, 39, 105, {}, {INSIDE: 20}),
    "xquad/xquad.ar.json": (3, 39, 0, 39, 901, {}, {}),
    "xquad/xquad.th.json": (3, 39, 0, 39, 306, {}, {INSIDE: 3}),
    "xquad/xquad.hi.json": (3, 39, 0, 39, 1103, {}, {INSIDE: 1}),
    "squad-v2-en/sample.json": (6, 36, 20, 53, 857, {}, {}),
    "squad-es-v2/sample.json": (9, 41, 23, 56, 1244, {EMPTY: 3}, {}),
    "squad-es-v2/train.json": (57, 281, 133, 356, 7832, {EMPTY: 92}, {INSIDE: 25}),
    "squad-es-v2/dev.json": (24, 101, 48, 134, 3662, {EMPTY: 23}, {INSIDE: 4}),
}


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf8"))


def source_paragraphs(path: Path) -> List[dict]:
    return [p for article in load(path)["data"] for p in article["paragraphs"]]


def write(tmp_path: Path, paragraphs: List[dict], version: str = "v2.0") -> Path:
    path = tmp_path / "in.json"
    squad = {"version": version, "data": [{"title": "T", "paragraphs": paragraphs}]}
    path.write_text(json.dumps(squad, ensure_ascii=False), encoding="utf8")
    return path


def qa(qid: str, *answers: tuple, impossible: bool = False, text: str = "Q?") -> dict:
    """A SQuAD 2.0 question with (text, answer_start) answers."""
    return {
        "id": qid,
        "question": text,
        "answers": [{"text": t, "answer_start": s} for t, s in answers],
        "is_impossible": impossible,
    }


def answers(doc) -> List[tuple]:
    return [
        (q["id"], a["text"], a["answer_start"]) for q in doc._.qa_questions for a in q["answers"]
    ]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples(name):
    n_docs, n_questions, n_impossible, n_answers, n_tokens, skipped, warnings = SAMPLES[name]
    source = source_paragraphs(DATA / name)
    stats = ConversionStats()
    docs = list(read_squad(DATA / name, "xx", stats=stats))
    assert len(docs) == len(source) == n_docs
    for doc, paragraph in zip(docs, source):
        assert doc.text == paragraph["context"]
        validate_questions(doc)
        # no question is dropped; each keeps its source answers but the empty ones
        assert [q["id"] for q in doc._.qa_questions] == [q["id"] for q in paragraph["qas"]]
        for kept, original in zip(doc._.qa_questions, paragraph["qas"]):
            assert kept["question"] == original["question"]
            assert kept["is_impossible"] == original.get("is_impossible", False)
            assert kept["answers"] == [
                {"text": a["text"], "answer_start": a["answer_start"]}
                for a in original["answers"] if a["text"]
            ]
            for answer in kept["answers"]:
                start = answer["answer_start"]
                assert doc.text[start:start + len(answer["text"])] == answer["text"]
            assert set(kept) == {"id", "question", "answers", "is_impossible"}
    assert sum(len(answers(doc)) for doc in docs) == n_answers
    assert (stats.docs, stats.questions, stats.impossible) == (n_docs, n_questions, n_impossible)
    assert stats.tokens == n_tokens
    assert stats.skipped == Counter(skipped)
    assert stats.warnings == Counter(warnings)


def test_xquad_samples_are_parallel_and_have_a_long_paragraph():
    ids = {
        lang: [
            [q["id"] for q in p["qas"]]
            for p in source_paragraphs(DATA / f"xquad/xquad.{lang}.json")
        ]
        for lang in XQUAD_LANGS
    }
    assert all(ids[lang] == ids["en"] for lang in XQUAD_LANGS)
    docs = list(read_squad(DATA / "xquad/xquad.en.json", "xx"))
    assert [len(doc.text.split()) for doc in docs] == [195, 509, 156]


def test_unanswerable_questions_keep_no_answers():
    docs = list(read_squad(DATA / "squad-v2-en/sample.json", "xx"))
    questions = [q for doc in docs for q in doc._.qa_questions]
    impossible = [q for q in questions if q["is_impossible"]]
    assert len(impossible) == 20
    assert all(q["answers"] == [] for q in impossible)
    assert all(q["answers"] for q in questions if not q["is_impossible"])
    # the source has plausible_answers for these, which are not kept
    source = {
        q["id"]: q for p in source_paragraphs(DATA / "squad-v2-en/sample.json") for q in p["qas"]
    }
    assert all(source[q["id"]]["plausible_answers"] for q in impossible)


def test_squad_es_empty_answers_are_dropped():
    (doc,) = read_squad(DATA / "squad-es-v2/sample.json", "xx", limit=1)
    (question,) = [q for q in doc._.qa_questions if q["id"] == "56ddde6b9a695914005b962c"]
    # the source has two more answers {"text": "", "answer_start": -1}
    assert question["answers"] == [
        {"text": "siglo X", "answer_start": 667},
        {"text": "la primera mitad del siglo X", "answer_start": 646},
    ]


@pytest.mark.parametrize(
    "lang,name,inside",
    [
        ("xx", "xquad/xquad.zh.json", 20),
        ("zh", "xquad/xquad.zh.json", 0),  # one token per character
        ("xx", "xquad/xquad.th.json", 3),
        ("xx", "xquad/xquad.ar.json", 0),
        ("es", "squad-es-v2/dev.json", 4),
    ],
)
def test_answers_inside_tokens_by_language(lang, name, inside):
    stats = ConversionStats()
    docs = list(read_squad(DATA / name, spacy.blank(lang), stats=stats))
    assert stats.warnings[INSIDE] == inside
    misaligned = [
        (doc, start, start + len(text))
        for doc in docs
        for _, text, start in answers(doc)
        if doc.char_span(start, start + len(text)) is None
    ]
    assert len(misaligned) == inside
    for doc, start, end in misaligned:
        # an answer is never moved to token boundaries
        expanded = doc.char_span(start, end, alignment_mode="expand")
        assert (expanded.start_char, expanded.end_char) != (start, end)


def test_answers_checked_repaired_and_dropped(tmp_path):
    context = "The Broncos beat the Panthers in 2016, the Panthers lost."
    assert context.index("Broncos") == 4 and context.index("2016") == 33
    paragraphs = [
        {
            "context": context,
            "qas": [
                qa("exact", ("Broncos", 4)),
                qa("off-by-one", ("Broncos", 5), ("2016", 31)),
                # "the Panthers" occurs at 17 and 39, both near 30
                qa("ambiguous", ("the Panthers", 30), ("Panthers", 21)),
                qa("too-far", ("lost", 4)),
                qa("inside", ("Bronco", 4)),
                qa("spaces", (" 2016", 32), ("", -1), ("  ", 0)),
                qa("exact", ("Broncos", 4)),
                qa("blank", ("Broncos", 4), text=" "),
                qa("impossible", ("Broncos", 4), impossible=True),
            ],
        },
        {"context": "No questions.", "qas": []},
        {"context": " ", "qas": [qa("empty-context", ("x", 0))]},
        {"context": "Lisbon.", "qas": [qa("bad", ("Porto", 0))]},
    ]
    stats = ConversionStats()
    (doc,) = read_squad(write(tmp_path, paragraphs), "xx", stats=stats)
    assert answers(doc) == [
        ("exact", "Broncos", 4),
        ("off-by-one", "Broncos", 4),
        ("off-by-one", "2016", 33),
        ("ambiguous", "Panthers", 21),
        ("inside", "Bronco", 4),
        ("spaces", "2016", 33),
    ]
    assert [q["id"] for q in doc._.qa_questions] == [
        "exact", "off-by-one", "ambiguous", "inside", "spaces", "impossible"
    ]
    assert doc._.qa_questions[-1]["is_impossible"] is True
    validate_questions(doc)
    assert stats.skipped == Counter({
        f"answer text found more than once within {REPAIR_WINDOW} characters of answer_start": 1,
        f"answer text not within {REPAIR_WINDOW} characters of answer_start": 2,
        "answerable question without a valid answer": 2,
        EMPTY: 2,
        "duplicate question id": 1,
        "empty question": 1,
        "paragraph without questions": 2,
        "paragraph with an empty context": 1,
    })
    assert stats.warnings == Counter({
        "answer_start off by a few characters, repaired": 2,
        "whitespace around answer text stripped": 1,
        INSIDE: 1,
        "answers of an unanswerable question dropped": 1,
    })
    assert (stats.docs, stats.questions, stats.impossible) == (1, 6, 1)


@pytest.mark.parametrize(
    "shift,kept",
    [
        (REPAIR_WINDOW, True),
        (REPAIR_WINDOW + 1, False),
        (-REPAIR_WINDOW, True),
        (-REPAIR_WINDOW - 1, False),
    ],
)
def test_repair_window(tmp_path, shift, kept):
    context = "Ana " + "x" * 30 + " Lisboa " + "y" * 30
    start = context.index("Lisboa")
    path = write(tmp_path, [{"context": context, "qas": [qa("q", ("Lisboa", start + shift))]}])
    docs = list(read_squad(path, "xx"))
    assert [answers(doc) for doc in docs] == ([[("q", "Lisboa", start)]] if kept else [])


def test_negative_answer_start_is_repaired(tmp_path):
    # context[-1:] is "5", but -1 is no offset: the "5" at 7 is the answer
    path = write(tmp_path, [{"context": "Lisbon 5", "qas": [qa("q", ("5", -1))]}])
    stats = ConversionStats()
    assert [answers(doc) for doc in read_squad(path, "xx", stats=stats)] == [[("q", "5", 7)]]
    assert stats.warnings == Counter({"answer_start off by a few characters, repaired": 1})


def test_v1_file_and_language_object(tmp_path):
    v1 = [qa("a", ("野马队", 2), text="谁赢了?"), qa("b", ("50", 1))]
    for question in v1:
        del question["is_impossible"]
    paragraphs = [
        {"context": "丹佛野马队赢了。", "qas": [v1[0]]},
        {"context": "第50届。", "qas": [v1[1]]},
    ]
    path = write(tmp_path, paragraphs, version="1.1")
    stats = ConversionStats()
    docs = list(read_squad(path, spacy.blank("zh"), stats=stats))
    assert [answers(doc) for doc in docs] == [[("a", "野马队", 2)], [("b", "50", 1)]]
    assert all(q["is_impossible"] is False for doc in docs for q in doc._.qa_questions)
    assert not stats.warnings and not stats.skipped
    assert [len(doc) for doc in docs] == [8, 5]
    stats = ConversionStats()
    list(read_squad(path, "xx", stats=stats))
    assert stats.warnings == Counter({INSIDE: 2})


def test_limit():
    stats = ConversionStats()
    docs = list(read_squad(DATA / "squad-es-v2/dev.json", "xx", limit=2, stats=stats))
    assert len(docs) == stats.docs == 2
    assert stats.questions == sum(len(doc._.qa_questions) for doc in docs)
    with pytest.raises(ValueError, match="limit must be at least 0"):
        read_squad(DATA / "squad-es-v2/dev.json", "xx", limit=-1)


def test_docbin_round_trip(tmp_path):
    path = DATA / "xquad/xquad.th.json"
    output = tmp_path / "out" / "th.spacy"
    stats = convert_squad(path, output)
    expected = list(read_squad(path, "xx"))
    nlp = spacy.blank("xx")
    loaded = list(DocBin().from_disk(output).get_docs(nlp.vocab))
    assert [d.text for d in loaded] == [d.text for d in expected]
    assert [[t.text for t in d] for d in loaded] == [[t.text for t in d] for d in expected]
    # DocBin gives lists back as tuples; get_questions makes them lists again
    assert isinstance(loaded[0]._.qa_questions, tuple)
    assert [get_questions(d) for d in loaded] == [d._.qa_questions for d in expected]
    assert sum(len(d._.qa_questions) for d in loaded) == stats.questions == 39
    assert "questions: 39 (unanswerable: 0)" in stats.summary()


def test_cli(tmp_path):
    output = tmp_path / "es.spacy"
    result = CliRunner().invoke(
        app, ["convert-squad", str(DATA / "squad-es-v2/sample.json"), str(output), "--limit", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "docs: 3," in result.output and f"Saved to {output}" in result.output
    docs = list(DocBin().from_disk(output).get_docs(spacy.blank("xx").vocab))
    assert [len(d._.qa_questions) for d in docs] == [9, 6, 6]


@pytest.mark.parametrize(
    "content,message",
    [
        ("{", r"invalid JSON"),
        ('[{"paragraphs": []}]', r"expected an object, got list"),
        ('{"version": "1.1"}', r"'data' must be a list, got None"),
        ('{"data": [{"title": "T"}]}', r"data\[0\] \('T'\): 'paragraphs' must be a list"),
        ('{"data": [{"paragraphs": [{"qas": []}]}]}', r"paragraphs\[0\]: 'context' must be a str"),
        ('{"data": [{"paragraphs": [{"context": "x"}]}]}', r"'qas' must be a list, got None"),
        (
            '{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": 7}]}]}]}',
            r"qas\[0\]: 'id' must be a str, got 7",
        ),
        (
            '{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "q", "question": "?"}]}]}]}',
            r"qas\[0\] \(id 'q'\): 'answers' must be a list, got None",
        ),
        (
            '{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "q", "question": "?", '
            '"answers": [], "is_impossible": "yes"}]}]}]}',
            r"'is_impossible' must be a bool, got 'yes'",
        ),
        (
            '{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "q", "question": "?", '
            '"answers": [{"text": "x", "answer_start": "0"}]}]}]}]}',
            r"\(id 'q'\), answers\[0\]: 'answer_start' must be an integer, got '0'",
        ),
        (
            '{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "q", "question": "?", '
            '"answers": ["x"]}]}]}]}',
            r"answers\[0\]: expected an object, got str",
        ),
    ],
)
def test_malformed_files_raise(tmp_path, content, message):
    path = tmp_path / "in.json"
    path.write_text(content, encoding="utf8")
    with pytest.raises(ValueError, match=r"in\.json.*" + message):
        list(read_squad(path, "xx"))


def test_byte_order_mark_is_accepted(tmp_path):
    path = write(tmp_path, [{"context": "丹佛野马队赢了。", "qas": [qa("a", ("野马队", 2))]}])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    docs = list(read_squad(path, "zh"))
    assert [answers(doc) for doc in docs] == [[("a", "野马队", 2)]]
