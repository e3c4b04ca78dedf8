"""Gold answers as training targets of extractive QA: the context pieces of a
question's first gold answer (``gold_pieces``), its first and last position
in each pair window (``gold_positions``, ``<s>`` where the window doesn't
hold it whole or the question is unanswerable, as in HF's training), the
cross-entropy of the start and end logits against them as
``XLMRobertaForQuestionAnswering`` computes it (``qa_loss``), and what the
head can't learn from in a doc's answers (``answer_problems``).
"""
from typing import List, Optional, Set, Tuple

from thinc.api import Ops
from thinc.types import Floats1d

from ..heads.losses import cross_entropy
from .data import Question
from .pairs import ContextPieces, DocScores, PairWindow


def gold_pieces(question: Question, context: ContextPieces) -> Optional[Tuple[int, int]]:
    """The context pieces of the first gold answer's first and last
    character; None if the question is unanswerable."""
    if question.get("is_impossible") or not question.get("answers"):
        return None
    answer = question["answers"][0]
    char_start = answer["answer_start"]
    char_end = char_start + len(answer["text"])
    pieces = [
        i for i, (start, end) in enumerate(context.offsets)
        if end > char_start and start < char_end
    ]
    return (pieces[0], pieces[-1]) if pieces else None


def gold_positions(gold: Optional[Tuple[int, int]], window: PairWindow) -> Tuple[int, int]:
    """Window positions of the gold answer's first and last piece; ``(0, 0)``
    (``<s>``, as in HF's training) if there is no answer or the window
    doesn't hold all of it."""
    if gold is None:
        return 0, 0
    first, last = gold
    if not window.piece_start <= first <= last < window.piece_start + window.n_context:
        return 0, 0
    offset = window.context_offset - window.piece_start
    return first + offset, last + offset


def qa_loss(
    ops: Ops, scores: List[DocScores]
) -> Tuple[float, List[Tuple[Floats1d, Floats1d]]]:
    """Cross-entropy of the start and of the end position of the first
    gold answer in each window (``<s>`` where the window doesn't hold it
    whole, or the question is unanswerable), averaged as in
    ``XLMRobertaForQuestionAnswering``: the mean of the two over windows."""
    xp = ops.xp
    loss = 0.0
    d_logits = []
    n_windows = sum(len(q.windows) for s in scores for q in s.questions)
    for doc_scores in scores:
        for question in doc_scores.questions:
            gold = gold_pieces(question.question, doc_scores.context)
            for window, (start, end) in zip(question.windows, question.logits):
                targets = xp.asarray(gold_positions(gold, window))
                window_loss, d_window = cross_entropy(ops, xp.stack([start, end]), targets)
                loss += window_loss / (2 * n_windows)
                d_window /= 2 * n_windows
                d_logits.append((d_window[0], d_window[1]))
    return loss, d_logits


def answer_problems(doc_scores: DocScores, max_answer_len: int) -> Set[str]:
    """What the head can't learn from in the gold answers of a doc's
    questions: answers longer than ``max_answer_len`` pieces, and answers
    that no context window holds whole."""
    problems = set()
    for question in doc_scores.questions:
        gold = gold_pieces(question.question, doc_scores.context)
        if gold is None:
            continue
        if gold[1] - gold[0] >= max_answer_len:
            problems.add(
                f"answers longer than max_answer_len = {max_answer_len} "
                "pieces (never predicted whole)"
            )
        if all(gold_positions(gold, window) == (0, 0) for window in question.windows):
            problems.add(
                "answers that no context window holds whole (trained as "
                "unanswerable; raise max_seq_len or doc_stride)"
            )
    return problems
