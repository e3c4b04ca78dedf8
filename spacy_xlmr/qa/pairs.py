"""Question/context pairs for extractive question answering. XLM-R reads a
pair as ``<s> question </s></s> context </s>``; a context too long for
``max_seq_len`` is cut into windows as Hugging Face tokenizers cut an
overflowing second sequence (``truncation="only_second"``, overlap
``doc_stride``), so windows, pieces and answer boundaries are those of the HF
``question-answering`` pipeline. The context is tokenized on its own (a pair's
sequences are tokenized independently), once per doc for all its questions.
Answers are reported as HF reports them: from the start of the whitespace
word holding the first piece to the end of the word holding the last, as far
as the window holds the word (with XLM-R's tokenizer a word's span includes
the space before it). ``encode_pairs`` gives the windows of every question of
a batch of docs, grouped by doc (``DocScores``), for one batched encoder pass.
"""
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Sequence, Tuple

from thinc.types import Floats1d

from ..errors import Errors
from .data import Question

if TYPE_CHECKING:
    from transformers.tokenization_utils_fast import PreTrainedTokenizerFast

# <s> question </s></s> context </s>
N_PAIR_SPECIAL_TOKENS = 4


def overflow_starts(n_pieces: int, window_size: int, overlap: int) -> List[int]:
    """Start offsets of the windows of a question-answering context, as Hugging
    Face tokenizers cut an overflowing second sequence: windows of
    ``window_size`` pieces, each overlapping the previous one by ``overlap``
    pieces, until one reaches the end (the last may be shorter)."""
    if not 0 <= overlap < window_size:
        raise ValueError(
            Errors.QA_OVERLAP_TOO_LARGE.format(overlap=overlap, window_size=window_size)
        )
    starts = [0]
    while starts[-1] + window_size < n_pieces:
        starts.append(starts[-1] + window_size - overlap)
    return starts


@dataclass
class ContextPieces:
    """The pieces of a context (no special tokens).

    ids (List[int]): Piece ids.
    offsets (List[Tuple[int, int]]): Character span of each piece in the text,
        as the tokenizer gives it (a leading ``▁`` covers the space).
    word_ids (List[int]): The whitespace word each piece belongs to (pieces
        of a word are consecutive).
    """

    ids: List[int]
    offsets: List[Tuple[int, int]]
    word_ids: List[int]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class PairWindow:
    """One encoder input of a question and a window of its context.

    ids (List[int]): ``<s> question </s></s> context window </s>``.
    context_offset (int): Position of the window's first context piece in ids.
    piece_start (int): Index of that piece in the context's pieces.
    n_context (int): Number of context pieces in the window.
    """

    ids: List[int]
    context_offset: int
    piece_start: int
    n_context: int

    def piece_at(self, position: int) -> int:
        """The context piece at ``position`` of the window."""
        return self.piece_start + position - self.context_offset

    def answer_chars(self, context: ContextPieces, first: int, last: int) -> Tuple[int, int]:
        """The characters of an answer from position ``first`` to ``last``,
        widened to whole words as far as the window holds them (HF's
        ``align_to_words``)."""
        start, end = self.piece_at(first), self.piece_at(last)
        window_end = self.piece_start + self.n_context
        while start > self.piece_start and context.word_ids[start - 1] == context.word_ids[start]:
            start -= 1
        while end + 1 < window_end and context.word_ids[end + 1] == context.word_ids[end]:
            end += 1
        return context.offsets[start][0], context.offsets[end][1]


def encode_contexts(
    tokenizer: "PreTrainedTokenizerFast", texts: Sequence[str]
) -> List[ContextPieces]:
    """Tokenize contexts (one batched call), keeping what answers need."""
    if not texts:
        return []
    encodings = tokenizer(
        list(texts),
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    ).encodings
    contexts = []
    for encoding in encodings:
        # Pieces outside any word (none with XLM-R's tokenizer) are words of
        # their own.
        word_ids = [
            word if word is not None else -1 - piece
            for piece, word in enumerate(encoding.word_ids)
        ]
        contexts.append(
            ContextPieces(ids=list(encoding.ids), offsets=list(encoding.offsets), word_ids=word_ids)
        )
    return contexts


def encode_questions(
    tokenizer: "PreTrainedTokenizerFast", questions: Sequence[str], max_question_len: int
) -> List[List[int]]:
    """Piece ids of each question, cut to ``max_question_len`` pieces."""
    if not questions:
        return []
    ids = tokenizer(
        list(questions), add_special_tokens=False, return_attention_mask=False,
        return_token_type_ids=False, verbose=False,
    )["input_ids"]
    return [question[:max_question_len] for question in ids]


def pair_windows(
    tokenizer: "PreTrainedTokenizerFast",
    question_ids: Sequence[int],
    context: ContextPieces,
    *,
    max_seq_len: int,
    doc_stride: int,
) -> List[PairWindow]:
    """The encoder inputs of one question over its context: the context is
    cut into windows overlapping by ``doc_stride`` pieces, each as long as
    ``max_seq_len`` allows after the question and the special tokens."""
    room = max_seq_len - len(question_ids) - N_PAIR_SPECIAL_TOKENS
    if room < 1:
        raise ValueError(
            Errors.QA_QUESTION_TOO_LONG.format(
                n_pieces=len(question_ids), max_seq_len=max_seq_len
            )
        )
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    head = [cls, *question_ids, sep, sep]
    windows = []
    for start in overflow_starts(len(context), room, doc_stride):
        piece_ids = context.ids[start : start + room]
        windows.append(
            PairWindow(
                ids=[*head, *piece_ids, sep],
                context_offset=len(head),
                piece_start=start,
                n_context=len(piece_ids),
            )
        )
    return windows


@dataclass
class QuestionScores:
    """The start and end logits of one question's windows over its doc."""

    question: Question
    windows: List[PairWindow]
    logits: List[Tuple[Floats1d, Floats1d]]


@dataclass
class DocScores:
    """What ``predict`` computed for one doc."""

    context: ContextPieces
    questions: List[QuestionScores]


def encode_pairs(
    tokenizer: "PreTrainedTokenizerFast",
    texts: Sequence[str],
    questions: Sequence[Sequence[Question]],
    *,
    max_question_len: int,
    max_seq_len: int,
    doc_stride: int,
) -> Tuple[List[DocScores], List[PairWindow]]:
    """The pair windows of every question, grouped by doc (the docs'
    ``texts``), and all of them in one list (for one batched encoder pass)."""
    contexts = encode_contexts(tokenizer, texts)
    question_ids = encode_questions(
        tokenizer, [q["question"] for qs in questions for q in qs], max_question_len
    )
    scores, windows = [], []
    position = 0
    for context, doc_questions in zip(contexts, questions):
        doc_scores = DocScores(context=context, questions=[])
        for question in doc_questions:
            question_windows = pair_windows(
                tokenizer, question_ids[position], context,
                max_seq_len=max_seq_len, doc_stride=doc_stride,
            )
            position += 1
            doc_scores.questions.append(QuestionScores(question, question_windows, []))
            windows.extend(question_windows)
        scores.append(doc_scores)
    return scores, windows


def fill_logits(scores: List[DocScores], logits: List[Tuple[Floats1d, Floats1d]]) -> None:
    """Hand each question the logits of its windows (in ``encode_pairs`` order)."""
    position = 0
    for doc_scores in scores:
        for question in doc_scores.questions:
            question.logits = logits[position : position + len(question.windows)]
            position += len(question.windows)
