"""``xlmr_ner``: named entities from a token-classification head on XLM-R.

Each token is classified from its first piece (as Hugging Face token
classification heads are trained), the tag scores are decoded into valid,
non-overlapping entities on spaCy token boundaries (see ``entity_tags.py``),
and ``doc.ents`` is set. Each entity's confidence is in ``span._.ent_score``.
"""
from typing import Callable, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats2d

from .. import hf
from ..encoder.listener import REDUCE_FIRST
from ..errors import Errors
from ..heads.token_classification import HEAD_WEIGHT_PREFIXES, TokenClassificationHead
from ..heads.losses import cross_entropy
from ..heads.torch_head import build_head_module
from .head_pipe import HeadPipe, add_encoder_if_missing
from .entity_tags import (
    DECODERS,
    check_scheme,
    decode,
    gold_tags,
    labels_from_tags,
    make_tags,
    scheme_of,
)

DEFAULT_NER_MODEL = """
[model]
@architectures = "spacy-xlmr.TokenClassifier.v1"
dropout = 0.1

[model.tok2vec]
@architectures = "spacy-xlmr.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "spacy-xlmr.reduce_first.v1"
"""
DEFAULT_NER_MODEL = Config().from_str(DEFAULT_NER_MODEL)["model"]


@Language.factory(
    "xlmr_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "span._.ent_score"],
    default_config={
        "model": DEFAULT_NER_MODEL,
        "scheme": "BIO",
        "decoder": "viterbi",
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={
        "ents_f": 1.0,
        "ents_p": 0.0,
        "ents_r": 0.0,
        "ents_per_type": None,
    },
)
def make_xlmr_ner(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[Floats2d]],
    scheme: str,
    decoder: str,
    scorer: Optional[Callable],
) -> "XLMRNER":
    """Named entities from XLM-R. If the pipeline has no encoder yet, an
    ``xlmr_transformer`` named "transformer" is added first.

    scheme (str): "BIO" (as HF checkpoints) or "BILUO".
    decoder (str): "viterbi" (best valid tag sequence) or "greedy" (the HF
        token-classification pipeline's reading of the argmax tags).
    """
    add_encoder_if_missing(nlp, model)
    return XLMRNER(
        nlp.vocab, model, name=name, scheme=scheme, decoder=decoder, scorer=scorer
    )


class XLMRNER(HeadPipe):
    """Named entity recognition with a token-classification head."""

    hf_task = "token-classification"
    hf_weight_prefixes = HEAD_WEIGHT_PREFIXES

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], List[Floats2d]],
        name: str = "xlmr_ner",
        *,
        scheme: str = "BIO",
        decoder: str = "viterbi",
        scorer: Optional[Callable] = get_ner_prf,
    ) -> None:
        check_scheme(scheme)
        if decoder not in DECODERS:
            raise ValueError(
                Errors.UNKNOWN_DECODER.format(decoder=decoder, choices=", ".join(DECODERS))
            )
        super().__init__(vocab, model, name, scorer=scorer, cfg={"tags": []})
        # Settings, not state: they follow the config when a pipeline is loaded.
        self.scheme = scheme
        self.decoder = decoder

    @property
    def labels(self) -> Tuple[str, ...]:
        """The entity labels."""
        return tuple(self.cfg["labels"])

    @property
    def tags(self) -> Tuple[str, ...]:
        """The tags the head predicts, in the order of its outputs."""
        return tuple(self.cfg["tags"])

    def predict(self, docs: Iterable[Doc]) -> "TagScores":
        """Tag logits for each token of each doc, and which tokens have
        pieces (from the encoder output the logits are computed from)."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            logits = [self.model.ops.alloc2f(len(doc), len(self.tags)) for doc in docs]
            return TagScores(logits, [numpy.zeros(len(doc), dtype=bool) for doc in docs])
        # TokenClassifier.v1: chain(tok2vec, classifier); every listener
        # architecture is chain(encoder output, pooling).
        encoder_output, pooling = self.model.get_ref("tok2vec").layers
        trf_datas = encoder_output.predict(docs)
        logits = self.model.layers[-1].predict(pooling.predict(trf_datas))
        has_pieces = [self.model.ops.to_numpy(trf_data.align.lengths) > 0 for trf_data in trf_datas]
        return TagScores(logits, has_pieces)

    def set_annotations(self, docs: Iterable[Doc], scores: "TagScores") -> None:
        """Decode the scores into ``doc.ents`` and store each entity's
        confidence in ``span._.ent_score``. Entities already on the doc (e.g.
        from an ``entity_ruler``) are kept; predictions overlapping them are
        dropped; all other tokens are set to outside."""
        for doc, logits, has_pieces in zip(docs, scores.logits, scores.has_pieces):
            if len(doc) == 0:
                continue
            probs = self.model.ops.to_numpy(self.model.ops.softmax(logits))
            preset = list(doc.ents)
            taken = {i for ent in preset for i in range(ent.start, ent.end)}
            predicted = []
            for start, end, label, score in decode(probs, self.tags, has_pieces, self.decoder):
                if not taken.intersection(range(start, end)):
                    predicted.append((Span(doc, start, end, label), score))
            doc.set_ents(preset + [span for span, _ in predicted], default="outside")
            for span, score in predicted:
                span._.ent_score = score

    def get_loss(
        self, examples: Iterable[Example], scores: List[Floats2d]
    ) -> Tuple[float, List[Floats2d]]:
        """Softmax cross-entropy of the tags against the gold entities aligned
        to the predicted tokens, averaged over the tokens that have a gold tag
        (as HF token classification); tokens with missing or misaligned gold
        tags don't count. The gradient is with respect to the logits."""
        ops = self.model.ops
        tag_ids = {tag: i for i, tag in enumerate(self.tags)}
        scheme = scheme_of(self.tags)
        golds = []
        for eg in examples:
            ids = []
            tags = gold_tags(eg.get_aligned_ner(), scheme)
            for token, tag in zip(eg.predicted, tags):
                if tag is not None and tag not in tag_ids:
                    raise ValueError(
                        Errors.GOLD_TAG_UNKNOWN.format(component=self.name, tag=tag, label=tag[2:])
                    )
                # Whitespace tokens have no pieces, hence no evidence to learn from.
                ids.append(-1 if tag is None or token.is_space else tag_ids[tag])
            golds.append(ops.xp.asarray(ids, dtype="int64"))
        n_gold = max(sum(int((gold >= 0).sum()) for gold in golds), 1)
        loss = 0.0
        d_scores = []
        for logits, gold in zip(scores, golds):
            rows = ops.xp.nonzero(gold >= 0)[0]
            doc_loss, d_rows = cross_entropy(ops, logits[rows], gold[rows])
            d_logits = ops.alloc2f(*logits.shape)
            d_logits[rows] = d_rows
            loss += doc_loss
            d_scores.append(d_logits / n_gold)
        return loss / n_gold, d_scores

    def _init_labels(
        self,
        get_examples: Callable[[], Iterable[Example]],
        labels: Optional[Sequence[str]],
        hf_checkpoint: Optional[str],
    ) -> None:
        """The labels given, or read from the examples, and their tags in
        ``scheme``; with ``hf_checkpoint`` (an ``XLMRobertaForTokenClassification``
        that reads each word's first piece) the tags of its ``id2label``."""
        if hf_checkpoint is not None:
            if not any(node.name == REDUCE_FIRST for node in self.model.walk()):
                raise ValueError(Errors.POOLING_NOT_FIRST_PIECE.format(component=self.name))
            tags = _checkpoint_tags(hf_checkpoint, self.name)
            labels = self._checkpoint_labels_to_use(labels, labels_from_tags(tags), hf_checkpoint)
        else:
            labels = self._initial_labels(
                labels, get_examples, lambda eg: {ent.label_ for ent in eg.reference.ents}
            )
            tags = make_tags(labels, self.scheme)
        self.cfg["labels"] = list(labels)
        self.cfg["tags"] = list(tags)

    def _init_settings(
        self, get_examples: Callable[[], Iterable[Example]], hf_checkpoint: Optional[str]
    ) -> None:
        self._report_data_problems(get_examples, _entity_problems)

    def _label_added(self, label: str) -> None:
        if self.cfg["tags"]:  # keep the scheme of the existing tags (BIO for IOB1)
            scheme = "BILUO" if scheme_of(self.tags) == "BILUO" else "BIO"
            self.cfg["tags"].extend(make_tags([label], scheme)[1:])

    def _build_head(self, keep: bool = False) -> None:
        build_head_module(
            self.model.get_ref("head"), TokenClassificationHead,
            self.cfg["width"], len(self.cfg["tags"]), keep_weights=keep,
        )


class TagScores(NamedTuple):
    """What ``XLMRNER.predict`` gives ``set_annotations``, per doc."""

    logits: List[Floats2d]  # (tokens, tags)
    has_pieces: List[numpy.ndarray]  # per token; a token without pieces is in no entity


def _checkpoint_tags(checkpoint: str, component: str) -> List[str]:
    tags = hf.checkpoint_labels(checkpoint, component)
    if not hf.has_label_names(tags):
        raise ValueError(Errors.NO_ENTITY_LABELS.format(checkpoint=checkpoint))
    return tags


def _entity_problems(eg: Example) -> List[str]:
    """Gold entities the predicted doc's tokens can't express: they are left
    out of the loss (their tokens count as unannotated)."""
    aligned = eg.get_aligned_spans_y2x(eg.reference.ents, allow_overlap=True)
    if len(aligned) < len(eg.reference.ents):
        return [
            "gold entities that don't start and end on the tokens of the "
            "predicted doc (left out of the loss; use the tokenizer that made "
            "the data, or [corpora.train] gold_preproc = true)"
        ]
    return []
