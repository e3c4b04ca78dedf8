"""The encoder's output for one doc, stored in ``doc._.trf_data``.

With spacy-transformers installed (the ``spacy-transformers`` extra),
``TransformerData`` and ``WordpieceBatch`` are spacy-transformers' own classes,
so its ``spacy-transformers.TransformerListener.v1`` reads the output as it
reads that of its own ``transformer``. Without it they are the classes below,
with the same attribute surface: ``wordpieces`` (the windows' pieces),
``model_output`` (HF's ``BaseModelOutput`` with ``last_hidden_state``, an xp
array of shape ``(windows, seq_len, width)``), ``align`` (token → rows of the
flattened hidden states), ``tensors`` and ``width``.

Every encoder component writes its output to ``doc._.trf_data``, as
spacy-transformers' ``transformer`` does: with several encoders, it holds the
output of the last one that ran (while the pipeline runs, the nearest one
before the component reading it). The outputs of the others stay on the doc,
by encoder name, in ``doc._.xlmr_other_trf_data``; ``get_trf_data`` reads any
encoder's output.
"""
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple, cast

import numpy
import srsly
from spacy.tokens import Doc
from thinc.types import Floats2d, Floats3d, FloatsXd, Ints1d, Ints2d, Ragged
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from ..errors import Errors

# The Doc extension that holds each doc's encoder output.
TRF_DATA = "trf_data"
# The name of the encoder component whose output is in doc._.trf_data, and
# the outputs of the pipeline's other encoders (name -> TransformerData).
TRF_DATA_ENCODER = "xlmr_trf_data_encoder"
OTHER_TRF_DATA = "xlmr_other_trf_data"


@dataclass
class XLMRWordpieceBatch:
    """The pieces of one doc's windows, with ``<s>`` and ``</s>``, padded."""

    strings: List[List[str]]
    input_ids: Ints2d
    attention_mask: Floats2d
    lengths: List[int]
    token_type_ids: Optional[Ints2d] = None

    def __len__(self) -> int:
        return len(self.strings)

    @classmethod
    def empty(cls) -> "XLMRWordpieceBatch":
        return cls(
            strings=[],
            input_ids=cast(Ints2d, numpy.zeros((0, 0), dtype="i")),
            attention_mask=cast(Floats2d, numpy.zeros((0, 0), dtype="f")),
            lengths=[],
        )


@dataclass
class XLMRTransformerData:
    """One doc's pieces, hidden states and token alignment."""

    wordpieces: XLMRWordpieceBatch
    model_output: ModelOutput = field(default_factory=ModelOutput)
    align: Ragged = field(
        default_factory=lambda: Ragged(
            cast(Ints1d, numpy.zeros((0,), dtype="i")), cast(Ints1d, numpy.zeros((0,), dtype="i"))
        )
    )

    @classmethod
    def empty(cls) -> "XLMRTransformerData":
        """The output of an empty doc: no pieces, no tensors."""
        return cls(wordpieces=XLMRWordpieceBatch.empty())

    @property
    def tensors(self) -> Tuple[FloatsXd, ...]:
        """The model output's arrays: ``(last_hidden_state,)``, or ``()`` for
        an empty doc."""
        return self.model_output.to_tuple()

    @property
    def width(self) -> int:
        if "last_hidden_state" not in self.model_output:
            raise ValueError(Errors.NO_HIDDEN_STATES)
        return int(self.model_output["last_hidden_state"].shape[-1])

    def to_dict(self) -> Dict[str, Any]:
        return {
            "wordpieces": asdict(self.wordpieces),
            "model_output": dict(self.model_output),
            "align": [self.align.dataXd, self.align.lengths],
        }

    @classmethod
    def from_dict(cls, msg: Dict[str, Any]) -> "XLMRTransformerData":
        output = msg["model_output"]
        pieces = dict(msg["wordpieces"])
        pieces["strings"] = [list(window) for window in pieces["strings"]]
        pieces["lengths"] = list(pieces["lengths"])
        return cls(
            wordpieces=XLMRWordpieceBatch(**pieces),
            model_output=BaseModelOutput(**output) if output else ModelOutput(),
            align=Ragged(*msg["align"]),
        )


# doc._.trf_data travels with docs between processes (nlp.pipe(n_process=...))
# and in DocBin(store_user_data=True), as spacy-transformers' does.
@srsly.msgpack_encoders("xlmr_transformer_data")
def _serialize_transformer_data(obj, chain=None):
    if isinstance(obj, XLMRTransformerData):
        return {"__xlmr_transformer_data__": obj.to_dict()}
    return obj if chain is None else chain(obj)


@srsly.msgpack_decoders("xlmr_transformer_data")
def _deserialize_transformer_data(obj, chain=None):
    if "__xlmr_transformer_data__" in obj:
        return XLMRTransformerData.from_dict(obj["__xlmr_transformer_data__"])
    return obj if chain is None else chain(obj)


try:
    from spacy_transformers.data_classes import TransformerData, WordpieceBatch
except ImportError:  # spacy-transformers isn't installed (or can't run here)
    TransformerData = XLMRTransformerData  # type: ignore[misc, assignment]
    WordpieceBatch = XLMRWordpieceBatch  # type: ignore[misc, assignment]

SPACY_TRANSFORMERS = TransformerData is not XLMRTransformerData


@dataclass
class TransformerDataBatch:
    """A batch's encoder output as ``set_extra_annotations`` callbacks get it:
    ``doc_data`` is each doc's ``TransformerData``, as in spacy-transformers'
    ``FullTransformerBatch``."""

    doc_data: List[TransformerData]


def set_trf_data(doc: Doc, encoder: str, trf_data: TransformerData) -> None:
    """Store the output of the encoder component named ``encoder`` in
    ``doc._.trf_data``; the output of another encoder that was there moves to
    ``doc._.xlmr_other_trf_data``."""
    holder = doc._.get(TRF_DATA_ENCODER)
    others = dict(doc._.get(OTHER_TRF_DATA) or {})
    if holder not in (None, encoder) and doc._.get(TRF_DATA) is not None:
        others[holder] = doc._.get(TRF_DATA)
    others.pop(encoder, None)
    doc._.set(OTHER_TRF_DATA, others or None)
    doc._.set(TRF_DATA_ENCODER, encoder)
    doc._.set(TRF_DATA, trf_data)


def get_trf_data(doc: Doc, encoder: Optional[str]) -> Optional[TransformerData]:
    """The output of the encoder component named ``encoder`` for ``doc``, or
    None if it hasn't run on it. ``doc._.trf_data`` when no encoder is named
    or when no encoder component set it (set by other code)."""
    if not Doc.has_extension(TRF_DATA):
        return None
    holder = doc._.get(TRF_DATA_ENCODER)
    if encoder is None or holder in (None, encoder):
        return doc._.get(TRF_DATA)
    return (doc._.get(OTHER_TRF_DATA) or {}).get(encoder)


def encoders_that_ran(doc: Doc) -> List[str]:
    """The names of the encoder components whose output ``doc`` holds."""
    if not Doc.has_extension(TRF_DATA_ENCODER) or doc._.get(TRF_DATA_ENCODER) is None:
        return []
    return [doc._.get(TRF_DATA_ENCODER), *(doc._.get(OTHER_TRF_DATA) or {})]


def make_trf_data(
    wordpieces: WordpieceBatch, hidden: Floats3d, align: Ragged
) -> TransformerData:
    """One doc's ``TransformerData``: ``hidden`` is its ``(windows, seq_len,
    width)`` output (or the gradient of it)."""
    # An xp array where HF types a torch tensor, as in spacy-transformers.
    output = BaseModelOutput(last_hidden_state=hidden)  # type: ignore[arg-type]
    return TransformerData(wordpieces=wordpieces, model_output=output, align=align)


def hidden_states(trf_data: TransformerData) -> Floats3d:
    """The ``(windows, seq_len, width)`` last hidden states of one doc (or
    their gradient)."""
    return cast(Floats3d, trf_data.model_output["last_hidden_state"])


def has_hidden_states(trf_data: TransformerData) -> bool:
    """Whether the doc was encoded (an empty doc isn't)."""
    return "last_hidden_state" in trf_data.model_output
