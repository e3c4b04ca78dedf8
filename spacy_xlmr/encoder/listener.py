"""How heads read the shared encoder: a strict listener and piece pooling.

``XLMRListener`` is a spacy-transformers ``TransformerListener`` (so both
``xlmr_transformer`` and spacy-transformers' ``transformer`` find it), with one
change: when a doc has no ``doc._.trf_data`` at prediction time it raises an
error naming the fix, instead of silently returning zeros. spacy-xlmr heads
build their torch layers without running the listener; spaCy's built-in
components (``ner``, ``tagger``, ``textcat`` ...) run their model on sample
docs during ``initialize`` and need spacy-transformers'
``spacy-transformers.TransformerListener.v1``, which our encoder feeds too.
The encoder doesn't run on empty docs (their ``TransformerData`` is empty);
spacy-xlmr heads read a stand-in for them (``_stand_in_for_empty``).
"""
from typing import Callable, List, Optional, Tuple, cast

from spacy.tokens import Doc
from spacy_transformers.data_classes import TransformerData
from spacy_transformers.layers import TransformerListener
from spacy_transformers.layers.trfs2arrays import trfs2arrays
from thinc.api import Model, chain
from thinc.types import Floats2d, Ragged
from transformers.modeling_outputs import BaseModelOutput


REDUCE_FIRST = "reduce_first_or_zero"


class XLMRListener(TransformerListener):
    name = "xlmr-listener"
    # The encoder model it listens to (set by XLMRTransformer.add_listener).
    encoder: Optional[Model]
    # False for heads that don't train on the encoder's output of the text
    # (the masked-LM and QA heads encode masked pieces / question-context
    # pairs themselves): the encoder component then skips its training pass
    # when no other listener wants it.
    wants_training_output = True

    def __init__(self, upstream_name: str):
        super().__init__(upstream_name)
        self._func = _listener_forward


def _listener_forward(
    model: XLMRListener, docs: List[Doc], is_train: bool
) -> Tuple[List[TransformerData], Callable]:
    if is_train and model._batch_id is not None:
        model.verify_inputs(docs)
        outputs = cast(List[TransformerData], model._outputs)  # set by receive()
        return _stand_in_for_empty(model, outputs), model.backprop_and_clear
    outputs = []
    for doc in docs:
        trf_data = doc._.get("trf_data") if Doc.has_extension("trf_data") else None
        if trf_data is None:
            raise ValueError(
                "A component listening to the XLM-R encoder got a doc without "
                "encoder output (doc._.trf_data is None). Run the encoder "
                "first: keep 'transformer' in the pipeline and enabled "
                "(spacy.load(..., disable=[...]) or exclude=[...] must not name "
                "it), or add it with "
                'nlp.add_pipe("xlmr_transformer", name="transformer", first=True). '
                "When training with a frozen encoder, list it in "
                "[training] annotating_components."
            )
        outputs.append(trf_data)
    return _stand_in_for_empty(model, outputs), lambda d_outputs: []


def _stand_in_for_empty(
    model: XLMRListener, trf_datas: List[TransformerData]
) -> List[TransformerData]:
    """The encoder doesn't run on empty docs: their ``TransformerData`` has no
    pieces and no tensors. spacy-xlmr heads get a stand-in instead: one zero
    vector at ``<s>`` and no pieces (a doc classifier reads zeros, a token
    head has no tokens); its gradient is dropped by the encoder."""
    empty = [i for i, trf_data in enumerate(trf_datas) if not trf_data.tensors]
    if not empty:
        return trf_datas
    width = _width(model, trf_datas)
    trf_datas = list(trf_datas)
    for i in empty:
        trf_datas[i] = TransformerData(
            wordpieces=trf_datas[i].wordpieces,
            model_output=BaseModelOutput(
                last_hidden_state=model.ops.alloc3f(1, 1, width)  # type: ignore[arg-type]
            ),
            align=trf_datas[i].align,
        )
    return trf_datas


def _width(model: XLMRListener, trf_datas: List[TransformerData]) -> int:
    for trf_data in trf_datas:
        if trf_data.tensors:
            return trf_data.width
    if model.has_dim("nO"):
        return model.get_dim("nO")
    return connected_encoder(model).get_dim("nO")


def connected_encoder(listener: XLMRListener) -> Model:
    """The encoder model ``listener`` is connected to (set by
    ``XLMRTransformer.add_listener``): heads that run the encoder's weights
    themselves (masked LM, question answering) reach it this way."""
    encoder = getattr(listener, "encoder", None)
    if encoder is None:
        raise ValueError(
            "This head isn't connected to an xlmr_transformer encoder (it runs "
            "the encoder's weights itself). Add it after the encoder in the "
            'pipeline: nlp.add_pipe("xlmr_transformer", name="transformer", first=True).'
        )
    return encoder


def encoder_of(model: Model) -> Model:
    """The encoder that the listener of ``model`` (its "listener" ref) is
    connected to."""
    return connected_encoder(cast(XLMRListener, model.get_ref("listener")))


def build_listener(
    pooling: Model[Ragged, Floats2d], grad_factor: float = 1.0, upstream: str = "*"
) -> Model[List[Doc], List[Floats2d]]:
    """Token vectors from the pipeline's encoder, pooled over each token's
    pieces by ``pooling`` (tokens without pieces get zeros).

    upstream (str): Name of the encoder component, or "*" for any.
    grad_factor (float): Scale of the gradient sent to the encoder (0 freezes it
        for this head).
    """
    listener = XLMRListener(upstream_name=upstream)
    model: Model = chain(listener, trfs2arrays(pooling, grad_factor))
    model.set_ref("listener", listener)
    return model


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
