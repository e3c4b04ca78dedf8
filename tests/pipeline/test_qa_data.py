from typing import Any, List

import pytest
import spacy
from spacy.tokens import Doc

from spacy_xlmr.pipeline.qa_data import (
    answer_tokens,
    get_questions,
    normalize_answer,
    register_qa_extensions,
    score_squad,
    validate_questions,
)

TEXT = "Denver beat Carolina in Super Bowl 50."


def question(qid: str, *answers: str, impossible: bool = False) -> dict:
    """A question whose answers are only texts (all score_squad reads)."""
    return {
        "id": qid,
        "question": "?",
        "answers": [{"text": text, "answer_start": 0} for text in answers],
        "is_impossible": impossible,
    }


def test_register_is_idempotent_and_defaults_to_none():
    register_qa_extensions()
    register_qa_extensions()
    assert Doc.has_extension("qa_questions")
    assert spacy.blank("xx")("x")._.qa_questions is None


@pytest.mark.parametrize(
    "text,normalized",
    [
        ("The  Denver Broncos!", "denver broncos"),
        ("an apple, a day", "apple day"),
        ("Theater of the Absurd", "theater of absurd"),
        ("U.S.A.", "usa"),
        ("l'été\t(1990)", "lété 1990"),
        # only ASCII punctuation goes, like the official script
        ("丹佛，野马队。", "丹佛，野马队。"),
        ("  ", ""),
    ],
)
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_exact_and_partial_f1():
    questions = [question("q1", "Denver Broncos"), question("q2", "Denver Broncos")]
    predictions = {"q1": "the Denver Broncos.", "q2": "the Denver Broncos team"}
    # q2: 2 common tokens, precision 2/3, recall 1, F1 0.8
    scores = score_squad(predictions, questions)
    assert scores == {"exact": 0.5, "f1": pytest.approx(0.9), "total": 2}


def test_best_gold_answer_and_repeated_tokens():
    questions = [
        question("q1", "Carolina Panthers", "Panthers"),
        question("q2", "new york new york"),
        question("q3", "Levi's Stadium"),
    ]
    predictions = {"q1": "the Panthers", "q2": "New York", "q3": "Santa Clara"}
    # q2: common tokens count each token at most as often as in both:
    # new 1, york 1, so precision 1, recall 2/4, F1 2/3. q3: no overlap.
    scores = score_squad(predictions, questions)
    assert scores["exact"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert set(scores) == {"exact", "f1", "total"}


def test_no_answer_and_split_scores():
    questions = [
        question("has1", "Denver Broncos"),
        question("has2", "Denver Broncos"),
        question("no1", impossible=True),
        question("no2", impossible=True),
    ]
    predictions = {"has1": "Denver Broncos", "has2": "Broncos", "no2": "Carolina"}
    # has2: precision 1, recall 1/2, F1 2/3; no1 is missing, so predicted ""
    # (right); no2 answers an unanswerable question (wrong).
    scores = score_squad(predictions, questions)
    assert scores == {
        "exact": pytest.approx(2 / 4),
        "f1": pytest.approx((1 + 2 / 3 + 1 + 0) / 4),
        "total": 4,
        "HasAns_exact": pytest.approx(1 / 2),
        "HasAns_f1": pytest.approx((1 + 2 / 3) / 2),
        "HasAns_total": 2,
        "NoAns_exact": pytest.approx(1 / 2),
        "NoAns_f1": pytest.approx(1 / 2),
        "NoAns_total": 2,
    }


def test_only_unanswerable_questions_and_missing_predictions():
    questions = [question("no1", impossible=True), question("no2", impossible=True)]
    assert score_squad({}, questions) == {
        "exact": 1.0, "f1": 1.0, "total": 2,
        "NoAns_exact": 1.0, "NoAns_f1": 1.0, "NoAns_total": 2,
    }
    scores = score_squad({"no1": "x", "no2": "the"}, questions)
    # "the" normalises to "", the same as no answer
    assert (scores["exact"], scores["f1"]) == (0.5, 0.5)


def test_gold_answer_normalising_to_nothing_is_no_answer():
    # As in the official script, such a gold answer is read as "", but the
    # question still counts as answerable (it has an answer).
    questions = [question("q1", "The"), question("q2", "A", "Denver")]
    scores = score_squad({"q1": "", "q2": ""}, questions)
    assert scores == {"exact": 0.5, "f1": 0.5, "total": 2}


def test_whitespace_tokens_make_chinese_answers_one_token():
    questions = [question("q1", "丹佛野马队")]
    scores = score_squad({"q1": "野马队"}, questions)
    assert (scores["exact"], scores["f1"]) == (0.0, 0.0)
    # per character: 3 of 5 characters, precision 1, recall 3/5, F1 0.75
    scores = score_squad({"q1": "野马队"}, questions, mixed_segmentation=True)
    assert scores["exact"] == 0.0
    assert scores["f1"] == pytest.approx(0.75)


def test_mixed_segmentation_tokens():
    assert answer_tokens("NFL 第50届 Super-Bowl") == ["nfl", "第50届", "superbowl"]
    assert answer_tokens("NFL 第50届 Super-Bowl", mixed_segmentation=True) == [
        "nfl", "第", "50", "届", "superbowl"
    ]
    assert answer_tokens("東京タワー。", mixed_segmentation=True) == [
        "東", "京", "タ", "ワ", "ー", "。"
    ]
    assert answer_tokens("กรุงเทพ 2016", mixed_segmentation=True) == [
        "ก", "ร", "ุ", "ง", "เ", "ท", "พ", "2016"
    ]
    # Korean and Latin words stay whole
    assert answer_tokens("서울 Café", mixed_segmentation=True) == ["서울", "café"]


def test_mixed_segmentation_exact_ignores_spaces_between_characters():
    questions = [question("q1", "丹佛野马队")]
    assert score_squad({"q1": "丹佛 野马队"}, questions)["exact"] == 0.0
    assert score_squad({"q1": "丹佛 野马队"}, questions, mixed_segmentation=True) == {
        "exact": 1.0, "f1": 1.0, "total": 1
    }


def test_score_errors():
    with pytest.raises(ValueError, match="no questions to score"):
        score_squad({}, [])
    with pytest.raises(ValueError, match="duplicate question id 'q1'"):
        score_squad({}, [question("q1", "x"), question("q1", "y")])


def make_doc(questions: Any) -> Doc:
    doc = spacy.blank("xx")(TEXT)
    doc._.qa_questions = questions
    return doc


def good() -> List[dict]:
    return [
        {
            "id": "q1",
            "question": "Who won?",
            "answers": [{"text": "Denver", "answer_start": 0}],
            "is_impossible": False,
        },
        {"id": "q2", "question": "Who lost?", "answers": [], "is_impossible": True},
        # no gold annotation (a question to answer)
        {"id": "q3", "question": "Where?"},
    ]


def test_valid_questions_pass():
    validate_questions(make_doc(None))
    validate_questions(make_doc([]))
    validate_questions(make_doc(good()))


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda qs: {"q1": qs[0]}, r"must be a list of question dicts or None, got dict"),
        (lambda qs: [*qs, "Who?"], r"\[3\]: expected a dict with the keys id, question"),
        (lambda qs: [{"question": "Who?"}], r"\[0\]: 'id' must be a non-empty string, got None"),
        (lambda qs: [{"id": 1, "question": "Who?"}], r"'id' must be a non-empty string, got 1"),
        (lambda qs: [{"id": "q", "question": " "}], r"'question' must be a non-empty string"),
        (lambda qs: [{"id": "q", "question": "?", "answer": []}], r"unknown key\(s\) \['answer'\]"),
        (lambda qs: [qs[0], {**qs[1], "id": "q1"}], r"\[1\] \(id 'q1'\): duplicate id"),
        (lambda qs: [{**qs[0], "answers": {"text": "Denver"}}], r"'answers' must be a list"),
        (lambda qs: [{**qs[1], "is_impossible": 1}], r"'is_impossible' must be a bool"),
        (
            lambda qs: [{**qs[0], "is_impossible": True}],
            r"an unanswerable question has no answers: set 'answers' to \[\]",
        ),
        (lambda qs: [{**qs[0], "answers": ["Denver"]}], r"answers\[0\]: an answer must be a dict"),
        (
            lambda qs: [{**qs[0], "answers": [{"text": "Denver", "start": 0}]}],
            r"with exactly the keys 'text' and 'answer_start'",
        ),
        (
            lambda qs: [{**qs[0], "answers": [{"text": "", "answer_start": 0}]}],
            r"'text' must be a non-empty string, got ''",
        ),
        (
            lambda qs: [{**qs[0], "answers": [{"text": "Denver", "answer_start": True}]}],
            r"'answer_start' must be an integer, got True",
        ),
        (
            lambda qs: [{**qs[0], "answers": [{"text": "50.", "answer_start": 36}]}],
            r"answer_start 36 \+ len\(text\) 3 is out of range for a doc.text of 38 "
            r"characters: 'answer_start' must be the character offset",
        ),
        (
            lambda qs: [{**qs[0], "answers": [{"text": "Denver", "answer_start": -1}]}],
            r"answer_start -1 \+ len\(text\) 6 is out of range",
        ),
        (
            lambda qs: [{**qs[0], "answers": [{"text": "Denver", "answer_start": 1}]}],
            r"\[0\] \(id 'q1'\), answers\[0\]: doc.text\[1:7\] is 'enver ', but 'text' "
            r"is 'Denver': 'answer_start' must be the character offset",
        ),
    ],
)
def test_invalid_questions_raise(change, message):
    with pytest.raises(ValueError, match=r"doc\._\.qa_questions.*" + message):
        validate_questions(make_doc(change(good())))


def test_get_questions_fills_defaults_and_makes_lists():
    assert get_questions(make_doc(None)) == []
    questions = good()
    doc = make_doc(tuple({**q, "answers": tuple(q.get("answers", ()))} for q in questions))
    assert get_questions(doc) == [
        questions[0],
        questions[1],
        {"id": "q3", "question": "Where?", "answers": [], "is_impossible": False},
    ]
    with pytest.raises(ValueError, match="duplicate id"):
        get_questions(make_doc([questions[0], questions[0]]))
