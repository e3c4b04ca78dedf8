"""Masking for masked-language modelling: which pieces training masks and
how (``mask_pieces``: BERT/RoBERTa's recipe, as HF's
``DataCollatorForLanguageModeling`` applies it), and where the ``<mask>``
pieces of a text are in its encoder output (``mask_rows``), the rows the
head scores at prediction."""
from typing import List, Sequence, Tuple, cast

import numpy
from thinc.types import Ints1d

from ..encoder.data import TransformerData

MASK = "<mask>"


def mask_pieces(
    ids: Sequence[int],
    rng: numpy.random.Generator,
    *,
    mask_id: int,
    replacement_ids: numpy.ndarray,
    probability: float = 0.15,
) -> Tuple[List[int], numpy.ndarray]:
    """Choose each piece with ``probability``; replace 80% of the chosen ones
    with ``<mask>``, 10% with a random piece from ``replacement_ids`` and keep
    10%, as in BERT and RoBERTa pretraining.

    RETURNS: the masked ids and the positions of the chosen pieces.
    """
    masked = numpy.array(ids, dtype="int64")
    chosen = numpy.flatnonzero(rng.random(len(masked)) < probability)
    action = rng.random(len(chosen))
    masked[chosen[action < 0.8]] = mask_id
    randomized = chosen[(action >= 0.8) & (action < 0.9)]
    masked[randomized] = rng.choice(replacement_ids, size=len(randomized))
    return masked.tolist(), chosen


def mask_rows(trf_data: TransformerData, mask_token_id: int) -> List[int]:
    """Rows of the doc's flattened encoder output that hold ``<mask>`` pieces,
    in text order, each from the window that owns it."""
    ids = cast(Ints1d, trf_data.wordpieces.input_ids.reshape((-1,)))
    owned = {int(row) for row in trf_data.align.dataXd}
    return sorted(row for row in owned if ids[row] == mask_token_id)
