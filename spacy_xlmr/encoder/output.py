"""Typed access to the encoder's output in spacy-transformers' ``TransformerData``."""
from typing import cast

from spacy_transformers.data_classes import TransformerData
from thinc.types import Floats3d


def hidden_states(trf_data: TransformerData) -> Floats3d:
    """The ``(windows, seq_len, width)`` last hidden states of one doc (or
    their gradient).

    spacy-transformers types ``model_output`` as HF's ``ModelOutput``, which
    declares no ``last_hidden_state``; the encoder fills it with a
    ``BaseModelOutput`` whose ``last_hidden_state`` is an xp array (HF types
    it as a torch tensor)."""
    return cast(Floats3d, getattr(trf_data.model_output, "last_hidden_state"))
