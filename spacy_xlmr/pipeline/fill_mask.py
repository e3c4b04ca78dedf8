"""``xlmr_fill_mask``: predict the tokens behind ``<mask>`` with the masked-LM
head of ``XLMRobertaForMaskedLM`` on the shared encoder, and adapt the
encoder to new text with the masked-LM objective in ``spacy train``.

Write masks as ``<mask>`` in the text: the component adds a tokenizer special
case so that ``<mask>`` is one spaCy token. Tokenizers without special cases
(``zh``, ``vi``) may split it; each mask is still one ``<mask>`` piece for the
encoder, which reads the doc's text, so the predictions are the same. For each
mask, ``top_k`` predictions ``{"token", "token_str", "score", "sequence"}`` go
to ``doc._.fill_mask`` (a list per mask, in text order) and, where one token
is the whole ``<mask>``, to its ``token._.fill_mask``. A doc without masks gets
an empty list. The encoder's tokenizer must have ``<mask>`` as its mask token.

Training needs raw text only (``spacy.PlainTextCorpus.v1``,
``spacy.JsonlCorpus.v1`` or ``.spacy`` files): each update masks
``mask_probability`` of the pieces (80% ``<mask>``, 10% a random piece, 10%
unchanged) and trains the head and the shared encoder to predict them. The
scores are ``mlm_acc`` (masked-piece accuracy) and ``mlm_ppl`` (perplexity),
on masks drawn with a fixed seed so that evaluations are comparable.
"""
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.symbols import ORTH
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats2d, Ints1d

from .. import hf
from ..encoder.data import TransformerData
from ..encoder.listener import encoder_of, maybe_encoder_of
from ..errors import Errors
from ..heads.masked_lm import (
    HEAD_WEIGHT_PREFIXES,
    build_head_module,
    mask_logits,
    masked_lm_logits,
)
from ..heads.losses import cross_entropy
from ..mlm.masking import MASK
from ..mlm.metrics import score_mlm
from ..mlm.predictions import fill_masks, input_ids, mask_tokens, target_ids
from .head_pipe import HeadPipe, add_encoder_if_missing

DEFAULT_FILL_MASK_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy-xlmr.MaskedLM.v2"

[model.tok2vec]
@architectures = "spacy-xlmr.EncoderOutput.v1"
upstream = "*"
"""
)["model"]


@Language.factory(
    "xlmr_fill_mask",
    assigns=["doc._.fill_mask", "token._.fill_mask"],
    default_config={
        "model": DEFAULT_FILL_MASK_MODEL,
        "top_k": 5,
        "targets": None,
        "mask_probability": 0.15,
        "scorer": {"@scorers": "spacy-xlmr.mlm_scorer.v1"},
    },
    default_score_weights={"mlm_acc": 1.0, "mlm_ppl": None},
)
def make_xlmr_fill_mask(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[Floats2d]],
    top_k: int,
    targets: Optional[List[str]],
    mask_probability: float,
    scorer: Optional[Callable],
) -> "XLMRFillMask":
    """Fill ``<mask>`` tokens; train with the masked-LM objective.

    top_k (int): Predictions per mask.
    targets (Optional[List[str]]): Restrict the candidates to these pieces,
        resolved as the HF pipeline's ``targets``: a piece of the vocabulary
        as written ("de" and "▁de" differ), else the first piece of the
        target's tokenization, with a warning.
    mask_probability (float): Share of pieces masked in training.
    scorer (Optional[Callable]): Scores the model on masked copies of the
        examples' texts; called with the examples and the keywords ``model``
        and ``mask_probability``. Default ``spacy-xlmr.mlm_scorer.v1``
        (``mlm_acc``, ``mlm_ppl``).
    """
    add_encoder_if_missing(nlp, model)
    # "<mask>" as one spaCy token where the tokenizer takes special cases (zh
    # and vi have none); the encoder finds the mask piece in the text anyway.
    add_special_case = getattr(nlp.tokenizer, "add_special_case", None)
    if add_special_case is not None:
        add_special_case(MASK, [{ORTH: MASK}])
    return XLMRFillMask(
        nlp.vocab, model, name=name, top_k=top_k, targets=targets,
        mask_probability=mask_probability, scorer=scorer,
    )


def make_mlm_scorer() -> Callable:
    """``spacy-xlmr.mlm_scorer.v1``: :func:`score_mlm`."""
    return score_mlm


class XLMRFillMask(HeadPipe):
    """Top-k predictions for ``<mask>`` tokens, and the masked-LM objective."""

    hf_task = "fill-mask"
    hf_weight_prefixes = HEAD_WEIGHT_PREFIXES

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], List[Floats2d]],
        name: str = "xlmr_fill_mask",
        *,
        top_k: int = 5,
        targets: Optional[Sequence[str]] = None,
        mask_probability: float = 0.15,
        scorer: Optional[Callable] = score_mlm,
    ) -> None:
        if top_k < 1:
            raise ValueError(Errors.TOP_K_TOO_SMALL.format(top_k=top_k))
        if not 0 < mask_probability < 1:
            raise ValueError(
                Errors.MASK_PROBABILITY_OUT_OF_RANGE.format(mask_probability=mask_probability)
            )
        super().__init__(vocab, model, name, scorer=scorer, cfg={"vocab_size": None, "eps": None})
        self.top_k = top_k
        self.targets = list(targets) if targets else None
        self.mask_probability = mask_probability
        self._target_ids: Optional[numpy.ndarray] = None  # computed on first use

    def predict(self, docs: Iterable[Doc]) -> "MaskScores":
        """Vocabulary logits, one row per mask of each doc, and the encoder
        output they come from."""
        docs = list(docs)
        trf_datas = self.model.get_ref("tok2vec").predict(docs)
        return MaskScores(mask_logits(self.model, trf_datas), trf_datas)

    def set_annotations(self, docs: Iterable[Doc], scores: "MaskScores") -> None:
        """Write the top-k predictions of every mask."""
        tokenizer = encoder_of(self.model).tokenizer
        self._check_tokenizer(tokenizer)
        candidates = self._candidate_ids(tokenizer)
        for doc, doc_logits, trf_data in zip(docs, scores.logits, scores.trf_datas):
            doc_logits = self.model.ops.to_numpy(doc_logits)
            ids = input_ids(doc, trf_data, tokenizer) if len(doc_logits) else []
            results = fill_masks(doc_logits, ids, tokenizer, k=self.top_k, candidates=candidates)
            tokens = mask_tokens(doc, trf_data, tokenizer.mask_token_id)
            for i, predictions in enumerate(results):
                mask_token = tokens[i]
                if mask_token is not None:
                    mask_token._.fill_mask = predictions
            doc._.fill_mask = results

    def _scores_for_update(self, examples: List[Example]) -> Optional[Tuple[Any, Callable]]:
        """Mask the pieces of the examples' texts: the logits at the masked
        pieces and their original ids. The gradients reach the head, the
        encoder and its word embeddings (the tied decoder); the encoder
        component applies its part at its ``finish_update``, as it does for
        every head."""
        docs = [eg.predicted for eg in examples]
        if not docs:
            return None
        rng = numpy.random.default_rng(numpy.random.randint(2**31))
        logits, targets, backprop = masked_lm_logits(
            self.model, docs, rng, probability=self.mask_probability, is_train=True
        )
        if len(targets) == 0:
            return None
        return (logits, targets), backprop

    def get_loss(
        self, examples: Iterable[Example], scores: Tuple[Floats2d, Ints1d]
    ) -> Tuple[float, Floats2d]:
        """Cross-entropy of the logits of the masked pieces against their
        original ids (``scores``: logits and ids from ``masked_lm_logits``),
        averaged over the pieces."""
        logits, targets = scores
        loss, d_logits = cross_entropy(self.model.ops, logits, targets)
        return loss / len(targets), d_logits / len(targets)

    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        """Score the model with the component's ``scorer`` (default
        ``spacy-xlmr.mlm_scorer.v1``: masked-piece accuracy ``mlm_acc`` and
        perplexity ``mlm_ppl`` on masked copies of the examples' texts, the
        masks drawn with a fixed seed). The scorer gets the component's
        ``model`` and ``mask_probability`` as keywords."""
        validate_examples(examples, "XLMRFillMask.score")
        return super().score(
            examples, **{"model": self.model, "mask_probability": self.mask_probability, **kwargs}
        )

    def _init_settings(
        self, get_examples: Callable[[], Iterable[Example]], hf_checkpoint: Optional[str]
    ) -> None:
        """The head's sizes from the encoder (and ``hf_checkpoint``, a
        fine-tuned or pretrained ``XLMRobertaForMaskedLM``, e.g.
        ``xlm-roberta-base`` itself); the tokenizer and targets are checked."""
        self._report_data_problems(
            get_examples,
            lambda eg: [] if eg.reference.text.strip() else ["no text to mask"],
            report_all=False,
        )
        config = hf.load_config(hf_checkpoint) if hf_checkpoint else None
        encoder = encoder_of(self.model)
        encoder_config = encoder.config
        self.cfg["vocab_size"] = encoder_config.vocab_size
        self.cfg["eps"] = (config or encoder_config).layer_norm_eps
        self._check_tokenizer(encoder.tokenizer)
        self._candidate_ids(encoder.tokenizer)  # check the targets now

    def add_label(self, label: str) -> int:
        raise NotImplementedError(Errors.FILL_MASK_NO_LABELS.format(component=self.name))

    def _check_loaded(self) -> None:
        """After loading, check the tokenizer of the encoder this head is
        connected to, if it is loaded already (else ``set_annotations``
        checks it)."""
        encoder = maybe_encoder_of(self.model)
        if encoder is not None and encoder.is_loaded:
            self._check_tokenizer(encoder.tokenizer)

    def _check_tokenizer(self, tokenizer) -> None:
        """Refuse a tokenizer that would find no ``<mask>`` in the texts."""
        if tokenizer.mask_token_id is None:
            problem = "has no mask token"
        elif tokenizer.mask_token != MASK:
            problem = f"has the mask token '{tokenizer.mask_token}', not '{MASK}'"
        else:
            return
        raise ValueError(
            Errors.TOKENIZER_WITHOUT_MASK.format(component=self.name, problem=problem, mask=MASK)
        )

    def _build_head(self, keep: bool = False) -> None:
        build_head_module(self.model, self.cfg["vocab_size"], self.cfg["width"], self.cfg["eps"])

    def _candidate_ids(self, tokenizer) -> Optional[numpy.ndarray]:
        """Vocabulary ids of ``targets`` (None: the whole vocabulary),
        resolved once, as HF's fill-mask pipeline resolves them
        (``target_ids``)."""
        if not self.targets or self._target_ids is not None:
            return self._target_ids
        self._target_ids = target_ids(tokenizer, self.targets, self.name)
        return self._target_ids


class MaskScores(NamedTuple):
    """What ``predict`` gives ``set_annotations``: the logits of each doc's
    masks and its encoder output."""

    logits: List[Floats2d]
    trf_datas: List[TransformerData]
