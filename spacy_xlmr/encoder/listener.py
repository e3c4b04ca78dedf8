"""How components read the shared encoder: the listener and piece pooling.

``XLMRListener`` receives the encoder component's output during training
(``receive``) and reads its output on the doc at prediction time
(``doc._.trf_data``, or ``data.get_trf_data`` in a pipeline with several
encoders), like spaCy's ``Tok2VecListener``. When a doc has no such output it
raises an error naming the fix instead of returning zeros, except for the sample docs that
spaCy's own components run their model on while they initialize (before the
encoder has seen them): those get zeros, as with spaCy's ``Tok2VecListener``.
It also carries the ``Encoder``
(``interface.py``) it is connected to: heads that run the encoder's weights
themselves (masked LM, question answering) reach it with ``encoder_of``.

``spacy-xlmr.TransformerListener.v1`` (``build_listener``) gives token
vectors pooled over each token's pieces, for spacy-xlmr heads and for spaCy's
own ``ner``, ``textcat``, ``spancat``, ``tagger``, ``parser``. Without
spacy-transformers installed, configs that name
``spacy-transformers.TransformerListener.v1`` get it too (same arguments), so
pipelines saved with spacy-transformers installed load; with it installed,
that name is spacy-transformers' own listener, which ``xlmr_transformer``
feeds as well.

The encoder doesn't run on empty docs (their ``TransformerData`` is empty);
listeners give their components a stand-in (``_stand_in_for_empty``).
"""
from typing import Any, Callable, List, Optional, Tuple, cast

import numpy
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, Ops, chain
from thinc.types import Floats2d, Ints1d, Ragged

from ..errors import Errors
from .data import (
    SPACY_TRANSFORMERS,
    TransformerData,
    WordpieceBatch,
    encoders_that_ran,
    get_trf_data,
    has_hidden_states,
    hidden_states,
    make_trf_data,
)
from .interface import Encoder

REDUCE_FIRST = "reduce_first_or_zero"
SPACY_TRANSFORMERS_LISTENER = "spacy-transformers.TransformerListener.v1"
# Attribute holding the encoder component a listener is linked to.
LINKED_ENCODER = "_xlmr_linked_encoder"


class XLMRListener(Model):
    """A layer fed by the pipeline's encoder component: its output during
    training (``receive``), ``doc._.trf_data`` otherwise."""

    name = "xlmr-listener"

    def __init__(self, upstream_name: str = "*", *, wants_training_output: bool = True) -> None:
        """upstream_name (str): the encoder component's name, or "*" for the
            nearest one before the listening component.
        wants_training_output (bool): False for heads that don't train on the
            encoder's output of the text (the masked-LM and QA heads encode
            masked pieces / question-context pairs themselves): the encoder
            component then skips its training pass when no other listener
            wants it."""
        Model.__init__(self, self.name, _listener_forward, init=_listener_init, dims={"nO": None})
        self.upstream_name = upstream_name
        self.wants_training_output = wants_training_output
        # The encoder component the listener is linked to (set by its
        # add_listener), and the one it was first linked to (its component
        # was built or loaded with it): see _check_origin.
        setattr(self, LINKED_ENCODER, None)
        self.origin: Optional[Any] = None
        self._batch_id: Optional[int] = None
        self._outputs: Optional[List[TransformerData]] = None
        self._backprop: Optional[Callable] = None
        # The batch of sample docs the listener was initialized with.
        self._sample_batch_id: Optional[int] = None

    @property
    def encoder(self) -> Optional[Encoder]:
        """The interface of the encoder component the listener is linked to."""
        linked = getattr(self, LINKED_ENCODER)
        return None if linked is None else linked.encoder

    @property
    def encoder_name(self) -> Optional[str]:
        """The name of the encoder component the listener is linked to."""
        linked = getattr(self, LINKED_ENCODER)
        return None if linked is None else linked.name

    @classmethod
    def get_batch_id(cls, docs: List[Doc]) -> int:
        """An id of a batch of docs, to check that the listener is called on
        the batch the encoder sent it."""
        return sum(sum(token.orth for token in doc) for doc in docs)

    def receive(self, batch_id: int, outputs: List[TransformerData], backprop: Callable) -> None:
        """Take the encoder's training output of a batch and the callback
        that takes its gradient."""
        self._batch_id = batch_id
        self._outputs = outputs
        self._backprop = backprop

    def backprop_and_clear(self, d_outputs: List[TransformerData]) -> List[Doc]:
        """Send the gradient to the encoder and forget the batch."""
        backprop = self._backprop
        self._batch_id = self._outputs = self._backprop = None
        if backprop is not None:
            backprop(d_outputs)
        return []

    def verify_inputs(self, docs: List[Doc]) -> None:
        """Refuse a batch other than the one the encoder sent."""
        batch_id = self.get_batch_id(docs)
        if batch_id != self._batch_id:
            raise ValueError(Errors.OTHER_BATCH.format(batch_id=batch_id, sent=self._batch_id))


def _listener_init(model: XLMRListener, X: Optional[List[Doc]] = None, Y=None) -> None:
    """Remember the sample docs: a component's initialize runs its model on
    them (spaCy's ``ner``, ``textcat`` ... do) before the encoder has."""
    model._sample_batch_id = None if X is None else model.get_batch_id(X)


def _listener_forward(
    model: XLMRListener, docs: List[Doc], is_train: bool
) -> Tuple[List[TransformerData], Callable]:
    _check_origin(model)
    if is_train and model._outputs is not None:
        model.verify_inputs(docs)
        return _stand_in_for_empty(model, model._outputs), model.backprop_and_clear
    samples = model._sample_batch_id is not None
    samples = samples and model.get_batch_id(docs) == model._sample_batch_id
    outputs = []
    for doc in docs:
        trf_data = get_trf_data(doc, model.encoder_name)
        if trf_data is None and samples:
            trf_data = _zeros(model, doc)
        if trf_data is None:
            name = model.encoder_name or "transformer"
            ran = encoders_that_ran(doc)
            found = f"only encoders {ran} ran on it" if ran else "doc._.trf_data is None"
            raise ValueError(Errors.NO_ENCODER_OUTPUT.format(name=name, found=found))
        outputs.append(trf_data)
    return _stand_in_for_empty(model, outputs), lambda d_outputs: []


def _check_origin(model: XLMRListener) -> None:
    """Refuse to run a listener whose component was sourced from another
    pipeline without its encoder: linked to this pipeline's encoder (another
    vocab than the one it was first linked to, which is still loaded), it
    would run on weights it wasn't trained with."""
    origin = model.origin
    linked = getattr(model, LINKED_ENCODER, None)
    if origin is None or linked is None or linked is origin or linked.vocab is origin.vocab:
        return
    if not origin.encoder.is_loaded:
        return
    component = next(
        (name for name, listeners in linked.listener_map.items() if model in listeners), "?"
    )
    raise ValueError(
        Errors.LISTENS_TO_SOURCE_ENCODER.format(
            component=component, encoder=linked.name, origin=origin.name
        )
    )


def _zeros(model: XLMRListener, doc: Doc) -> TransformerData:
    """Zero vectors for the tokens of a sample doc, one piece each."""
    n_tokens = len(doc)
    align = Ragged(
        cast(Ints1d, numpy.arange(n_tokens, dtype="i")),
        cast(Ints1d, numpy.ones(n_tokens, dtype="i")),
    )
    hidden = model.ops.alloc3f(1, n_tokens, connected_width(model))
    return make_trf_data(WordpieceBatch.empty(), hidden, align)


def _stand_in_for_empty(
    model: XLMRListener, trf_datas: List[TransformerData]
) -> List[TransformerData]:
    if all(has_hidden_states(trf_data) for trf_data in trf_datas):
        return trf_datas
    return stand_in_for_empty(model.ops, trf_datas, connected_width(model))


def stand_in_for_empty(
    ops: Ops, trf_datas: List[TransformerData], width: int
) -> List[TransformerData]:
    """The encoder doesn't run on empty docs: their ``TransformerData`` has no
    pieces and no tensors. Listening components get a stand-in instead: one
    zero vector at ``<s>`` and no tokens (a doc classifier reads zeros, a
    token head has no tokens); its gradient is dropped by the encoder."""
    empty = [i for i, trf_data in enumerate(trf_datas) if not has_hidden_states(trf_data)]
    if not empty:
        return trf_datas
    trf_datas = list(trf_datas)
    for i in empty:
        trf_datas[i] = make_trf_data(
            trf_datas[i].wordpieces, ops.alloc3f(1, 1, width), trf_datas[i].align
        )
    return trf_datas


def connected_width(model: XLMRListener) -> int:
    """The width of the encoder the listener is connected to."""
    if model.has_dim("nO"):
        return model.get_dim("nO")
    return connected_encoder(model).width


def connected_encoder(listener: XLMRListener) -> Encoder:
    """The encoder ``listener`` is connected to."""
    if listener.encoder is None:
        raise ValueError(Errors.NOT_CONNECTED)
    return listener.encoder


def encoder_of(model: Model) -> Encoder:
    """The encoder that a head's model (with a "listener" ref) reads: the
    one way heads reach the encoder, shared or, after
    ``nlp.replace_listeners``, the head's own (``own_encoder.py``)."""
    node = model.get_ref("listener")
    if isinstance(node, XLMRListener):
        return connected_encoder(node)
    return Encoder(node.get_ref("encoder"))


def maybe_encoder_of(model: Model) -> Optional[Encoder]:
    """``encoder_of(model)``, or None while its listener isn't connected."""
    node = model.get_ref("listener")
    if isinstance(node, XLMRListener) and node.encoder is None:
        return None
    return encoder_of(model)


def build_encoder_output(upstream: str = "*") -> Model[List[Doc], List[TransformerData]]:
    """The encoder's output of each doc (``TransformerData``), unpooled, for
    heads that read all pieces (``SequenceClassifier.v2``) or run the encoder
    themselves (``MaskedLM.v2``, ``QuestionAnswerer.v2``).

    upstream (str): Name of the encoder component, or "*" for the nearest
        one before the listening component.
    """
    return XLMRListener(upstream_name=upstream)


def build_listener(
    pooling: Model[Ragged, Floats2d], grad_factor: float = 1.0, upstream: str = "*"
) -> Model[List[Doc], List[Floats2d]]:
    """Token vectors from the pipeline's encoder, pooled over each token's
    pieces by ``pooling`` (tokens without pieces get zeros).

    upstream (str): Name of the encoder component, or "*" for the nearest
        one before the listening component.
    grad_factor (float): Scale of the gradient sent to the encoder (0 freezes it
        for this component).
    """
    listener = XLMRListener(upstream_name=upstream)
    model: Model = chain(listener, pool_pieces(pooling, grad_factor))
    model.set_ref("listener", listener)
    return model


def pool_pieces(
    pooling: Model[Ragged, Floats2d], grad_factor: float = 1.0
) -> Model[List[TransformerData], List[Floats2d]]:
    """Each doc's token vectors: its tokens' piece vectors (``align``),
    reduced by ``pooling``; the gradient sent back is scaled by
    ``grad_factor``."""
    return Model(
        "pool_pieces", _pool_pieces_forward, layers=[pooling], attrs={"grad_factor": grad_factor}
    )


def _pool_pieces_forward(
    model: Model, trf_datas: List[TransformerData], is_train: bool
) -> Tuple[List[Floats2d], Callable]:
    ops = model.ops
    pooling: Model[Ragged, Floats2d] = model.layers[0]
    if not trf_datas:
        return [], lambda d_outputs: []
    pieces = []
    for trf_data in trf_datas:
        flat = ops.reshape2f(hidden_states(trf_data), -1, trf_data.width)
        rows = cast(Ints1d, ops.xp.asarray(trf_data.align.dataXd))
        pieces.append((flat, rows, trf_data.align.lengths))
    lengths = [len(lengths_) for _, _, lengths_ in pieces]
    flat_pieces = Ragged(
        ops.xp.concatenate([flat[rows] for flat, rows, _ in pieces]),
        cast(Ints1d, ops.xp.concatenate([ops.asarray1i(lens) for _, _, lens in pieces])),
    )
    pooled, backprop_pooling = pooling(flat_pieces, is_train)
    ends = ops.xp.cumsum(ops.asarray1i(lengths))
    outputs = [pooled[end - n : end] for n, end in zip(lengths, ends)]

    def backprop(d_outputs: List[Floats2d]) -> List[TransformerData]:
        d_pieces = backprop_pooling(ops.xp.concatenate(d_outputs)).dataXd
        d_trf_datas = []
        offset = 0
        for trf_data, (flat, rows, _) in zip(trf_datas, pieces):
            d_flat = ops.alloc2f(*flat.shape)
            ops.scatter_add(d_flat, rows, d_pieces[offset : offset + len(rows)])
            offset += len(rows)
            d_flat *= model.attrs["grad_factor"]
            d_hidden = ops.reshape3f(d_flat, *hidden_states(trf_data).shape)
            d_trf_datas.append(make_trf_data(trf_data.wordpieces, d_hidden, trf_data.align))
        return d_trf_datas

    return outputs, backprop


def reduce_first() -> Model[Ragged, Floats2d]:
    """Each token's first piece, as Hugging Face token-classification heads
    are trained and read out; zeros for tokens without pieces."""
    return Model(REDUCE_FIRST, _reduce_first_forward)


def _reduce_first_forward(
    model: Model[Ragged, Floats2d], X: Ragged, is_train: bool
) -> Tuple[Floats2d, Callable]:
    xp = model.ops.xp
    lengths = xp.asarray(X.lengths)
    starts = xp.cumsum(lengths) - lengths
    has_pieces = lengths > 0
    rows = starts[has_pieces]
    data = cast(Floats2d, X.dataXd)
    Y = model.ops.alloc2f(lengths.shape[0], data.shape[1])
    Y[has_pieces] = data[rows]

    def backprop(dY: Floats2d) -> Ragged:
        dX = model.ops.alloc2f(*data.shape)
        dX[rows] = dY[has_pieces]
        return Ragged(dX, X.lengths)

    return Y, backprop


if not SPACY_TRANSFORMERS:
    # Configs written for spacy-transformers' listener load without it.
    registry.architectures.register(SPACY_TRANSFORMERS_LISTENER, func=build_listener)
