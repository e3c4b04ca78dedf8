"""Reading a masked LM's logits into fill-mask answers as HF's fill-mask
pipeline does: the candidates ``targets`` allow (``target_ids``), the top-k
pieces of each mask (``top_k``: a stable sort without sorting the
vocabulary) and their ``{"score", "token", "token_str", "sequence"}``
(``fill_masks``), decoded from the doc's pieces (``input_ids``), and the
spaCy token that is each ``<mask>``, where there is one (``mask_tokens``)."""
import warnings
from typing import Any, Dict, List, Optional, Sequence

import numpy
from spacy.tokens import Doc, Token
from thinc.api import NumpyOps

from ..encoder.data import TransformerData
from ..errors import Errors, Warnings
from .masking import MASK, mask_rows

# Top-k selection runs on the CPU whatever the model's device.
NUMPY_OPS = NumpyOps()


def target_ids(tokenizer, targets: Sequence[str], name: str) -> numpy.ndarray:
    """Vocabulary ids of ``targets``, as HF's fill-mask pipeline resolves
    them: a target that is a piece of the vocabulary as written ("de" and
    "▁de" are two pieces) is that piece; another is replaced by the first
    piece of its tokenization, with a warning, and one without pieces is
    ignored, with a warning. ``name`` (the component's) starts the
    messages."""
    vocab = tokenizer.get_vocab()
    ids = []
    for target in targets:
        if target in vocab:
            ids.append(vocab[target])
            continue
        pieces = tokenizer(
            target, add_special_tokens=False, return_attention_mask=False,
            max_length=1, truncation=True, verbose=False,
        )["input_ids"]
        if not pieces:
            warnings.warn(Warnings.TARGET_NOT_IN_VOCAB.format(component=name, target=target))
            continue
        warnings.warn(
            Warnings.TARGET_NOT_A_PIECE.format(
                component=name,
                target=target,
                piece=tokenizer.convert_ids_to_tokens(pieces[0]),
            )
        )
        ids.append(pieces[0])
    if not ids:
        raise ValueError(
            Errors.MLM_NO_TARGET_IN_VOCAB.format(component=name, targets=list(targets))
        )
    return numpy.array(sorted(set(ids)))


def fill_masks(
    logits: numpy.ndarray,
    ids: Sequence[int],
    tokenizer,
    *,
    k: int,
    candidates: Optional[numpy.ndarray],
) -> List[List[Dict[str, Any]]]:
    """The ``k`` best predictions of each mask of a doc (``logits``: one row
    per ``<mask>`` piece of ``ids``, the doc's pieces with ``<s>`` and
    ``</s>``), from ``candidates`` (None: the whole vocabulary), best first:
    the probability, the piece, its text and ``ids`` decoded with the piece
    in the mask's place."""
    mask_positions = [i for i, piece in enumerate(ids) if piece == tokenizer.mask_token_id]
    results = []
    probs_rows = NUMPY_OPS.softmax(logits) if len(logits) else logits
    for i, probs in enumerate(probs_rows):
        if candidates is None:
            best = top_k(probs, k)
        else:
            best = candidates[top_k(probs[candidates], k)]
        predictions = []
        for token_id in best:
            filled = list(ids)
            filled[mask_positions[i]] = int(token_id)
            predictions.append({
                "score": float(probs[token_id]),
                "token": int(token_id),
                "token_str": tokenizer.decode([int(token_id)]),
                # As HF's pipeline: special tokens stay when there are
                # several masks.
                "sequence": tokenizer.decode(filled, skip_special_tokens=len(logits) == 1),
            })
        results.append(predictions)
    return results


def mask_tokens(doc: Doc, trf_data: TransformerData, mask_id: int) -> List[Optional[Token]]:
    """For each ``<mask>`` piece of the doc (text order), the token that is
    that mask, or None where the mask is glued to other text ("a<mask>")."""
    row_token = {
        int(row): token
        for token in doc if token.text == MASK
        for row in trf_data.align[token.i].dataXd.ravel()
    }
    return [row_token.get(row) for row in mask_rows(trf_data, mask_id)]


def input_ids(doc: Doc, trf_data: TransformerData, tokenizer) -> List[int]:
    """The doc's pieces with ``<s>`` and ``</s>``, as HF's pipeline encodes the
    text (one window's ids are in ``trf_data``; longer docs are re-encoded)."""
    wordpieces = trf_data.wordpieces
    if len(wordpieces.lengths) == 1:
        return wordpieces.input_ids[0, : wordpieces.lengths[0]].tolist()
    return tokenizer(doc.text, verbose=False)["input_ids"]


def top_k(scores: numpy.ndarray, k: int) -> numpy.ndarray:
    """Indices of the ``k`` largest scores, largest first and ties in index
    order (as a stable sort of all scores), without sorting the vocabulary."""
    if k >= len(scores):
        return numpy.argsort(-scores, kind="stable")
    kth = numpy.partition(scores, len(scores) - k)[len(scores) - k]
    contenders = numpy.flatnonzero(scores >= kth)
    return contenders[numpy.argsort(-scores[contenders], kind="stable")[:k]]
