"""``xlmr_transformer``: the shared XLM-R encoder component.

Runs the encoder once per doc and stores a ``TransformerData`` in
``doc._.trf_data`` (``encoder/data.py``); every head (``xlmr_ner``, spaCy's own
``ner``/``textcat``/``tagger`` with ``spacy-xlmr.TransformerListener.v1`` or
spacy-transformers' listener) listens to it. A drop-in for spacy-transformers'
``transformer``, with exact piece alignment and windows counted in pieces. It
follows spaCy's ``Tok2Vec`` listener protocol (``listener_map``,
``add_listener``, ``find_listeners``), which ``Language`` uses to link
components. A pipeline can have several encoders: a listener reads the one its
``upstream`` names, "*" the nearest one before its component.
"""
from functools import partial
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union, cast

import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from spacy.util import minibatch
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate

from ..encoder.data import (
    TransformerData,
    TransformerDataBatch,
    hidden_states,
    set_trf_data,
)
from ..encoder.interface import Encoder
from ..encoder.listener import LINKED_ENCODER, XLMRListener
from ..encoder.own_encoder import replace_listener, replace_listener_cfg
from ..encoder.precision import clear_inference_cache
from ..encoder.model import (
    encoder_from_bytes,
    encoder_to_bytes,
    is_loaded,
    load_checkpoint,
    save_encoder,
    unload,
)
from ..storage import (
    WEIGHTS_DIGEST,
    read_cfg,
    read_component_file,
    replacing_directory,
    weights_digest,
)
from .encoder_links import check_upstreams, link_encoders, linked_encoder
from .drop_in import (
    LISTENER_CLASSES,
    NULL_ANNOTATION_SETTER,
    AnnotationSetter,
    check_encoder_model,
    null_annotation_setter,
    set_max_batch_pieces,
)

DEFAULT_ENCODER_MODEL = """
[model]
@architectures = "spacy-xlmr.Encoder.v1"
name = "xlm-roberta-base"
window_size = 510
stride = 448
max_batch_pieces = 4096
mixed_precision = false
grad_scaler_config = {}
inference_precision = "fp32"
gradient_checkpointing = false
freeze_embeddings = false
frozen_layers = 0
"""
DEFAULT_ENCODER_MODEL = Config().from_str(DEFAULT_ENCODER_MODEL)["model"]
# The files of a saved encoder (``save_pretrained``) that must be there.
SAVED_ENCODER_JSON = ("config.json", "tokenizer_config.json", "tokenizer.json")
SAVED_ENCODER_WEIGHTS = "model.safetensors"
SAVED_ENCODER_WEIGHTS_INDEX = "model.safetensors.index.json"
# cfg key of an encoder saved before initialize: no weights were saved.
NO_WEIGHTS = "saved_without_weights"
# Encoder model attr: added by a head's factory (the pipeline had no encoder)
# and not loaded since.
ADDED_FOR_HEAD = "added_for_head"


@Language.factory(
    "xlmr_transformer",
    assigns=["doc._.trf_data"],
    default_config={
        "model": DEFAULT_ENCODER_MODEL,
        "set_extra_annotations": {"@annotation_setters": NULL_ANNOTATION_SETTER},
        "max_batch_items": None,
    },
)
def make_xlmr_transformer(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[TransformerData]],
    set_extra_annotations: AnnotationSetter,
    max_batch_items: Optional[int],
) -> "XLMRTransformer":
    """The shared XLM-R encoder. ``model.name`` is a hub name or a directory.

    set_extra_annotations (Callable): Called with each batch of docs and a
        ``TransformerDataBatch`` (``doc_data``: each doc's output) after
        ``doc._.trf_data`` is set, as spacy-transformers' callbacks are.
    max_batch_items (Optional[int]): spacy-transformers' name for the
        encoder's ``max_batch_pieces`` (padded positions per forward pass);
        None leaves the model's.
    """
    check_encoder_model(model, name)
    if max_batch_items is not None:
        default = cast(Dict, DEFAULT_ENCODER_MODEL)["max_batch_pieces"]
        set_max_batch_pieces(model, max_batch_items, name, default=default)
    return XLMRTransformer(nlp.vocab, model, set_extra_annotations, name=name)


class XLMRTransformer(TrainablePipe):
    """The shared XLM-R encoder: stores ``TransformerData`` in
    ``doc._.trf_data`` and feeds its output and gradients to listeners."""

    model: Model[List[Doc], List[TransformerData]]

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], List[TransformerData]],
        set_extra_annotations: AnnotationSetter = null_annotation_setter,
        *,
        name: str = "transformer",
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.set_extra_annotations = set_extra_annotations
        # How nlp.replace_listeners gives a listening component its own copy.
        model.attrs["replace_listener"] = replace_listener
        model.attrs["replace_listener_cfg"] = replace_listener_cfg
        self.name = name
        self.cfg: Dict = {}
        self.listener_map: Dict[str, List[Model]] = {}
        # Factors for the gradients of listening components (by name), applied
        # before the encoder's backward pass; data-parallel training sets them.
        self.listener_gradient_scales: Dict[str, float] = {}
        self._pending_backprop: Optional[Tuple[Callable, List]] = None

    @property
    def encoder(self) -> Encoder:
        """The encoder's interface: tokenizer, width, encode functions."""
        return Encoder(self.model)

    @property
    def listeners(self) -> List[Model]:
        """The listeners of all downstream components."""
        return [m for c in self.listening_components for m in self.listener_map[c]]

    @property
    def listening_components(self) -> List[str]:
        """The names of the downstream components that listen to this one."""
        return list(self.listener_map.keys())

    def add_listener(self, listener: Model, component_name: str) -> None:
        """Connect a downstream listener and link it to this component
        (``LINKED_ENCODER``): spacy-xlmr listeners read the encoder's
        interface and name from it."""
        self.listener_map.setdefault(component_name, [])
        if listener not in self.listener_map[component_name]:
            self.listener_map[component_name].append(listener)
        if self.model.has_dim("nO") and listener.has_dim("nO") is None:
            listener.set_dim("nO", self.model.get_dim("nO"))
        setattr(listener, LINKED_ENCODER, self)
        if isinstance(listener, XLMRListener) and listener.origin is None:
            listener.origin = self

    def remove_listener(self, listener: Model, component_name: str) -> bool:
        """Disconnect a downstream listener; whether it was connected."""
        listeners = self.listener_map.get(component_name, [])
        if listener not in listeners:
            return False
        listeners.remove(listener)
        if not listeners:
            del self.listener_map[component_name]
        return True

    def find_listeners(self, component) -> None:
        """Connect the listeners in ``component``'s model whose upstream is
        this component's name or "*", taking them from the encoder they were
        linked to before. ``Language`` links the encoders in pipeline order,
        so a "*" listener ends up with the nearest encoder before it."""
        if not isinstance(getattr(component, "model", None), Model):
            return
        for node in component.model.walk():
            if isinstance(node, LISTENER_CLASSES):
                listener = cast(XLMRListener, node)
                if listener.upstream_name in ("*", self.name):
                    linked = linked_encoder(listener)
                    if linked is not None and linked is not self:
                        linked.remove_listener(listener, component.name)
                    self.add_listener(listener, component.name)

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """Encode a stream of docs in batches (windows are length-sorted
        within each batch by the model)."""
        for batch in minibatch(stream, batch_size):
            batch = list(batch)
            self.set_annotations(batch, self.predict(batch))
            yield from batch

    def predict(self, docs: Iterable[Doc]) -> List[TransformerData]:
        """Encode ``docs`` without modifying them."""
        return self.model.predict(list(docs))

    def set_annotations(self, docs: Iterable[Doc], trf_datas: List[TransformerData]) -> None:
        """Store each doc's encoder output in ``doc._.trf_data`` (the output
        of another encoder that was there stays readable by its name:
        ``data.get_trf_data``), then call ``set_extra_annotations``."""
        docs = list(docs)
        for doc, trf_data in zip(docs, trf_datas):
            set_trf_data(doc, self.name, trf_data)
        self.set_extra_annotations(docs, TransformerDataBatch(doc_data=list(trf_datas)))

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Run the encoder on the predicted docs and hand the output to the
        listeners that train on it (not those of the masked-LM and QA heads,
        which encode their own inputs; with no such listener nothing is
        computed). Their gradients are summed; the encoder's backward pass runs
        once all listeners have reported, or at ``finish_update`` or the next
        ``update`` when some didn't (a head excluded from the update). The
        weights change at ``finish_update`` (within ``nlp.update``, which calls
        it before the heads' updates, with the previous batch's gradients, as
        in spacy-transformers), or here when ``sgd`` is given."""
        validate_examples(examples, "XLMRTransformer.update")
        self.backprop_pending()
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        docs = [eg.predicted for eg in examples]
        listeners = [
            (name, listener)
            for name in self.listening_components
            for listener in self.listener_map[name]
            if getattr(listener, "wants_training_output", True)
        ]
        if not docs or not listeners:
            return losses
        set_dropout_rate(self.model, drop)
        trf_datas, backprop_encoder = self.model.begin_update(docs)
        d_hidden: List = [None] * len(docs)
        # Empty docs aren't encoded: spacy-transformers' listeners return no
        # gradient for them, spacy-xlmr heads one that is dropped.
        encoded = [i for i, doc in enumerate(docs) if len(doc)]
        reported = 0

        def accumulate_gradient(
            d_trf_datas: List[TransformerData], scale: float = 1.0
        ) -> List[Doc]:
            nonlocal reported
            doc_ids = range(len(docs)) if len(d_trf_datas) == len(docs) else encoded
            for i, d_trf_data in zip(doc_ids, d_trf_datas):
                if not len(docs[i]):
                    continue
                d_output = hidden_states(d_trf_data)
                if scale != 1.0:
                    d_output = d_output * scale
                losses[self.name] += float((d_output**2).sum())  # type: ignore[call-overload]
                if d_hidden[i] is None:
                    d_hidden[i] = d_output.copy()
                else:
                    d_hidden[i] += d_output
            reported += 1
            if reported == len(listeners):
                self.backprop_pending()
                if sgd is not None:
                    self.model.finish_update(sgd)
                    clear_inference_cache(self.model)
            return []

        self._pending_backprop = (backprop_encoder, d_hidden)
        batch_id = XLMRListener.get_batch_id(docs)
        for name, listener in listeners:
            scale = self.listener_gradient_scales.get(name, 1.0)
            # spacy-xlmr's and spacy-transformers' listeners take the same calls.
            cast(XLMRListener, listener).receive(
                batch_id, trf_datas, partial(accumulate_gradient, scale=scale)
            )
        return losses

    def finish_update(self, sgd: Optimizer) -> None:
        """Finish a pending backward pass, then update the encoder's weights."""
        self.backprop_pending()
        self.model.finish_update(sgd)
        clear_inference_cache(self.model)

    def backprop_pending(self) -> None:
        """Backprop the last batch's summed gradients into the encoder, if any
        listener has reported (a batch without gradients yet stays pending:
        ``nlp.update`` calls ``finish_update`` before the heads' updates).
        A training loop that reads the gradients before ``finish_update``
        (e.g. to average them across ranks) calls this first."""
        if self._pending_backprop is None:
            return
        backprop_encoder, d_hidden = self._pending_backprop
        if any(d is not None for d in d_hidden):
            self._pending_backprop = None
            backprop_encoder(d_hidden)

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
    ) -> None:
        """Load the encoder named in the config (unless it already has
        weights, e.g. when sourced from a trained pipeline), connect the
        listeners of later components (now that the width is known) and check
        that every listener's upstream is an encoder before it."""
        self.model.initialize()
        if nlp is not None:
            link_encoders(nlp)
            check_upstreams(nlp)

    def to_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()
    ) -> None:
        """Save the encoder as a Hugging Face directory under ``path/model``,
        all or nothing: an interrupted save leaves what was at ``path``
        unchanged. An encoder without weights yet (before ``initialize``)
        saves only its cfg, marked as such."""
        serialize = {
            "model": lambda p: self._save_encoder(Path(p)),
            "cfg": lambda p: srsly.write_json(p, self._cfg_to_save()),
        }
        if not is_loaded(self.model):
            del serialize["model"]
        with replacing_directory(path) as staging:
            util.to_disk(staging, serialize, exclude)

    def _cfg_to_save(self) -> Dict:
        if is_loaded(self.model):
            return self.cfg
        cfg = {key: value for key, value in self.cfg.items() if key != WEIGHTS_DIGEST}
        return {**cfg, NO_WEIGHTS: True}

    def _save_encoder(self, directory: Path) -> None:
        save_encoder(self.model, directory)
        # The heads saved after the encoder record which weights they go with.
        self.cfg[WEIGHTS_DIGEST] = weights_digest(directory)
        self.model.attrs[WEIGHTS_DIGEST] = self.cfg[WEIGHTS_DIGEST]

    def _load_cfg(self, cfg: Dict) -> bool:
        """Take a saved cfg; whether the encoder was saved with weights. One
        saved without them leaves this encoder without weights too (a later
        ``initialize`` loads them from the config's name)."""
        has_weights = not cfg.pop(NO_WEIGHTS, False)
        self.cfg.update(cfg)
        if not has_weights:
            self.cfg.pop(WEIGHTS_DIGEST, None)
            self.model.attrs[WEIGHTS_DIGEST] = None
            unload(self.model)
        return has_weights

    def from_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()
    ) -> "XLMRTransformer":
        """Load the encoder saved by ``to_disk`` (no network); a missing or
        unreadable file is a ``DamagedPipelineError`` naming it."""
        saved = {"weights": True}

        def load_cfg(p: Path) -> None:
            saved["weights"] = self._load_cfg(read_component_file(self.name, p, read_cfg))

        def load_model(p: Path) -> None:
            if saved["weights"]:
                self._load_saved_encoder(Path(p))

        deserialize: Dict[str, Callable[[Path], None]] = {"cfg": load_cfg, "model": load_model}
        util.from_disk(path, deserialize, exclude)
        self.model.attrs[WEIGHTS_DIGEST] = self.cfg.get(WEIGHTS_DIGEST)
        self.model.attrs[ADDED_FOR_HEAD] = False
        return self

    def _load_saved_encoder(self, directory: Path) -> None:
        for filename in SAVED_ENCODER_JSON:
            read_component_file(self.name, directory / filename, srsly.read_json)
        if not (directory / SAVED_ENCODER_WEIGHTS_INDEX).exists():  # else sharded
            read_component_file(self.name, directory / SAVED_ENCODER_WEIGHTS, Path.stat)
        read_component_file(self.name, directory, partial(load_checkpoint, self.model))

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        """The cfg and the encoder's files; only the cfg, marked as such,
        before ``initialize``."""
        serialize = {
            "cfg": lambda: srsly.json_dumps(self._cfg_to_save()),
            "model": lambda: encoder_to_bytes(self.model),
        }
        if not is_loaded(self.model):
            del serialize["model"]
        return util.to_bytes(serialize, exclude)

    def from_bytes(
        self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()
    ) -> "XLMRTransformer":
        deserialize = {
            "cfg": lambda b: self._load_cfg(srsly.json_loads(b)),
            "model": lambda b: encoder_from_bytes(self.model, b),
        }
        util.from_bytes(bytes_data, deserialize, exclude)
        self.model.attrs[ADDED_FOR_HEAD] = False
        return self
