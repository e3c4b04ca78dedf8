from typing import Any, List

import pytest
import spacy
from spacy.tokens import Doc

from spacy_xlmr.extensions import install_extensions
from spacy_xlmr.qa.data import get_questions, validate_questions

TEXT = "Denver beat Carolina in Super Bowl 50."


def test_install_is_idempotent_and_defaults_to_none():
    install_extensions()
    install_extensions()
    assert Doc.has_extension("qa_questions")
    assert spacy.blank("xx")("x")._.qa_questions is None


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
