"""What every XLM-R head component shares: loading a head whose torch module
is rebuilt from the component's cfg before its weights are read."""
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline.trainable_pipe import TrainablePipe
from spacy.training import Example, validate_get_examples

from .. import hf
from ..encoder.interface import Encoder
from ..encoder.listener import XLMRListener
from ..heads.torch_head import load_head_state
from ..storage import (
    ENCODER_DIGEST,
    check_saved_together,
    read_cfg,
    read_component_file,
    replacing_directory,
)
from .transformer import check_encoder_not_left_out, warn_if_other_encoder


class HeadPipe(TrainablePipe):
    """Base class of the head components. Subclasses keep ``cfg["labels"]``
    and ``cfg["width"]``, name the HF class whose head they import
    (``hf_head_class``) and implement ``_build_head``."""

    hf_head_class: str = ""
    # The loss is a mean over the batch (as in HF), not a sum as in spaCy's own
    # components: data-parallel training averages these gradients over ranks.
    loss_reduction: str = "mean"

    @property
    def label_data(self) -> List[str]:
        return list(self.cfg["labels"])

    def add_label(self, label: str) -> int:
        """Add a label; an initialized head grows new outputs (the others
        keep their weights)."""
        if not isinstance(label, str):
            raise ValueError(f"Labels must be strings, got {label!r}.")
        if label in self.cfg["labels"]:
            return 0
        self.cfg["labels"].append(label)
        self._label_added(label)
        if self.cfg["width"] is not None:
            self._build_head(keep=True)
        return 1

    def _label_added(self, label: str) -> None:
        """Hook for subclasses with outputs per label (e.g. entity tags)."""

    def _build_head(self, keep: bool = False) -> None:
        """(Re)create the torch head for the current labels and width."""
        raise NotImplementedError

    def _check_hf_head(self, checkpoint: str) -> None:
        """Refuse, before reading anything else, a checkpoint fine-tuned for
        another task."""
        hf.check_head_class(checkpoint, self.hf_head_class, self.name)

    def _import_hf_head(
        self, checkpoint: str, prefixes: Tuple[str, ...], nlp: Optional[Language]
    ) -> None:
        """Load a fine-tuned checkpoint's head weights (``prefixes`` of its
        state dict, HF names) into the built head."""
        warn_if_other_encoder(nlp, checkpoint, self.name)
        load_head_state(self.model.get_ref("head"), hf.load_head_state_dict(checkpoint, prefixes))

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
            raise ValueError(
                f"[{self.name}] The training data is empty: no examples to read "
                "the labels from. Check the training corpus ([paths.train], "
                "[corpora.train]), or give labels in "
                f"[initialize.components.{self.name}]."
            )
        if not merged:
            raise ValueError(
                f"[{self.name}] No labels: the examples have none. Give labels in "
                f"[initialize.components.{self.name}] or add them with add_label()."
            )
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
                f"[{self.name}] {count} of {n_examples} training examples: {problem}. "
                f"The first: {first[problem]!r}"
            )
        return dict(counts)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "HeadPipe":
        """Load the component from bytes written by ``to_bytes``."""
        msg = srsly.msgpack_loads(bytes_data)
        if "cfg" not in exclude and "cfg" in msg:
            self.cfg.update(srsly.json_loads(msg["cfg"]))
        if "vocab" not in exclude and "vocab" in msg:
            self.vocab.from_bytes(msg["vocab"], exclude=exclude)
        if "model" not in exclude and "model" in msg:
            check_encoder_not_left_out(self.name, self.model)
            self._load_model(msg["model"])
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
        deserialize = {
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
