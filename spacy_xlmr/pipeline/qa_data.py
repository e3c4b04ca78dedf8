"""The extractive QA data model: questions and their gold answers on a Doc,
their validation, and the SQuAD metrics.

A Doc is one context (a SQuAD paragraph). ``doc._.qa_questions`` is None or a
list of plain, JSON-able ``Question`` dicts, so that
``DocBin(store_user_data=True)`` keeps them::

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
import re
import string
from collections import Counter
from typing import Any, Dict, Iterable, List, Tuple, TypedDict

from spacy.tokens import Doc

EXTENSION = "qa_questions"
QUESTION_KEYS = ("id", "question", "answers", "is_impossible")
# (exact match, F1) of one question
_Scores = Tuple[float, float]


class Answer(TypedDict):
    text: str
    answer_start: int


class _QuestionRequired(TypedDict):
    id: str
    question: str


class Question(_QuestionRequired, total=False):
    answers: List[Answer]
    is_impossible: bool


def register_qa_extensions() -> None:
    """Register ``Doc._.qa_questions`` (default None) unless it exists."""
    if not Doc.has_extension(EXTENSION):
        Doc.set_extension(EXTENSION, default=None)


register_qa_extensions()


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


# Mixed segmentation: each character of these blocks is a token of its own.
_SEGMENTED_CHARS = re.compile(
    "(["
    "\u0e00-\u0e7f"  # Thai
    "\u3000-\u303f"  # CJK symbols and punctuation
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf"  # CJK unified ideographs extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff00-\uffef"  # halfwidth and fullwidth forms
    "\U00020000-\U0003134f"  # CJK unified ideographs extensions B to H
    "])"
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Normalise an answer as the official SQuAD evaluation does: lowercase,
    remove ASCII punctuation, remove the English articles a/an/the, and
    collapse whitespace. Other scripts' punctuation (such as ``，``) is
    kept, as in the official script."""
    text = "".join(char for char in text.lower() if char not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_tokens(text: str, *, mixed_segmentation: bool = False) -> List[str]:
    """The tokens of a normalised answer: whitespace-separated words, and
    with ``mixed_segmentation`` each CJK or Thai character a token too."""
    words = normalize_answer(text).split()
    if not mixed_segmentation:
        return words
    return [piece for word in words for piece in _SEGMENTED_CHARS.split(word) if piece]


def _f1(prediction: List[str], gold: List[str]) -> float:
    if not prediction or not gold:
        return float(prediction == gold)
    n_same = sum((Counter(prediction) & Counter(gold)).values())
    if n_same == 0:
        return 0.0
    precision = n_same / len(prediction)
    recall = n_same / len(gold)
    return 2 * precision * recall / (precision + recall)


def score_squad(
    predictions: Dict[str, str],
    questions: Iterable[Question],
    *,
    mixed_segmentation: bool = False,
) -> Dict[str, float]:
    """Score predicted answer texts by question id with the SQuAD metrics,
    following the official ``evaluate-v2.0.py``. For SQuAD 1.1 data this
    gives the scores of ``evaluate-v1.1.py``, unless a gold answer
    normalises to nothing (such as "The").

    Each question scores the best exact match and token F1 over its gold
    answers (after ``normalize_answer``). A question with no gold answers is
    unanswerable: its gold is ``""``, so predicting ``""`` scores 1. A
    question missing from ``predictions`` counts as predicted ``""``.

    Returns ``exact``, ``f1`` (means, 0 to 1 as in spaCy, not 0 to 100) and
    ``total`` (the number of questions). If any question is unanswerable
    (SQuAD 2.0 data), also ``HasAns_*`` and ``NoAns_*`` (``exact``, ``f1``,
    ``total``) for the answerable and the unanswerable questions, each only
    if it has questions.

    Tokens are whitespace-separated, as in the official script (which XQuAD
    uses as-is), so an unsegmented Chinese, Japanese or Thai answer is one
    token and F1 gives no credit for a partial overlap. With
    ``mixed_segmentation``, each character of those scripts (and CJK
    punctuation and fullwidth forms) is a token of its own, as MLQA's
    evaluation does for Chinese; exact match then also ignores whitespace
    between such characters. Raises ValueError if there are no questions or
    two share an id.
    """
    scores: Dict[bool, List[_Scores]] = {True: [], False: []}
    seen = set()
    for question in questions:
        qid = question["id"]
        if qid in seen:
            raise ValueError(f"duplicate question id {qid!r}")
        seen.add(qid)
        answers = question.get("answers", [])
        gold = [
            tokens
            for tokens in (
                answer_tokens(a["text"], mixed_segmentation=mixed_segmentation)
                for a in answers
            )
            if tokens
        ] or [[]]
        predicted = answer_tokens(
            predictions.get(qid, ""), mixed_segmentation=mixed_segmentation
        )
        exact = max(float(predicted == tokens) for tokens in gold)
        f1 = max(_f1(predicted, tokens) for tokens in gold)
        scores[bool(answers)].append((exact, f1))
    if not seen:
        raise ValueError("no questions to score")
    result = _mean_scores(scores[True] + scores[False])
    if scores[False]:
        for prefix, has_answers in (("HasAns_", True), ("NoAns_", False)):
            if scores[has_answers]:
                split = _mean_scores(scores[has_answers])
                result.update({prefix + key: value for key, value in split.items()})
    return result


def _mean_scores(scores: List[_Scores]) -> Dict[str, float]:
    total = len(scores)
    return {
        "exact": sum(exact for exact, _ in scores) / total,
        "f1": sum(f1 for _, f1 in scores) / total,
        "total": total,
    }
