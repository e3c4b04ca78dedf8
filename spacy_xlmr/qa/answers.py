"""Answers of extractive QA, decoded from the start and end logits of a
question's pair windows exactly as the Hugging Face ``question-answering``
pipeline decodes them (``decode_answers``: per window a softmax over the
context and ``<s>``, the best start × end products within ``max_answer_len``,
the same text from several windows summed, and where fewer than ``top_k``
spans have a probability HF's fillers of probability 0), and put on the Doc:
``doc._.qa_answers`` / ``doc._.qa_null_scores``, and a ``Span`` per answer
(``answer_span``) with ``span._.qa_answer`` and ``span._.qa_question``. An
answer's characters are HF's (whole whitespace words, a leading space
included); its ``Span`` covers every spaCy token that the answer's visible
characters touch (spaCy's ``alignment_mode="expand"``), so where a boundary
falls inside a token (unsegmented Chinese or Thai with the ``xx`` tokenizer)
the span is longer than the answer.
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy
from spacy.tokens import Doc, Span
from thinc.api import NumpyOps, Ops

from ..encoder.alignment import trim_span
from .data import EXTENSION
from .pairs import ContextPieces, QuestionScores

# Masked positions' logit, as in HF's pipeline.
_MASKED = -10000.0
# Answers are decoded on the CPU whatever the model's device.
NUMPY_OPS = NumpyOps()


def span_answer(span: Span) -> Optional[Dict[str, Any]]:
    """The answer dict of an answer span: its label is the question id, its
    id the answer's rank (spaCy keys span extensions by offsets, which two
    questions' answers may share, so the data stays in doc._.qa_answers)."""
    answers = (span.doc._.qa_answers or {}).get(span.label_)
    return answers[span.id] if answers and span.id < len(answers) else None


def span_question(span: Span) -> Optional[str]:
    """The question an answer span answers."""
    for question in span.doc._.get(EXTENSION) or []:
        if question["id"] == span.label_:
            return question["question"]
    return None


@dataclass
class PredictedAnswer:
    """One ranked answer to a question. ``kind`` says what it is: an answer
    in the text ("span"), the no-answer of ``handle_impossible_answer``
    ("none"), or one of HF's fillers of probability 0 ("filler"); only
    "span" answers get a ``Span``."""

    score: float
    start: int
    end: int
    text: str
    kind: str = "span"

    def as_dict(self) -> Dict[str, Any]:
        """The answer as HF's pipeline gives it (``doc._.qa_answers``)."""
        return {"score": self.score, "start": self.start, "end": self.end, "answer": self.text}


def decode_answers(
    ops: Ops,
    text: str,
    context: ContextPieces,
    question: QuestionScores,
    *,
    top_k: int,
    max_answer_len: int,
    handle_impossible_answer: bool,
) -> Tuple[List[PredictedAnswer], Optional[float]]:
    """The ranked answers and the no-answer score of one question, as the
    HF pipeline decodes them: per window, a softmax over the context
    positions and ``<s>``, the best start × end products within
    ``max_answer_len``, answers with the same text (ignoring case) from
    several windows summed. Where fewer than ``top_k`` spans have a
    probability (e.g. a whitespace-only context has none), HF fills the
    list with spans of probability 0 (from ``<s>``, ending before they
    start, or too long), as the empty answer for ``<s>`` to ``<s>`` and
    other texts for the others: their ``kind`` is "filler"."""
    answers: List[PredictedAnswer] = []
    null_score = 1000000.0
    for window, (start_logits, end_logits) in zip(question.windows, question.logits):
        allowed = numpy.zeros(len(window.ids), dtype=bool)
        allowed[0] = True
        allowed[window.context_offset : window.context_offset + window.n_context] = True
        start = NUMPY_OPS.softmax(numpy.where(allowed, ops.to_numpy(start_logits), _MASKED))
        end = NUMPY_OPS.softmax(numpy.where(allowed, ops.to_numpy(end_logits), _MASKED))
        null_score = min(null_score, float(start[0] * end[0]))
        start[0] = end[0] = 0.0
        for s, e, score in best_spans(start, end, top_k, max_answer_len, allowed):
            if s == 0 or e == 0:
                # <s> has no word: HF falls back to the pieces' own offsets,
                # (0, 0) for <s>.
                char_start = context.offsets[window.piece_at(s)][0] if s else 0
                char_end = context.offsets[window.piece_at(e)][1] if e else 0
            else:
                char_start, char_end = window.answer_chars(context, s, e)
            answer_text = text[char_start:char_end]
            same = [a for a in answers if a.text.lower() == answer_text.lower()]
            if same:
                same[0].score += score
                if same[0].score > 0.0:
                    same[0].kind = "span"
            else:
                kind = "filler" if score == 0.0 else "span"
                answers.append(PredictedAnswer(score, char_start, char_end, answer_text, kind))
    if handle_impossible_answer:
        answers.append(PredictedAnswer(null_score, 0, 0, "", "none"))
    ranked = sorted(answers, key=lambda a: a.score, reverse=True)[:top_k]
    return ranked, null_score if handle_impossible_answer else None


def best_spans(
    start: numpy.ndarray, end: numpy.ndarray, top_k: int, max_answer_len: int,
    allowed: numpy.ndarray,
) -> List[Tuple[int, int, float]]:
    """The ``top_k`` (start, end) pairs by ``start[s] * end[e]`` with
    ``s <= e < s + max_answer_len``, both allowed (HF's ``decode_spans``)."""
    candidates = numpy.tril(numpy.triu(numpy.outer(start, end)), max_answer_len - 1)
    flat = candidates.flatten()
    if top_k == 1:
        order = numpy.array([numpy.argmax(flat)])
    elif len(flat) < top_k:
        order = numpy.argsort(-flat)
    else:
        best = numpy.argpartition(-flat, top_k)[:top_k]
        order = best[numpy.argsort(-flat[best])]
    starts, ends = numpy.unravel_index(order, candidates.shape)
    return [
        (int(s), int(e), float(candidates[s, e]))
        for s, e in zip(starts, ends)
        if allowed[s] and allowed[e]
    ]


def answer_span(doc: Doc, answer: PredictedAnswer, qid: str, rank: int) -> Optional[Span]:
    """The tokens an answer's visible characters touch (``expand``)."""
    start, end = trim_span(doc.text, answer.start, answer.end)
    if start == end:
        return None
    return doc.char_span(start, end, label=qid, alignment_mode="expand", span_id=rank)
