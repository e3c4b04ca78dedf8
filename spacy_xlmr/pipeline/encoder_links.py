"""How listeners are linked to the encoder components of a pipeline with
several encoders: each listener reads the encoder its ``upstream`` names, "*"
the nearest one before its component (``link_encoders``), and an upstream
that names no encoder before the component is an error (``check_upstreams``)."""
from typing import TYPE_CHECKING, List, Optional, cast

from spacy.language import Language
from thinc.api import Model

from ..encoder.listener import LINKED_ENCODER, XLMRListener
from ..errors import Errors
from .drop_in import LISTENER_CLASSES

if TYPE_CHECKING:
    from .transformer import XLMRTransformer

# Factories whose components spacy-xlmr listeners listen to.
ENCODER_FACTORIES = ("xlmr_transformer",)


def is_xlmr_encoder(nlp: Language, name: str) -> bool:
    """Whether the component ``name`` is an XLM-R encoder component."""
    return nlp.get_pipe_meta(name).factory in ENCODER_FACTORIES


def linked_encoder(listener: Model) -> Optional["XLMRTransformer"]:
    """The encoder component ``listener`` is linked to, if any."""
    return getattr(listener, LINKED_ENCODER, None)


def link_encoders(nlp: Language) -> None:
    """Link every encoder component's listeners, as ``Language`` does (in
    pipeline order: "*" goes to the nearest encoder)."""
    for i, (name, component) in enumerate(nlp.pipeline):
        if is_xlmr_encoder(nlp, name):
            for _, downstream in nlp.pipeline[i + 1 :]:
                cast("XLMRTransformer", component).find_listeners(downstream)


def check_upstreams(nlp: Language) -> None:
    """Refuse a listener whose ``upstream`` names no encoder component before
    its component, and a spacy-transformers listener linked to an encoder
    other than the nearest one before its component (it reads
    ``doc._.trf_data``, which holds the nearest one's output while the
    pipeline runs)."""
    listened = [name for name, proc in nlp.pipeline if hasattr(proc, "listener_map")]
    before: List[str] = []
    nearest: Optional[str] = None
    for name, component in nlp.pipeline:
        if hasattr(component, "listener_map"):
            before.append(name)
            nearest = name if is_xlmr_encoder(nlp, name) else nearest
            continue
        model = getattr(component, "model", None)
        for node in model.walk() if isinstance(model, Model) else ():
            if isinstance(node, LISTENER_CLASSES):
                check_upstream(cast(XLMRListener, node), name, before, listened, nearest)


def check_upstream(
    listener: XLMRListener,
    component: str,
    before: List[str],
    listened: List[str],
    nearest: Optional[str],
) -> None:
    """See ``check_upstreams``: ``before`` and ``listened`` are the encoder
    components before ``component`` and in the whole pipeline, ``nearest``
    the nearest xlmr_transformer before it."""
    upstream = listener.upstream_name
    if upstream != "*" and upstream not in listened:
        raise ValueError(
            Errors.NO_SUCH_UPSTREAM.format(
                component=component, upstream=upstream, listened=listened
            )
        )
    if upstream != "*" and upstream not in before:
        raise ValueError(
            Errors.UPSTREAM_AFTER_COMPONENT.format(
                component=component, upstream=upstream, before=before
            )
        )
    linked = linked_encoder(listener)
    if isinstance(listener, XLMRListener) or linked is None or linked.name == nearest:
        return
    raise ValueError(
        Errors.TRF_DATA_OF_OTHER_ENCODER.format(
            component=component, nearest=nearest, upstream=linked.name
        )
    )
