"""A component's own copy of the encoder, in place of its listener.

``nlp.replace_listeners("transformer", "ner", ["model.tok2vec"])`` copies the
encoder's model (weights, tokenizer, window and precision settings) into the
component: the listener node becomes an ``own_encoder`` layer that runs the
copy, and the component's config gets the encoder's settings at the
listener's path (``spacy-xlmr.Tok2VecEncoder.v1``), so the component is saved,
loaded, sourced and packaged on its own. The copy serializes with the
component's model (Hugging Face files, no pickle: ``module.py``) and trains
with the component.
"""
from typing import Any, Callable, Dict, List, Optional, Tuple

from spacy.tokens import Doc
from thinc.api import Model, chain
from thinc.types import Floats2d, Ragged

from .data import TransformerData, hidden_states
from .listener import pool_pieces, stand_in_for_empty
from .model import EncoderModel

OWN_ENCODER = "xlmr_own_encoder"
TOK2VEC_ENCODER = "spacy-xlmr.Tok2VecEncoder.v1"
OWN_ENCODER_ARCHITECTURE = "spacy-xlmr.OwnEncoder.v1"
# Listener architectures whose output is pooled into token vectors.
POOLED_LISTENERS = (
    "spacy-xlmr.TransformerListener.v1",
    "spacy-transformers.TransformerListener.v1",
)


def build_tok2vec_encoder(
    encoder: EncoderModel,
    pooling: Model[Ragged, Floats2d],
    grad_factor: float = 1.0,
) -> Model[List[Doc], List[Floats2d]]:
    """Token vectors from the component's own ``encoder``, pooled over each
    token's pieces (``spacy-xlmr.TransformerListener.v1`` with its own encoder)."""
    layer = own_encoder(encoder)
    model: Model = chain(layer, pool_pieces(pooling, grad_factor))
    model.set_ref("listener", layer)
    return model


def own_encoder(encoder: EncoderModel) -> Model[List[Doc], List[TransformerData]]:
    """The encoder output of each doc, from the component's own ``encoder``
    (what a listener gives, without the shared encoder component)."""
    model: Model = Model(OWN_ENCODER, _forward, init=_init, layers=[encoder], dims={"nO": None})
    model.set_ref("encoder", encoder)
    if encoder.has_dim("nO"):
        model.set_dim("nO", encoder.get_dim("nO"))
    return model


def is_own_encoder(node: Model) -> bool:
    return node.name == OWN_ENCODER


def load_own_encoders(model: Model) -> None:
    """Load the weights of the own encoders in ``model`` that have none yet
    (listeners replaced before ``initialize``)."""
    for node in model.walk():
        if is_own_encoder(node) and not node.has_dim("nO"):
            node.initialize()


def _init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> None:
    encoder = model.get_ref("encoder")
    encoder.initialize()
    model.set_dim("nO", encoder.get_dim("nO"), force=True)


def _forward(
    model: Model, docs: List[Doc], is_train: bool
) -> Tuple[List[TransformerData], Callable]:
    trf_datas, backprop_encoder = model.get_ref("encoder")(docs, is_train)
    outputs = stand_in_for_empty(model.ops, trf_datas, model.get_dim("nO"))

    def backprop(d_outputs: List[TransformerData]) -> List[Doc]:
        backprop_encoder(
            [hidden_states(d) if len(doc) else None for d, doc in zip(d_outputs, docs)]
        )
        return []

    return outputs, backprop


def replace_listener(copy: EncoderModel, listener: Model, component: Any) -> Model:
    """spaCy's ``replace_listener`` callback: the layer that takes the place
    of ``listener``, running ``copy`` (the encoder component's model, copied
    by ``Model.copy``; without weights yet before ``initialize``, which then
    loads them from its ``name``)."""
    return own_encoder(copy)


def replace_listener_cfg(encoder_cfg: Dict[str, Any], listener_cfg: Dict[str, Any]) -> Dict:
    """spaCy's ``replace_listener_cfg`` callback: the config at the listener's
    path once the component has its own copy of the encoder."""
    architecture = listener_cfg.get("@architectures")
    if architecture in POOLED_LISTENERS:
        return {
            "@architectures": TOK2VEC_ENCODER,
            "encoder": dict(encoder_cfg),
            "pooling": listener_cfg["pooling"],
            "grad_factor": listener_cfg.get("grad_factor", 1.0),
        }
    return {"@architectures": OWN_ENCODER_ARCHITECTURE, "encoder": dict(encoder_cfg)}
