"""The extractive QA data model: questions and their gold answers on a Doc
(``doc._.qa_questions``, one Doc per context such as a SQuAD paragraph),
their validation, and reading them back as plain lists of ``Question`` dicts
(``get_questions``); the format is that of ``Question``. The SQuAD metrics
over these questions are in ``metrics.py``.
"""
from typing import Any, List, TypedDict

from spacy.tokens import Doc

from ..errors import Errors

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
        raise ValueError(Errors.QA_ANSWER_NOT_A_DICT.format(where=where, answer=answer))
    answer_text, start = answer["text"], answer["answer_start"]
    if not isinstance(answer_text, str) or not answer_text.strip():
        raise ValueError(
            Errors.QA_ANSWER_TEXT_EMPTY.format(where=where, answer_text=answer_text)
        )
    if not _is_int(start):
        raise ValueError(Errors.QA_ANSWER_START_NOT_AN_INT.format(where=where, start=start))
    end = start + len(answer_text)
    if start < 0 or end > len(text):
        raise ValueError(
            Errors.QA_ANSWER_OUT_OF_RANGE.format(
                where=where, start=start, length=len(answer_text), text_length=len(text)
            )
        )
    if text[start:end] != answer_text:
        raise ValueError(
            Errors.QA_ANSWER_TEXT_MISMATCH.format(
                where=where, start=start, end=end, found=text[start:end], answer_text=answer_text
            )
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
            Errors.QA_QUESTIONS_NOT_A_LIST.format(
                extension=EXTENSION, type_name=type(questions).__name__
            )
        )
    seen = set()
    for i, question in enumerate(questions):
        where = f"doc._.{EXTENSION}[{i}]"
        if not isinstance(question, dict):
            raise ValueError(
                Errors.QA_QUESTION_NOT_A_DICT.format(
                    where=where, keys=", ".join(QUESTION_KEYS), type_name=type(question).__name__
                )
            )
        unknown = sorted(set(question) - set(QUESTION_KEYS), key=str)
        if unknown:
            raise ValueError(
                Errors.QA_QUESTION_UNKNOWN_KEYS.format(
                    where=where, unknown=unknown, keys=", ".join(QUESTION_KEYS)
                )
            )
        for key in ("id", "question"):
            value = question.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    Errors.QA_QUESTION_FIELD_EMPTY.format(where=where, key=key, value=value)
                )
        where = f"{where} (id {question['id']!r})"
        if question["id"] in seen:
            raise ValueError(Errors.QA_DUPLICATE_ID.format(where=where))
        seen.add(question["id"])
        answers = question.get("answers", [])
        if not isinstance(answers, (list, tuple)):
            raise ValueError(
                Errors.QA_ANSWERS_NOT_A_LIST.format(where=where, type_name=type(answers).__name__)
            )
        impossible = question.get("is_impossible", False)
        if not isinstance(impossible, bool):
            raise ValueError(
                Errors.QA_IMPOSSIBLE_NOT_A_BOOL.format(where=where, impossible=impossible)
            )
        if impossible and answers:
            raise ValueError(Errors.QA_IMPOSSIBLE_WITH_ANSWERS.format(where=where))
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
