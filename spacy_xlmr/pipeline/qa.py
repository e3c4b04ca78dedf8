"""``xlmr_qa``: extractive question answering with the head of
``XLMRobertaForQuestionAnswering`` on the weights of the shared encoder.

Questions go in ``doc._.qa_questions`` (see ``qa_data.py``; or use
``qa.ask(doc_or_text, questions)``). For each question the component writes
the ``top_k`` answers, exactly as the Hugging Face ``question-answering``
pipeline gives them (``{"answer", "start", "end", "score"}``, same windows,
``doc_stride``, ``max_answer_len`` and ``handle_impossible_answer``), to
``doc._.qa_answers[question_id]``, and each answer ranked above the
no-answer (all of them without ``handle_impossible_answer``) as a ``Span`` in
``doc.spans[spans_key]``, labelled with the question id, its rank as
``span.id``, and ``span._.qa_answer`` (the answer dict) and
``span._.qa_question`` read from the doc.
``doc._.qa_null_scores[question_id]`` holds the no-answer score when
``handle_impossible_answer`` is on.

Where fewer than ``top_k`` spans have a probability (none in a
whitespace-only or empty context), the list is filled as HF's pipeline fills
it, with spans of probability 0: the empty answer (``start = end = 0``,
score 0) from ``<s>``, and other texts with score 0. These fillers get no
``Span``. HF refuses an empty context; here it is answered like a
whitespace-only one.

Alignment rule: an answer's characters are HF's (whole whitespace words, a
leading space included); its ``Span`` covers every spaCy token that the
answer's visible characters touch (spaCy's ``alignment_mode="expand"``), so
where a boundary falls inside a token (unsegmented Chinese or Thai with the
``xx`` tokenizer) the span is longer than the answer. Scoring uses the
answer text, not the span.
"""
from dataclasses import dataclass
from typing import (
    Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union,
)

import numpy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples
from spacy.util import minibatch
from spacy.vocab import Vocab
from thinc.api import Config, Model, NumpyOps, Optimizer, set_dropout_rate
from thinc.types import Floats1d

from ..encoder.alignment import trim_span
from ..encoder.listener import encoder_of, maybe_encoder_of
from ..encoder.pairs import (
    ContextPieces,
    PairWindow,
    encode_contexts,
    encode_questions,
    pair_windows,
)
from ..heads.question_answering import HEAD_WEIGHT_PREFIXES, QuestionAnsweringHead, qa_logits
from ..heads.torch_head import build_head_module
from .head_pipe import HeadPipe
from .qa_data import EXTENSION, Question, get_questions, score_squad
from .transformer import add_encoder_if_missing, listened_width

DEFAULT_QA_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy-xlmr.QuestionAnswerer.v2"

[model.tok2vec]
@architectures = "spacy-xlmr.EncoderOutput.v1"
upstream = "*"
"""
)["model"]
# The most positions XLM-R checkpoints take (before the encoder is loaded).
_XLMR_POSITIONS = 512
# Masked positions' logit, as in HF's pipeline.
_MASKED = -10000.0
# Answers are decoded on the CPU whatever the model's device.
NUMPY_OPS = NumpyOps()

for _name in ("qa_answers", "qa_null_scores"):
    if not Doc.has_extension(_name):
        Doc.set_extension(_name, default=None)


def _span_answer(span: Span) -> Optional[Dict[str, Any]]:
    """The answer dict of an answer span: its label is the question id, its
    id the answer's rank (spaCy keys span extensions by offsets, which two
    questions' answers may share, so the data stays in doc._.qa_answers)."""
    answers = (span.doc._.qa_answers or {}).get(span.label_)
    return answers[span.id] if answers and span.id < len(answers) else None


def _span_question(span: Span) -> Optional[str]:
    """The question an answer span answers."""
    for question in span.doc._.get(EXTENSION) or []:
        if question["id"] == span.label_:
            return question["question"]
    return None


for _name, _getter in (("qa_answer", _span_answer), ("qa_question", _span_question)):
    if not Span.has_extension(_name):
        Span.set_extension(_name, getter=_getter)


@Language.factory(
    "xlmr_qa",
    assigns=["doc.spans", "doc._.qa_answers", "doc._.qa_null_scores"],
    default_config={
        "model": DEFAULT_QA_MODEL,
        "spans_key": "qa",
        "top_k": 1,
        "max_seq_len": 384,
        "doc_stride": 128,
        "max_question_len": 64,
        "max_answer_len": 15,
        "handle_impossible_answer": False,
        "scorer": {"@scorers": "spacy-xlmr.qa_scorer.v1"},
    },
    default_score_weights={
        "qa_f1": 1.0,
        "qa_exact": 0.0,
        "qa_HasAns_f1": None,
        "qa_NoAns_f1": None,
    },
)
def make_xlmr_qa(
    nlp: Language,
    name: str,
    model: Model,
    spans_key: str,
    top_k: int,
    max_seq_len: int,
    doc_stride: int,
    max_question_len: int,
    max_answer_len: int,
    handle_impossible_answer: bool,
    scorer: Optional[Callable],
) -> "XLMRQuestionAnswerer":
    """Extractive QA over ``doc._.qa_questions``; the options and their
    defaults are those of the HF question-answering pipeline.

    spans_key (str): Key of the answers' span group in ``doc.spans``.
    top_k (int): Answers per question.
    max_seq_len (int): Pieces per encoder input (question, context window and
        4 special tokens); at most what the encoder takes (512 for XLM-R).
    doc_stride (int): Overlap of consecutive context windows, in pieces;
        smaller than ``max_seq_len - max_question_len - 4``.
    max_question_len (int): Questions are cut to this many pieces.
    max_answer_len (int): Longest answer, in pieces.
    handle_impossible_answer (bool): Allow no answer (SQuAD 2.0).
    scorer (Optional[Callable]): Scores the answers of the examples' predicted
        docs against the reference questions; default
        ``spacy-xlmr.qa_scorer.v1`` (SQuAD exact match and F1).
    """
    add_encoder_if_missing(nlp, model)
    return XLMRQuestionAnswerer(
        nlp.vocab, model, name=name, make_doc=nlp.make_doc, spans_key=spans_key,
        top_k=top_k, max_seq_len=max_seq_len, doc_stride=doc_stride,
        max_question_len=max_question_len, max_answer_len=max_answer_len,
        handle_impossible_answer=handle_impossible_answer, scorer=scorer,
    )


def score_qa(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """SQuAD exact match and F1 (``qa_exact``, ``qa_f1``, and for data with
    unanswerable questions ``qa_HasAns_*`` / ``qa_NoAns_*``) of the top
    answer in ``doc._.qa_answers`` of every predicted doc, against the
    questions of the reference docs (a question with no predicted answer
    counts as answered ``""``). Both None without questions."""
    predictions: Dict[str, str] = {}
    gold: List[Question] = []
    for eg in examples:
        gold.extend(get_questions(eg.reference))
        for qid, answers in (eg.predicted._.qa_answers or {}).items():
            predictions[qid] = answers[0]["answer"] if answers else ""
    if not gold:
        return {"qa_exact": None, "qa_f1": None}
    return {f"qa_{key}": value for key, value in score_squad(predictions, gold).items()}


def make_qa_scorer() -> Callable:
    """``spacy-xlmr.qa_scorer.v1``: :func:`score_qa`."""
    return score_qa


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


class XLMRQuestionAnswerer(HeadPipe):
    """Answers to ``doc._.qa_questions`` as spans of the doc."""

    hf_head_class = "XLMRobertaForQuestionAnswering"

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "xlmr_qa",
        *,
        make_doc: Optional[Callable[[str], Doc]] = None,
        spans_key: str = "qa",
        top_k: int = 1,
        max_seq_len: int = 384,
        doc_stride: int = 128,
        max_question_len: int = 64,
        max_answer_len: int = 15,
        handle_impossible_answer: bool = False,
        scorer: Optional[Callable] = score_qa,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.make_doc = make_doc
        self.spans_key = spans_key
        self.top_k = top_k
        self.max_seq_len = max_seq_len
        self.doc_stride = doc_stride
        self.max_question_len = max_question_len
        self.max_answer_len = max_answer_len
        self.handle_impossible_answer = handle_impossible_answer
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {"labels": [], "width": None}
        self._check_settings()

    def ask(
        self,
        doc_or_text: Union[Doc, str],
        questions: Union[str, Question, Sequence[Union[str, Question]]],
    ) -> Doc:
        """Answer ``questions`` (a string, a dict with "id" and "question", or
        a list of them) about ``doc_or_text``; the pipeline's other components
        don't run. Strings get the ids "q0", "q1", ..."""
        if isinstance(doc_or_text, str):
            if self.make_doc is None:
                raise ValueError(f"[{self.name}] Pass a Doc: this component has no tokenizer.")
            doc = self.make_doc(doc_or_text)
        elif isinstance(doc_or_text, Doc):
            doc = doc_or_text
        else:
            raise TypeError(
                f"[{self.name}] ask() takes a Doc or a str to answer about, got "
                f"{type(doc_or_text).__name__}."
            )
        if isinstance(questions, (str, dict)):
            questions = [questions]
        asked: List[Question] = []
        for i, question in enumerate(questions):
            if isinstance(question, str):
                asked.append({"id": f"q{i}", "question": question})
            elif isinstance(question, dict):
                asked.append(dict(question))  # type: ignore[arg-type]
            else:
                raise TypeError(
                    f"[{self.name}] ask() takes questions as strings or dicts with "
                    f"'id' and 'question', got {type(question).__name__}."
                )
        doc._.set(EXTENSION, asked)
        return self(doc)

    def predict(self, docs: Iterable[Doc]) -> List[DocScores]:
        """Start and end logits of every question's windows."""
        docs = list(docs)
        questions = [get_questions(doc) for doc in docs]
        scores, windows = self._encode(docs, questions)
        logits, _ = qa_logits(self.model, windows, False)
        _fill_logits(scores, logits)
        return scores

    def set_annotations(self, docs: Iterable[Doc], scores: List[DocScores]) -> None:
        """Write each question's answers to ``doc._.qa_answers`` and spans."""
        for doc, doc_scores in zip(docs, scores):
            answers: Dict[str, List[Dict[str, Any]]] = {}
            null_scores: Dict[str, float] = {}
            spans = []
            for question in doc_scores.questions:
                qid = question.question["id"]
                ranked, null_score, fillers = self._decode(doc.text, doc_scores.context, question)
                answers[qid] = ranked
                if null_score is not None:
                    null_scores[qid] = null_score
                for rank, answer in enumerate(ranked):
                    if (answer["answer"] == "" and answer["end"] == 0) or rank in fillers:
                        break  # the no-answer or HF's fillers: answers below aren't spans
                    span = _answer_span(doc, answer, qid, rank)
                    if span is not None:
                        spans.append(span)
            doc._.qa_answers = answers
            doc._.qa_null_scores = null_scores if self.handle_impossible_answer else None
            doc.spans[self.spans_key] = spans

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn to point at the gold answers of the reference docs' questions
        (``doc._.qa_questions`` of ``eg.reference``; the first answer of
        each). The gradients reach the head and the shared encoder."""
        validate_examples(examples, "XLMRQuestionAnswerer.update")
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        questions = [get_questions(eg.reference) for eg in examples]
        scores, windows = self._encode([eg.predicted for eg in examples], questions)
        if not windows:
            return losses
        set_dropout_rate(self.model, drop)
        logits, backprop = qa_logits(self.model, windows, True)
        _fill_logits(scores, logits)
        loss, d_logits = self.get_loss(examples, scores)
        backprop(d_logits)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(
        self, examples: Iterable[Example], scores: List[DocScores]
    ) -> Tuple[float, List[Tuple[Floats1d, Floats1d]]]:
        """Cross-entropy of the start and of the end position of the first
        gold answer in each window (``<s>`` where the window doesn't hold it
        whole, or the question is unanswerable), averaged as in
        ``XLMRobertaForQuestionAnswering``: the mean of the two over windows."""
        xp = self.model.ops.xp
        loss = 0.0
        d_logits = []
        n_windows = sum(len(q.windows) for s in scores for q in s.questions)
        for doc_scores in scores:
            for question in doc_scores.questions:
                gold = _gold_pieces(question.question, doc_scores.context)
                for window, (start, end) in zip(question.windows, question.logits):
                    targets = _gold_positions(gold, window)
                    d_window = []
                    for row, target in zip((start, end), targets):
                        probs = self.model.ops.softmax(row)
                        loss -= float(xp.log(probs[target] + 1e-12)) / (2 * n_windows)
                        probs[target] -= 1.0
                        d_window.append(probs / (2 * n_windows))
                    d_logits.append(tuple(d_window))
        return loss, d_logits

    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        """Score the top answer of every question of the reference docs with
        the component's ``scorer`` (default ``spacy-xlmr.qa_scorer.v1``:
        ``qa_exact``, ``qa_f1``, and for data with unanswerable questions
        ``qa_HasAns_*`` / ``qa_NoAns_*``). Predicted docs without questions
        (``spacy evaluate`` reads the plain text) are asked the reference
        questions first."""
        validate_examples(examples, "XLMRQuestionAnswerer.score")
        examples = list(examples)
        if self.scorer is None:
            return {}
        unasked = [eg for eg in examples if not eg.predicted._.get(EXTENSION)]
        for batch in minibatch(unasked, 16):
            docs = []
            for eg in batch:
                eg.predicted._.set(EXTENSION, [
                    {"id": q["id"], "question": q["question"]} for q in get_questions(eg.reference)
                ])
                docs.append(eg.predicted)
            self.set_annotations(docs, self.predict(docs))
        return super().score(examples, **kwargs)

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        hf_checkpoint: Optional[str] = None,
    ) -> None:
        """Create the head; with ``hf_checkpoint`` (a fine-tuned
        ``XLMRobertaForQuestionAnswering``), load its ``qa_outputs``."""
        if hf_checkpoint is not None:
            self._check_hf_head(hf_checkpoint)
        self.cfg["width"] = listened_width(self.model, self.name)
        encoder_of(self.model).check_loaded()
        self._report_data_problems(get_examples, self._training_problems, report_all=False)
        self._check_settings()
        self._build_head()
        if hf_checkpoint is not None:
            self._import_hf_head(hf_checkpoint, HEAD_WEIGHT_PREFIXES, nlp)

    def _check_loaded(self) -> None:
        """After loading, check the settings against the loaded encoder."""
        self._check_settings()

    def add_label(self, label: str) -> int:
        raise NotImplementedError(f"[{self.name}] Question answering has no labels.")

    def _build_head(self, keep: bool = False) -> None:
        build_head_module(
            self.model.get_ref("head"), QuestionAnsweringHead, self.cfg["width"], 2
        )

    def _training_problems(self, eg: Example) -> List[str]:
        """What the head can't learn from in a reference doc's questions."""
        questions = get_questions(eg.reference)
        if not questions:
            return ["no questions in doc._.qa_questions (nothing to learn from)"]
        problems = set()
        tokenizer = encoder_of(self.model).tokenizer
        texts = [q["question"] for q in questions]
        uncut = encode_questions(tokenizer, texts, self.max_question_len + 1)
        if any(len(ids) > self.max_question_len for ids in uncut):
            problems.add(
                f"questions longer than max_question_len = {self.max_question_len} pieces (cut)"
            )
        (doc_scores,), _ = self._encode([eg.reference], [questions])
        for question in doc_scores.questions:
            gold = _gold_pieces(question.question, doc_scores.context)
            if gold is None:
                continue
            if gold[1] - gold[0] >= self.max_answer_len:
                problems.add(
                    f"answers longer than max_answer_len = {self.max_answer_len} "
                    "pieces (never predicted whole)"
                )
            if all(_gold_positions(gold, window) == (0, 0) for window in question.windows):
                problems.add(
                    "answers that no context window holds whole (trained as "
                    "unanswerable; raise max_seq_len or doc_stride)"
                )
        return sorted(problems)

    def _check_settings(self) -> None:
        """Refuse settings the pairs can't be cut with, naming the allowed
        range. Run wherever they can change: at construction (the config,
        also one overridden at ``spacy.load``), after loading, at
        ``initialize`` and before every pass (attributes set in between).
        The encoder's longest input is checked once it is loaded."""
        for option in ("top_k", "max_answer_len", "max_question_len", "max_seq_len", "doc_stride"):
            value = getattr(self, option)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(
                    f"[{self.name}] {option} = {value!r} is not an integer: set "
                    f"{option} to a whole number of pieces (or answers, for top_k)."
                )
        for option in ("top_k", "max_answer_len", "max_question_len"):
            value = getattr(self, option)
            if value < 1:
                raise ValueError(
                    f"[{self.name}] {option} = {value} is out of range: set {option} >= 1."
                )
        limit = self._encoder_positions()
        # <s> question </s></s> context </s>: a context window needs at least
        # one piece more than the overlap doc_stride.
        shortest = self.max_question_len + 5
        most = limit or _XLMR_POSITIONS
        if shortest > most and (limit is not None or self.max_seq_len < shortest):
            raise ValueError(
                f"[{self.name}] max_question_len = {self.max_question_len} is out of "
                f"range: set 1 <= max_question_len <= {most - 5}, so that a question "
                f"leaves the context at least 1 of the {most} positions the encoder "
                "takes (4 go to <s> and </s>)."
            )
        if self.max_seq_len < shortest or (limit is not None and self.max_seq_len > limit):
            allowed = (
                f"{shortest} <= max_seq_len <= {limit}" if limit is not None
                else f"max_seq_len >= {shortest}"
            )
            takes = f"{limit or _XLMR_POSITIONS} positions" + ("" if limit else " (XLM-R)")
            raise ValueError(
                f"[{self.name}] max_seq_len = {self.max_seq_len} is out of range: set "
                f"{allowed}. The encoder takes at most {takes}; 4 positions go to "
                f"<s> and </s>, and a question of max_question_len = "
                f"{self.max_question_len} pieces must leave the context at least 1."
            )
        # The room the longest question leaves for the context, which
        # doc_stride overlaps.
        context_room = self.max_seq_len - self.max_question_len - 4
        if not 0 <= self.doc_stride < context_room:
            fixes = [f"0 <= doc_stride <= {context_room - 1}"]
            if self.doc_stride >= 0:
                if self.max_seq_len - self.doc_stride - 5 >= 1:
                    fixes.append(f"max_question_len <= {self.max_seq_len - self.doc_stride - 5}")
                longest = self.max_question_len + self.doc_stride + 5
                if longest <= (limit or _XLMR_POSITIONS):
                    fixes.append(f"max_seq_len >= {longest}")
            raise ValueError(
                f"[{self.name}] doc_stride = {self.doc_stride} is out of range: the "
                "overlap of context windows must be at least 0 and smaller than the "
                f"room a question of max_question_len = {self.max_question_len} "
                f"pieces leaves for the context in max_seq_len = {self.max_seq_len} "
                f"positions ({context_room}; 4 positions go to <s> and </s>). "
                f"Set {'; or '.join(fixes)}."
            )

    def _encoder_positions(self) -> Optional[int]:
        """The most positions the loaded encoder takes (None before it is
        connected and loaded)."""
        encoder = maybe_encoder_of(self.model)
        if encoder is None or not encoder.is_loaded:
            return None
        return encoder.max_positions

    def _encode(
        self, docs: Sequence[Doc], questions: Sequence[Sequence[Question]]
    ) -> Tuple[List[DocScores], List[PairWindow]]:
        """The pair windows of every question, grouped by doc, and all of
        them in one list (for one batched encoder pass)."""
        encoder = encoder_of(self.model)
        encoder.check_loaded()
        self._check_settings()
        tokenizer = encoder.tokenizer
        contexts = encode_contexts(tokenizer, [doc.text for doc in docs])
        question_ids = encode_questions(
            tokenizer, [q["question"] for qs in questions for q in qs], self.max_question_len
        )
        scores, windows = [], []
        position = 0
        for context, doc_questions in zip(contexts, questions):
            doc_scores = DocScores(context=context, questions=[])
            for question in doc_questions:
                question_windows = pair_windows(
                    tokenizer, question_ids[position], context,
                    max_seq_len=self.max_seq_len, doc_stride=self.doc_stride,
                )
                position += 1
                doc_scores.questions.append(QuestionScores(question, question_windows, []))
                windows.extend(question_windows)
            scores.append(doc_scores)
        return scores, windows

    def _decode(
        self, text: str, context: ContextPieces, question: QuestionScores
    ) -> Tuple[List[Dict[str, Any]], Optional[float], Set[int]]:
        """The ranked answers and the no-answer score of one question, as the
        HF pipeline decodes them: per window, a softmax over the context
        positions and ``<s>``, the best start × end products within
        ``max_answer_len``, answers with the same text (ignoring case) from
        several windows summed. Also the ranks of HF's fillers: where fewer
        than ``top_k`` spans have a probability (e.g. a whitespace-only
        context has none), HF fills the list with spans of probability 0
        (from ``<s>``, ending before they start, or too long), as the empty
        answer for ``<s>`` to ``<s>`` and other texts for the others."""
        ops = self.model.ops
        answers: List[Dict[str, Any]] = []
        filler_ids: Set[int] = set()
        null_score = 1000000.0
        for window, (start_logits, end_logits) in zip(question.windows, question.logits):
            allowed = numpy.zeros(len(window.ids), dtype=bool)
            allowed[0] = True
            allowed[window.context_offset : window.context_offset + window.n_context] = True
            start = NUMPY_OPS.softmax(numpy.where(allowed, ops.to_numpy(start_logits), _MASKED))
            end = NUMPY_OPS.softmax(numpy.where(allowed, ops.to_numpy(end_logits), _MASKED))
            null_score = min(null_score, float(start[0] * end[0]))
            start[0] = end[0] = 0.0
            for s, e, score in _best_spans(start, end, self.top_k, self.max_answer_len, allowed):
                if s == 0 or e == 0:
                    # <s> has no word: HF falls back to the pieces' own offsets,
                    # (0, 0) for <s>.
                    char_start = context.offsets[window.piece_at(s)][0] if s else 0
                    char_end = context.offsets[window.piece_at(e)][1] if e else 0
                else:
                    char_start, char_end = window.answer_chars(context, s, e)
                answer_text = text[char_start:char_end]
                same = [a for a in answers if a["answer"].lower() == answer_text.lower()]
                if same:
                    same[0]["score"] += score
                else:
                    answers.append({
                        "score": score, "start": char_start, "end": char_end,
                        "answer": answer_text,
                    })
                    if score == 0.0:
                        filler_ids.add(id(answers[-1]))
        if self.handle_impossible_answer:
            answers.append({"score": null_score, "start": 0, "end": 0, "answer": ""})
        ranked = sorted(answers, key=lambda a: a["score"], reverse=True)[: self.top_k]
        fillers = {
            rank for rank, answer in enumerate(ranked)
            if id(answer) in filler_ids and answer["score"] == 0.0
        }
        return ranked, null_score if self.handle_impossible_answer else None, fillers


def _fill_logits(scores: List[DocScores], logits: List[Tuple[Floats1d, Floats1d]]) -> None:
    """Hand each question the logits of its windows (in ``_encode`` order)."""
    position = 0
    for doc_scores in scores:
        for question in doc_scores.questions:
            question.logits = logits[position : position + len(question.windows)]
            position += len(question.windows)


def _best_spans(
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


def _gold_pieces(question: Question, context: ContextPieces) -> Optional[Tuple[int, int]]:
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


def _gold_positions(gold: Optional[Tuple[int, int]], window: PairWindow) -> Tuple[int, int]:
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


def _answer_span(doc: Doc, answer: Dict[str, Any], qid: str, rank: int) -> Optional[Span]:
    """The tokens an answer's visible characters touch (``expand``)."""
    start, end = trim_span(doc.text, answer["start"], answer["end"])
    if start == end:
        return None
    return doc.char_span(start, end, label=qid, alignment_mode="expand", span_id=rank)
