"""The SQuAD metrics of extractive QA: exact match and token F1 of predicted
answer texts against the gold answers of ``Question`` dicts (``data.py``),
as the official ``evaluate-v2.0.py`` computes them (answers normalised as
its ``normalize_answer`` does), optionally with MLQA's mixed segmentation of
CJK and Thai characters.
"""
import re
import string
from collections import Counter
from typing import Dict, Iterable, List, Tuple

from ..errors import Errors
from .data import Question

# (exact match, F1) of one question
_Scores = Tuple[float, float]

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
            raise ValueError(Errors.QA_METRICS_DUPLICATE_ID.format(qid=qid))
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
        raise ValueError(Errors.QA_METRICS_NO_QUESTIONS)
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
