"""``xlmr_qa``: extractive question answering with the head of
``XLMRobertaForQuestionAnswering`` on the weights of the shared encoder.

Questions go in ``doc._.qa_questions`` (see ``qa/data.py``; or use
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

An answer's ``Span`` covers every spaCy token its characters touch, so it may
be longer than the answer (see ``qa/answers.py``); scoring uses the answer
text, not the span. Pair windows, decoding, training targets and the SQuAD
metrics are in ``spacy_xlmr/qa/``; this module is the spaCy component.
"""
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from spacy.util import minibatch
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats1d

from ..encoder.listener import encoder_of, maybe_encoder_of
from ..errors import Errors
from ..heads.question_answering import HEAD_WEIGHT_PREFIXES, QuestionAnsweringHead, qa_logits
from ..heads.torch_head import build_head_module
from ..qa.answers import answer_span, decode_answers
from ..qa.data import EXTENSION, Question, get_questions
from ..qa.gold import answer_problems, qa_loss
from ..qa.metrics import score_squad
from ..qa.pairs import DocScores, PairWindow, encode_pairs, encode_questions, fill_logits
from ..qa.settings import SETTINGS, check_settings
from .head_pipe import HeadPipe, add_encoder_if_missing

DEFAULT_QA_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy-xlmr.QuestionAnswerer.v2"

[model.tok2vec]
@architectures = "spacy-xlmr.EncoderOutput.v1"
upstream = "*"
"""
)["model"]


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


class XLMRQuestionAnswerer(HeadPipe):
    """Answers to ``doc._.qa_questions`` as spans of the doc."""

    hf_task = "question-answering"
    hf_weight_prefixes = HEAD_WEIGHT_PREFIXES

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
        super().__init__(vocab, model, name, scorer=scorer)
        self.make_doc = make_doc
        self.spans_key = spans_key
        self.top_k = top_k
        self.max_seq_len = max_seq_len
        self.doc_stride = doc_stride
        self.max_question_len = max_question_len
        self.max_answer_len = max_answer_len
        self.handle_impossible_answer = handle_impossible_answer
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
                raise ValueError(Errors.ASK_NEEDS_DOC.format(component=self.name))
            doc = self.make_doc(doc_or_text)
        elif isinstance(doc_or_text, Doc):
            doc = doc_or_text
        else:
            raise TypeError(
                Errors.ASK_BAD_DOC_TYPE.format(
                    component=self.name, type_name=type(doc_or_text).__name__
                )
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
                    Errors.ASK_BAD_QUESTION_TYPE.format(
                        component=self.name, type_name=type(question).__name__
                    )
                )
        doc._.set(EXTENSION, asked)
        return self(doc)

    def predict(self, docs: Iterable[Doc]) -> List[DocScores]:
        """Start and end logits of every question's windows."""
        docs = list(docs)
        questions = [get_questions(doc) for doc in docs]
        scores, windows = self._encode(docs, questions)
        logits, _ = qa_logits(self.model, windows, False)
        fill_logits(scores, logits)
        return scores

    def set_annotations(self, docs: Iterable[Doc], scores: List[DocScores]) -> None:
        """Write each question's answers to ``doc._.qa_answers`` and spans."""
        for doc, doc_scores in zip(docs, scores):
            answers: Dict[str, List[Dict[str, Any]]] = {}
            null_scores: Dict[str, float] = {}
            spans = []
            for question in doc_scores.questions:
                qid = question.question["id"]
                ranked, null_score = decode_answers(
                    self.model.ops, doc.text, doc_scores.context, question, top_k=self.top_k,
                    max_answer_len=self.max_answer_len,
                    handle_impossible_answer=self.handle_impossible_answer,
                )
                answers[qid] = [answer.as_dict() for answer in ranked]
                if null_score is not None:
                    null_scores[qid] = null_score
                for rank, answer in enumerate(ranked):
                    if answer.kind != "span":
                        break  # the no-answer or HF's fillers: answers below aren't spans
                    span = answer_span(doc, answer, qid, rank)
                    if span is not None:
                        spans.append(span)
            doc._.qa_answers = answers
            doc._.qa_null_scores = null_scores if self.handle_impossible_answer else None
            doc.spans[self.spans_key] = spans

    def _scores_for_update(self, examples: List[Example]) -> Optional[Tuple[Any, Callable]]:
        """The start and end logits of the windows of the reference docs'
        questions (``doc._.qa_questions`` of ``eg.reference``; the first
        answer of each is the gold). The gradients reach the head and the
        shared encoder."""
        questions = [get_questions(eg.reference) for eg in examples]
        scores, windows = self._encode([eg.predicted for eg in examples], questions)
        if not windows:
            return None
        logits, backprop = qa_logits(self.model, windows, True)
        fill_logits(scores, logits)
        return scores, backprop

    def get_loss(
        self, examples: Iterable[Example], scores: List[DocScores]
    ) -> Tuple[float, List[Tuple[Floats1d, Floats1d]]]:
        """Cross-entropy of the start and of the end position of the first
        gold answer in each window (``<s>`` where the window doesn't hold it
        whole, or the question is unanswerable), averaged as in
        ``XLMRobertaForQuestionAnswering``: the mean of the two over windows."""
        return qa_loss(self.model.ops, scores)

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

    def _init_settings(
        self, get_examples: Callable[[], Iterable[Example]], hf_checkpoint: Optional[str]
    ) -> None:
        """Check the settings against the encoder; report training questions
        the head can't learn from."""
        encoder_of(self.model).check_loaded()
        self._report_data_problems(get_examples, self._training_problems, report_all=False)
        self._check_settings()

    def _check_loaded(self) -> None:
        """After loading, check the settings against the loaded encoder."""
        self._check_settings()

    def add_label(self, label: str) -> int:
        raise NotImplementedError(Errors.QA_NO_LABELS.format(component=self.name))

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
        problems.update(answer_problems(doc_scores, self.max_answer_len))
        return sorted(problems)

    def _check_settings(self) -> None:
        """Refuse settings the pairs can't be cut with, naming the allowed
        range. Run wherever they can change: at construction (the config,
        also one overridden at ``spacy.load``), after loading, at
        ``initialize`` and before every pass (attributes set in between).
        The encoder's longest input is checked once it is loaded."""
        check_settings(
            self.name, {option: getattr(self, option) for option in SETTINGS},
            self._encoder_positions,
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
        return encode_pairs(
            encoder.tokenizer, [doc.text for doc in docs], questions,
            max_question_len=self.max_question_len, max_seq_len=self.max_seq_len,
            doc_stride=self.doc_stride,
        )
