"""What makes ``xlmr_transformer`` a drop-in for spacy-transformers'
``transformer``: its annotation setters (``set_extra_annotations``, also
under spacy-transformers' registered name), its ``max_batch_items`` option,
the error for its model settings, and its listener class, which spacy-xlmr
listens with too when it is installed."""
from typing import Callable, List, Tuple

import catalogue
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model

from ..encoder.data import SPACY_TRANSFORMERS, TransformerDataBatch
from ..encoder.listener import XLMRListener
from ..errors import Errors

# A set_extra_annotations callback: (docs, the batch's output) -> None.
AnnotationSetter = Callable[[List[Doc], TransformerDataBatch], None]
NULL_ANNOTATION_SETTER = "spacy-xlmr.null_annotation_setter.v1"
SPACY_TRANSFORMERS_NULL_ANNOTATION_SETTER = "spacy-transformers.null_annotation_setter.v1"

if not hasattr(registry, "annotation_setters"):  # spacy-transformers creates it
    registry.annotation_setters = catalogue.create(  # type: ignore[attr-defined]
        "spacy", "annotation_setters", entry_points=True
    )


def null_annotation_setter(docs: List[Doc], trf_data: TransformerDataBatch) -> None:
    """Set no annotations besides ``doc._.trf_data``."""


@registry.annotation_setters(NULL_ANNOTATION_SETTER)  # type: ignore[attr-defined]
def configure_null_annotation_setter() -> AnnotationSetter:
    return null_annotation_setter


if not SPACY_TRANSFORMERS:
    # Configs written for spacy-transformers' transformer load without it.
    registry.annotation_setters.register(  # type: ignore[attr-defined]
        SPACY_TRANSFORMERS_NULL_ANNOTATION_SETTER, func=configure_null_annotation_setter
    )


def check_encoder_model(model: Model, component: str) -> None:
    """Refuse a model other than ``spacy-xlmr.Encoder.v1`` (e.g.
    spacy-transformers' ``TransformerModel``), naming the settings to use."""
    if model.name == "xlmr_encoder":
        return
    raise ValueError(Errors.NOT_AN_XLMR_ENCODER.format(component=component, model=model.name))


def set_max_batch_pieces(
    model: Model, max_batch_items: int, component: str, *, default: int
) -> None:
    """Make ``max_batch_items`` the encoder's ``max_batch_pieces``, unless the
    model sets a budget other than the ``default`` itself."""
    own = model.attrs["max_batch_pieces"]
    if own not in (max_batch_items, default):
        raise ValueError(
            Errors.MAX_BATCH_ITEMS_CONFLICT.format(
                component=component, max_batch_items=max_batch_items, own=own
            )
        )
    window = model.attrs["window_size"] + 2
    if max_batch_items < window:
        raise ValueError(
            Errors.MAX_BATCH_ITEMS_TOO_SMALL.format(
                component=component, max_batch_items=max_batch_items, positions=window
            )
        )
    model.attrs["max_batch_pieces"] = max_batch_items


try:  # spacy-transformers' listener, when installed, listens here too.
    from spacy_transformers.layers import TransformerListener

    LISTENER_CLASSES: Tuple[type, ...] = (XLMRListener, TransformerListener)
except ImportError:
    LISTENER_CLASSES = (XLMRListener,)
