"""The extractive QA data model: questions and their gold answers on a Doc
(``doc._.qa_questions``, one Doc per context such as a SQuAD paragraph),
their validation, and reading them back as plain lists of ``Question`` dicts
(``get_questions``); the format is that of ``Question``. The SQuAD metrics
over these questions are in ``metrics.py``.
"""
from typing import Any, List, TypedDict

from spacy.tokens import Doc

EXTENSION = "qa_questions"
QUESTION_KEYS = ("id", "question", "answers", "is_impossible")


class Answer(TypedDict):
    text: str
    answer_start: int


class _QuestionRequired(TypedDict):
    id: str
    question: str


class Question(_QuestionRequired, total=False):
    """A question on a Doc. A Doc is one context (a SQuAD paragraph).
    ``doc._.qa_questions`` is None or a list of plain, JSON-able ``Question``
    dicts, so that ``DocBin(store_user_data=True)`` keeps them::

        {"id": "q1", "question": "Who won?",
         "answers": [{"text": "Denver Broncos", "answer_start": 177}],
         "is_impossible": False}

    ``answer_start`` is a character offset into ``doc.text``. An unanswerable
    (SQuAD 2.0) question has ``"is_impossible": True`` and no answers.
    ``answers`` and ``is_impossible`` may be left out of a question that has no
    gold annotation (read as ``[]`` and ``False``).

    A DocBin gives the lists back as tuples (spaCy reads user data with
    msgpack's ``use_list=False``); ``get_questions`` returns them as lists.
    """

    answers: List[Answer]
    is_impossible: bool


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_answer(answer: Any, text: str, where: str) -> None:
    if not isinstance(answer, dict) or set(answer) != {"text", "answer_start"}:
        raise ValueError(
            f"{where}: an answer must be a dict with exactly the keys 'text' and "
            f"'answer_start', got {answer!r}"
        )
    answer_text, start = answer["text"], answer["answer_start"]
    if not isinstance(answer_text, str) or not answer_text.strip():
        raise ValueError(
            f"{where}: 'text' must be a non-empty string, got {answer_text!r}: "
            "leave an answer out rather than giving an empty one"
        )
    if not _is_int(start):
        raise ValueError(f"{where}: 'answer_start' must be an integer, got {start!r}")
    end = start + len(answer_text)
    if start < 0 or end > len(text):
        raise ValueError(
            f"{where}: answer_start {start} + len(text) {len(answer_text)} is out of "
            f"range for a doc.text of {len(text)} characters: 'answer_start' must be "
            "the character offset of the answer in doc.text"
        )
    if text[start:end] != answer_text:
        raise ValueError(
            f"{where}: doc.text[{start}:{end}] is {text[start:end]!r}, but 'text' is "
            f"{answer_text!r}: 'answer_start' must be the character offset of the "
            "answer in doc.text"
        )


def validate_questions(doc: Doc) -> None:
    """Check ``doc._.qa_questions``: None, or a list (or tuple) of
    ``Question`` dicts with unique non-empty ids, non-empty questions and
    answers that are slices of ``doc.text``. Raises ValueError saying what to
    fix."""
    questions = doc._.get(EXTENSION)
    if questions is None:
        return
    if not isinstance(questions, (list, tuple)):
        raise ValueError(
            f"doc._.{EXTENSION} must be a list of question dicts or None, got "
            f"{type(questions).__name__}: wrap the questions in a list"
        )
    seen = set()
    for i, question in enumerate(questions):
        where = f"doc._.{EXTENSION}[{i}]"
        if not isinstance(question, dict):
            raise ValueError(
                f"{where}: expected a dict with the keys {', '.join(QUESTION_KEYS)}, "
                f"got {type(question).__name__}"
            )
        unknown = sorted(set(question) - set(QUESTION_KEYS), key=str)
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {unknown}; the keys are "
                f"{', '.join(QUESTION_KEYS)}"
            )
        for key in ("id", "question"):
            value = question.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"{where}: {key!r} must be a non-empty string, got {value!r}"
                )
        where = f"{where} (id {question['id']!r})"
        if question["id"] in seen:
            raise ValueError(f"{where}: duplicate id: give every question its own id")
        seen.add(question["id"])
        answers = question.get("answers", [])
        if not isinstance(answers, (list, tuple)):
            raise ValueError(
                f"{where}: 'answers' must be a list of answer dicts, got "
                f"{type(answers).__name__}"
            )
        impossible = question.get("is_impossible", False)
        if not isinstance(impossible, bool):
            raise ValueError(f"{where}: 'is_impossible' must be a bool, got {impossible!r}")
        if impossible and answers:
            raise ValueError(
                f"{where}: an unanswerable question has no answers: set 'answers' "
                "to [] or 'is_impossible' to False"
            )
        for j, answer in enumerate(answers):
            _check_answer(answer, doc.text, f"{where}, answers[{j}]")


def get_questions(doc: Doc) -> List[Question]:
    """The questions of ``doc._.qa_questions`` (none if it is None) after
    ``validate_questions``, as new dicts with every key and list answers,
    also when a DocBin gave them back as tuples."""
    validate_questions(doc)
    return [
        {
            "id": question["id"],
            "question": question["question"],
            "answers": [
                {"text": answer["text"], "answer_start": answer["answer_start"]}
                for answer in question.get("answers", [])
            ],
            "is_impossible": question.get("is_impossible", False),
        }
        for question in doc._.get(EXTENSION) or []
    ]
