"""``xlmr_textcat``: text classification with the head of
``XLMRobertaForSequenceClassification`` on the shared XLM-R encoder.

``exclusive_classes = true``: one label per doc, softmax over the labels;
``false``: independent labels, a sigmoid each (as HF's
``multi_label_classification`` problem type). With a single label the
sigmoid is used either way. Scores go to ``doc.cats``.
"""
from functools import partial
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats2d

from .. import hf
from ..errors import Errors
from ..heads.losses import binary_cross_entropy, soft_cross_entropy
from ..heads.sequence_classification import HEAD_WEIGHT_PREFIXES, SequenceClassificationHead
from ..heads.torch_head import build_head_module
from .head_pipe import HeadPipe, add_encoder_if_missing

DEFAULT_TEXTCAT_MODEL = """
[model]
@architectures = "spacy-xlmr.SequenceClassifier.v2"
pooling = "cls"
dropout = 0.1
grad_factor = 1.0

[model.tok2vec]
@architectures = "spacy-xlmr.EncoderOutput.v1"
upstream = "*"
"""
DEFAULT_TEXTCAT_MODEL = Config().from_str(DEFAULT_TEXTCAT_MODEL)["model"]
MULTI_LABEL_PROBLEM = "multi_label_classification"


@Language.factory(
    "xlmr_textcat",
    assigns=["doc.cats"],
    default_config={
        "model": DEFAULT_TEXTCAT_MODEL,
        "exclusive_classes": True,
        "threshold": 0.5,
        "scorer": {"@scorers": "spacy-xlmr.textcat_scorer.v1"},
    },
    default_score_weights={
        "cats_score": 1.0,
        "cats_score_desc": None,
        "cats_micro_p": None,
        "cats_micro_r": None,
        "cats_micro_f": None,
        "cats_macro_p": None,
        "cats_macro_r": None,
        "cats_macro_f": None,
        "cats_macro_auc": None,
        "cats_f_per_type": None,
    },
)
def make_xlmr_textcat(
    nlp: Language,
    name: str,
    model: Model[List[Doc], Floats2d],
    exclusive_classes: bool,
    threshold: float,
    scorer: Optional[Callable],
) -> "XLMRTextCategorizer":
    """Text classification on XLM-R. If the pipeline has no encoder yet, an
    ``xlmr_transformer`` named "transformer" is added first.

    exclusive_classes (bool): One label per doc (softmax) or independent labels
        (sigmoid).
    threshold (float): Score above which a label counts as predicted when
        scoring independent labels.
    """
    add_encoder_if_missing(nlp, model)
    return XLMRTextCategorizer(
        nlp.vocab, model, name=name, exclusive_classes=exclusive_classes,
        threshold=threshold, scorer=scorer,
    )


def score_textcat(
    examples: Iterable[Example], *, exclusive_classes: bool = True, **kwargs: Any
) -> Dict[str, Any]:
    """``cats_score``, ``cats_macro_f``, ``cats_macro_auc``, per-label P/R/F."""
    return Scorer.score_cats(examples, "cats", multi_label=not exclusive_classes, **kwargs)


def make_textcat_scorer() -> Callable:
    return score_textcat


class XLMRTextCategorizer(HeadPipe):
    """Exclusive or multi-label text classification on the shared encoder."""

    hf_task = "text-classification"
    hf_weight_prefixes = HEAD_WEIGHT_PREFIXES

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], Floats2d],
        name: str = "xlmr_textcat",
        *,
        exclusive_classes: bool = True,
        threshold: float = 0.5,
        scorer: Optional[Callable] = score_textcat,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(Errors.THRESHOLD_OUT_OF_RANGE.format(threshold=threshold))
        super().__init__(
            vocab, model, name, scorer=scorer,
            cfg={"exclusive_classes": exclusive_classes, "threshold": threshold},
        )

    @property
    def labels(self) -> Tuple[str, ...]:
        """The labels, in the order of the head's outputs."""
        return tuple(self.cfg["labels"])

    @property
    def uses_sigmoid(self) -> bool:
        return not self.cfg["exclusive_classes"] or len(self.labels) == 1

    def predict(self, docs: Iterable[Doc]) -> Floats2d:
        """Label logits, one row per doc."""
        return self.model.predict(list(docs))

    def set_annotations(self, docs: Iterable[Doc], logits: Floats2d) -> None:
        """Write the label probabilities to ``doc.cats``."""
        probs = self.model.ops.to_numpy(self._activate(logits))
        for doc, row in zip(docs, probs):
            doc.cats.update({label: float(p) for label, p in zip(self.labels, row)})

    def get_loss(self, examples: Iterable[Example], logits: Floats2d) -> Tuple[float, Floats2d]:
        """Cross-entropy (softmax) or binary cross-entropy (sigmoid) against
        the gold ``cats``, averaged over the docs that have them; labels
        missing from a doc's ``cats`` don't count, nor do docs without a
        positive label when classes are exclusive. The gradient is with respect to the logits."""
        ops = self.model.ops
        examples = list(examples)
        truths = ops.alloc2f(len(examples), len(self.labels))
        known = ops.alloc2f(len(examples), len(self.labels))
        for i, eg in enumerate(examples):
            for j, label in enumerate(self.labels):
                if label in eg.reference.cats:
                    truths[i, j] = eg.reference.cats[label]
                    known[i, j] = 1.0
        if not self.uses_sigmoid:
            # A doc with an incomplete label set, or no positive label, can't
            # be scored exclusively (its softmax gradient would push every
            # label down while its loss reads 0).
            # (thinc's stubs lack min's keepdims)
            known[:] = (
                known.min(axis=1, keepdims=True)  # type: ignore[call-arg]
                * (truths.sum(axis=1, keepdims=True) > 0)
            )
        # Average over the docs that have gold cats (in a multi-task batch,
        # docs annotated only for other components don't dilute the gradient).
        # (thinc's stubs type array comparisons as bool)
        n_annotated = max(int((known.max(axis=1) > 0).sum()), 1)  # type: ignore[attr-defined]
        loss_of = binary_cross_entropy if self.uses_sigmoid else soft_cross_entropy
        loss, d_logits = loss_of(ops, logits, truths, known)
        return loss / n_annotated, d_logits / n_annotated

    def _init_labels(
        self,
        get_examples: Callable[[], Iterable[Example]],
        labels: Optional[Sequence[str]],
        hf_checkpoint: Optional[str],
    ) -> None:
        """The labels given, or read from the examples; with ``hf_checkpoint``
        (an ``XLMRobertaForSequenceClassification``) those of its ``id2label``,
        in its output order (labels given must be the same, in any order)."""
        if hf_checkpoint is not None:
            checkpoint_labels = self._checkpoint_labels(hf_checkpoint)
            labels = self._checkpoint_labels_to_use(labels, checkpoint_labels, hf_checkpoint)
        else:
            labels = self._initial_labels(labels, get_examples, lambda eg: set(eg.reference.cats))
        self.cfg["labels"] = list(labels)

    def _init_settings(
        self, get_examples: Callable[[], Iterable[Example]], hf_checkpoint: Optional[str]
    ) -> None:
        # Docs without cats may be data for other components, unless some have
        # cats; problems with the cats are reported even when every doc has them.
        self._report_data_problems(
            get_examples,
            lambda eg: [] if eg.reference.cats else ["no gold cats (left out of the loss)"],
            report_all=False,
        )
        self._report_data_problems(
            get_examples, partial(_cats_problems, self.cfg["labels"], self.cfg["exclusive_classes"])
        )

    def _activate(self, logits: Floats2d) -> Floats2d:
        if self.uses_sigmoid:
            return self.model.ops.sigmoid(logits)
        return self.model.ops.softmax(logits)

    def _build_head(self, keep: bool = False) -> None:
        build_head_module(
            self.model.get_ref("head"), SequenceClassificationHead,
            self.cfg["width"], len(self.cfg["labels"]), keep_weights=keep,
        )

    def _checkpoint_labels(self, checkpoint: str) -> List[str]:
        config = hf.load_config(checkpoint)
        multi_label = config.problem_type == MULTI_LABEL_PROBLEM
        if multi_label == self.cfg["exclusive_classes"]:
            wanted = "false" if multi_label else "true"
            raise ValueError(
                Errors.PROBLEM_TYPE_MISMATCH.format(
                    component=self.name, checkpoint=checkpoint,
                    problem_type=config.problem_type or "single_label_classification",
                    wanted=wanted,
                )
            )
        return hf.checkpoint_labels(checkpoint, self.name)


def _cats_problems(labels: List[str], exclusive: bool, eg: Example) -> List[str]:
    """What the head can't learn from, or learns wrongly, in ``eg``'s cats
    (other than having none)."""
    cats = eg.reference.cats
    if not cats or not exclusive:
        return []
    if any(label not in cats for label in labels):
        return ["only some of the labels in cats, with exclusive classes (left out of the loss)"]
    if not any(cats[label] for label in labels):
        return [
            "no positive label (every cat is 0), with exclusive classes (left out "
            "of the loss; set exclusive_classes = false if docs may have no label)"
        ]
    if sum(cats[label] >= 0.5 for label in labels) > 1:
        return [
            "more than one positive label, with exclusive classes (set "
            "exclusive_classes = false for multi-label data)"
        ]
    return []
