"""What every XLM-R head component shares: the ``initialize`` flow (labels,
encoder width, head, HF import), data reports, labels added later, and
loading a head whose torch module is rebuilt from the component's cfg before
its weights are read. Also how a head's factory and loading find the encoder
component it listens to."""
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union, cast

import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline.trainable_pipe import TrainablePipe
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Model, Optimizer, set_dropout_rate

from .. import hf
from ..encoder.interface import Encoder
from ..encoder.listener import XLMRListener
from ..encoder.own_encoder import is_own_encoder, load_own_encoders
from ..errors import Errors, Warnings
from ..heads.torch_head import load_head_state
from ..storage import (
    ENCODER_DIGEST,
    check_saved_together,
    read_cfg,
    read_component_file,
    replacing_directory,
)
from .drop_in import LISTENER_CLASSES
from .encoder_links import ENCODER_FACTORIES
from .transformer import ADDED_FOR_HEAD, XLMRTransformer


class HeadPipe(TrainablePipe):
    """Base class of the head components. Subclasses keep ``cfg["labels"]``
    and ``cfg["width"]``, name the HF task whose heads they import
    (``hf_task``) and their weight names (``hf_weight_prefixes``), and
    implement ``_build_head``; heads with labels implement ``_init_labels``."""

    # The Hugging Face task (``hf.HEAD_TASKS``) whose fine-tuned heads it imports.
    hf_task: str = ""
    # The keys of the HF class's state dict that hold the head's weights.
    hf_weight_prefixes: Tuple[str, ...] = ()
    # The loss is a mean over the batch (as in HF), not a sum as in spaCy's own
    # components: data-parallel training averages these gradients over ranks.
    loss_reduction: str = "mean"

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str,
        *,
        scorer: Optional[Callable],
        cfg: Optional[Dict[str, Any]] = None,
    ) -> None:
        """The component's ``cfg`` holds its labels and the encoder's width
        (set at ``initialize``), and what ``cfg`` adds."""
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {"labels": [], "width": None, **(cfg or {})}

    @property
    def label_data(self) -> List[str]:
        return list(self.cfg["labels"])

    def add_label(self, label: str) -> int:
        """Add a label; an initialized head grows new outputs (the others
        keep their weights)."""
        if not isinstance(label, str):
            raise ValueError(Errors.LABEL_NOT_A_STRING.format(label=label))
        if label in self.cfg["labels"]:
            return 0
        self.cfg["labels"].append(label)
        self._label_added(label)
        if self.cfg["width"] is not None:
            self._build_head(keep=True)
        return 1

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
        hf_checkpoint: Optional[str] = None,
    ) -> None:
        """Create the head: its labels, its width (the encoder's), and with
        ``hf_checkpoint`` its weights.

        labels (Sequence[str]): The labels of a head that has them; by default
            read from the examples, or those of ``hf_checkpoint``.
        hf_checkpoint (str): Hub name or directory of a checkpoint fine-tuned
            for ``hf_task`` (its class in ``hf.HEAD_TASKS``), whose head (and
            labels) to import; use the same checkpoint as the encoder's ``name``.
        """
        if hf_checkpoint is not None:
            self._check_hf_head(hf_checkpoint)
        self._init_labels(get_examples, labels, hf_checkpoint)
        self.cfg["width"] = self._encoder_width()
        self._init_settings(get_examples, hf_checkpoint)
        self._build_head()
        if hf_checkpoint is not None:
            warn_if_other_encoder(nlp, hf_checkpoint, self.name)
            load_head_state(
                self.model.get_ref("head"),
                hf.load_head_state_dict(hf_checkpoint, self.hf_weight_prefixes),
            )

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch of examples: spaCy's template (scores and their
        backprop, ``get_loss``, backprop, ``finish_update``), with the
        training scores from ``_scores_for_update``."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        validate_examples(examples, f"{type(self).__name__}.update")
        examples = list(examples)
        set_dropout_rate(self.model, drop)
        forward = self._scores_for_update(examples)
        if forward is None:
            return losses
        scores, backprop = forward
        loss, d_scores = self.get_loss(examples, scores)
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def _scores_for_update(self, examples: List[Example]) -> Optional[Tuple[Any, Callable]]:
        """The training scores of the examples and the callback taking their
        gradient, or None when there is nothing to learn from. By default the
        model's output on the predicted docs (none without any tokens)."""
        docs = [eg.predicted for eg in examples]
        if not any(len(doc) for doc in docs):
            return None
        return self.model.begin_update(docs)

    def _init_labels(
        self,
        get_examples: Callable[[], Iterable[Example]],
        labels: Optional[Sequence[str]],
        hf_checkpoint: Optional[str],
    ) -> None:
        """Set ``cfg["labels"]`` (and what follows from them) at
        ``initialize``. Heads without labels refuse them."""
        if labels is not None:
            raise ValueError(Errors.TAKES_NO_LABELS.format(component=self.name))

    def _checkpoint_labels_to_use(
        self, labels: Optional[Sequence[str]], checkpoint_labels: List[str], checkpoint: str
    ) -> List[str]:
        """The labels of a checkpoint's head, in its output order; ``labels``
        (given, in any order) and the labels added so far must be among them
        and cover them."""
        wanted = set(labels if labels is not None else checkpoint_labels)
        if wanted != set(checkpoint_labels) or not set(self.cfg["labels"]) <= wanted:
            raise ValueError(
                Errors.LABELS_DIFFER_FROM_CHECKPOINT.format(
                    component=self.name, labels=sorted(wanted | set(self.cfg["labels"])),
                    checkpoint=checkpoint, checkpoint_labels=sorted(checkpoint_labels),
                )
            )
        return list(checkpoint_labels)

    def _init_settings(
        self, get_examples: Callable[[], Iterable[Example]], hf_checkpoint: Optional[str]
    ) -> None:
        """Hook run at ``initialize`` once labels and width are set: report
        problems of the training data, check and set what the head needs."""

    def _encoder_width(self) -> int:
        """The width of the encoder the head reads. A component's own encoder
        (``replace_listeners`` before ``initialize``) loads its weights here."""
        load_own_encoders(self.model)
        return listened_width(self.model, self.name)

    def _label_added(self, label: str) -> None:
        """Hook for subclasses with outputs per label (e.g. entity tags)."""

    def _build_head(self, keep: bool = False) -> None:
        """(Re)create the torch head for the current labels and width."""
        raise NotImplementedError

    def _check_hf_head(self, checkpoint: str) -> None:
        """Refuse, before reading anything else, a checkpoint fine-tuned for
        another task."""
        hf.check_head_class(checkpoint, self.hf_task, self.name)

    def _initial_labels(
        self,
        labels: Optional[Sequence[str]],
        get_examples: Callable[[], Iterable[Example]],
        labels_of: Callable[[Example], Set[str]],
    ) -> List[str]:
        """The labels added so far, then ``labels`` or, if None, those that
        ``labels_of`` finds in the examples (sorted); an error if none."""
        n_examples = None
        if labels is None:
            validate_get_examples(get_examples, f"{type(self).__name__}.initialize")
            found: Set[str] = set()
            n_examples = 0
            for eg in get_examples():
                found.update(labels_of(eg))
                n_examples += 1
            labels = sorted(found)
        merged = list(self.cfg["labels"])
        merged += [label for label in labels if label not in merged]
        if not merged and n_examples == 0:
            raise ValueError(Errors.NO_TRAINING_DATA.format(component=self.name))
        if not merged:
            raise ValueError(Errors.NO_LABELS.format(component=self.name))
        return merged

    def _report_data_problems(
        self,
        get_examples: Callable[[], Iterable[Example]],
        problems_of: Callable[[Example], Iterable[str]],
        *,
        report_all: bool = True,
    ) -> Dict[str, int]:
        """Warn about training examples this component can't fully learn from
        (``problems_of`` names each problem of an example): how many examples
        have each problem, and the first of them. Nothing is dropped or
        changed; the counts are returned. Without ``report_all``, a problem
        of every example isn't reported (data for other components, or no
        training data at all)."""
        counts: Counter = Counter()
        first: Dict[str, str] = {}
        n_examples = 0
        for eg in get_examples():
            n_examples += 1
            for problem in problems_of(eg):
                counts[problem] += 1
                first.setdefault(problem, eg.reference.text[:100])
        for problem, count in counts.items():
            if count == n_examples and not report_all:
                continue  # e.g. spaCy's placeholder example of nlp.initialize()
            warnings.warn(
                Warnings.TRAINING_DATA_PROBLEM.format(
                    component=self.name,
                    count=count,
                    n_examples=n_examples,
                    problem=problem,
                    first=first[problem],
                )
            )
        return dict(counts)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "HeadPipe":
        """Load the component from bytes written by ``to_bytes``."""
        deserialize: Dict[str, Callable[[bytes], Any]] = {
            "cfg": lambda b: self.cfg.update(srsly.json_loads(b)),
            "vocab": lambda b: self.vocab.from_bytes(b, exclude=exclude),
            "model": self._load_model,
        }
        if "model" not in exclude:
            check_encoder_not_left_out(self.name, self.model)
        util.from_bytes(bytes_data, deserialize, exclude)
        self._check_loaded()
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        """Save the component to a directory, all or nothing: an interrupted
        save leaves what was at ``path`` unchanged."""
        encoder = self._listened_encoder()
        if encoder is not None and encoder.weights_digest:
            self.cfg[ENCODER_DIGEST] = encoder.weights_digest
        with replacing_directory(path) as staging:
            super().to_disk(staging, exclude=exclude)

    def from_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()
    ) -> "HeadPipe":
        """Load the component from a directory written by ``to_disk``; a
        missing or unreadable file is a ``DamagedPipelineError`` naming it."""
        deserialize: Dict[str, Callable[[Path], Any]] = {
            "cfg": lambda p: self.cfg.update(
                read_component_file(self.name, p, read_cfg)
            ),
            "vocab": lambda p: self.vocab.from_disk(p, exclude=exclude),
            "model": lambda p: read_component_file(
                self.name, p, lambda p: self._load_model(p.read_bytes())
            ),
        }
        if "model" not in exclude:
            check_encoder_not_left_out(self.name, self.model)
        util.from_disk(path, deserialize, exclude)
        encoder = self._listened_encoder()
        check_saved_together(self.name, self.cfg, encoder.weights_digest if encoder else None)
        self._check_loaded()
        return self

    def _check_loaded(self) -> None:
        """Hook: check a loaded component's settings against its encoder."""

    def _listened_encoder(self) -> Optional[Encoder]:
        """The encoder this head's listener is connected to, if any."""
        for node in self.model.walk():
            if isinstance(node, XLMRListener):
                return node.encoder
        return None

    def _load_model(self, data: bytes) -> None:
        if self.cfg["width"] is not None:
            self._build_head()
        self.model.from_bytes(data)


def add_encoder_if_missing(nlp: Language, model: Model) -> None:
    """Add the shared encoder in front of a head that listens to one, when the
    pipeline has none yet (``nlp.add_pipe("xlmr_ner")`` just works). The
    encoder is marked as added until it is loaded: see
    ``check_encoder_not_left_out``."""
    listens = any(isinstance(node, LISTENER_CLASSES) for node in model.walk())
    factories = {nlp.get_pipe_meta(name).factory for name in nlp.component_names}
    if listens and not factories.intersection(ENCODER_FACTORIES):
        encoder = nlp.add_pipe("xlmr_transformer", name="transformer", first=True)
        cast(XLMRTransformer, encoder).model.attrs[ADDED_FOR_HEAD] = True


def check_encoder_not_left_out(component: str, model: Model) -> None:
    """Refuse to load a saved head (``component``, with ``model``) whose
    listener is connected to an encoder that was added for it and is neither
    loaded nor initialized: the saved pipeline's encoder was left out, as
    ``spacy.load(path, exclude=["transformer"])`` does."""
    # spacy-xlmr listeners know their encoder (XLMRTransformer.add_listener).
    encoders = (node.encoder for node in model.walk() if isinstance(node, XLMRListener))
    if not any(
        encoder is not None and encoder.model.attrs.get(ADDED_FOR_HEAD) and not encoder.is_loaded
        for encoder in encoders
    ):
        return
    raise ValueError(Errors.ENCODER_LEFT_OUT.format(component=component))


def listened_width(model: Model, component: str) -> int:
    """The width of the encoder that ``model``'s listener is connected to, or
    of the component's own encoder once it is loaded (``load_own_encoders``)."""
    for node in model.walk():
        if isinstance(node, LISTENER_CLASSES) or is_own_encoder(node):
            if node.has_dim("nO"):
                return node.get_dim("nO")
    raise ValueError(Errors.ENCODER_WIDTH_UNKNOWN.format(component=component))


def warn_if_other_encoder(nlp: Optional[Language], checkpoint: str, component: str) -> None:
    """Warn when a head is imported from a checkpoint other than the one the
    pipeline's encoder was loaded from (the head would sit on other weights)."""
    if nlp is None:
        return
    for _, proc in nlp.pipeline:
        if isinstance(proc, XLMRTransformer):
            name = proc.encoder.name
            if Path(name).expanduser().resolve() != Path(str(checkpoint)).expanduser().resolve():
                warnings.warn(
                    Warnings.HEAD_FROM_OTHER_CHECKPOINT.format(
                        component=component, checkpoint=checkpoint, name=name
                    )
                )
