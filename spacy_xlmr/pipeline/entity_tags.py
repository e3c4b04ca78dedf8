"""Entity tag schemes (BIO, BILUO) and decoding tag scores into entities.

Two decoders, both always giving valid, non-overlapping entities:

* ``viterbi`` (default): the most probable tag sequence among the valid ones
  (e.g. ``I-PER`` only after ``B-PER``/``I-PER``), by dynamic programming over
  the tag log-probabilities.
* ``greedy``: the most probable tag of each token, read like the Hugging Face
  ``token-classification`` pipeline reads it: an entity starts at ``B-X`` (or
  at an ``I-X``/``L-X`` that doesn't continue an ``X`` entity) and continues
  while the tags are ``I-X``/``L-X``. Use it to reproduce HF outputs exactly.

IOB1 tag sets (from checkpoints such as CoNLL-03 models, where entities start
with ``I-``) have no invalid sequences, so both decoders give the same result.

Tokens without pieces (whitespace, dropped characters) have no evidence: they
never start or end an entity, and belong to one only when it continues past
them. An entity's score is the mean probability of the chosen tags of its
tokens that have pieces.
"""
from typing import List, Optional, Sequence, Tuple

import numpy

from ..errors import Errors

SCHEMES = ("BIO", "BILUO")  # for new tag sets; "IOB1" is read from checkpoints
DECODERS = ("viterbi", "greedy")
Entity = Tuple[int, int, str, float]  # start token, end token, label, score


def make_tags(labels: Sequence[str], scheme: str) -> List[str]:
    """The tag set of ``scheme`` for ``labels``: "O" first, then per label."""
    check_scheme(scheme)
    prefixes = "BI" if scheme == "BIO" else "BILU"
    return ["O"] + [f"{p}-{label}" for label in labels for p in prefixes]


def check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(
            Errors.UNKNOWN_TAG_SCHEME.format(scheme=scheme, choices=", ".join(SCHEMES))
        )


def labels_from_tags(tags: Sequence[str]) -> List[str]:
    """Entity labels of a tag list such as an HF ``id2label``, checked."""
    labels: List[str] = []
    for tag in tags:
        if tag == "O":
            continue
        prefix, _, label = tag.partition("-")
        if prefix in ("S", "E") and label:
            raise ValueError(Errors.IOBES_TAG.format(tag=tag))
        if prefix not in ("B", "I", "L", "U") or not label:
            raise ValueError(Errors.UNKNOWN_TAG.format(tag=tag))
        if label not in labels:
            labels.append(label)
    return labels


def scheme_of(tags: Sequence[str]) -> str:
    """BILUO if any L-/U- tag is present; IOB1 (entities start with I-, B-
    only separates two adjacent entities of a label) if some label has an I-
    tag but no B- tag, as in CoNLL-03 checkpoints; else BIO."""
    if any(tag[:2] in ("L-", "U-") for tag in tags):
        return "BILUO"
    inside = {tag[2:] for tag in tags if tag.startswith("I-")}
    begin = {tag[2:] for tag in tags if tag.startswith("B-")}
    return "IOB1" if inside - begin else "BIO"


def gold_tags(biluo: Sequence[Optional[str]], scheme: str) -> List[Optional[str]]:
    """Convert spaCy's gold BILUO tags of one doc (None or "-" where missing)
    to ``scheme``."""
    result: List[Optional[str]] = []
    previous = None  # the last gold tag, to tell IOB1 where B- is needed
    for tag in biluo:
        if tag is None or tag in ("-", ""):
            result.append(None)
            previous = None
            continue
        prefix, label = tag[0], tag[2:]
        if tag == "O" or scheme == "BILUO":
            result.append(tag)
        elif scheme == "BIO":
            result.append(("B-" if prefix in ("B", "U") else "I-") + label)
        else:  # IOB1: B- only right after an entity of the same label
            follows_same = (
                previous is not None and previous[0] in ("L", "U") and previous[2:] == label
            )
            result.append(("B-" if prefix in ("B", "U") and follows_same else "I-") + label)
        previous = tag
    return result


def _allowed(tags: Sequence[str]):
    """Masks of valid starts, transitions and ends for ``tags``."""
    n = len(tags)
    if scheme_of(tags) == "IOB1":  # any sequence reads as valid entities
        return numpy.ones(n, bool), numpy.ones((n, n), bool), numpy.ones(n, bool)
    parsed = [(t[0], t[2:]) if t != "O" else ("O", "") for t in tags]
    start = numpy.array([p in ("O", "B", "U") for p, _ in parsed])
    end = numpy.array([p in ("O", "L", "U") for p, _ in parsed])
    biluo = any(p in ("L", "U") for p, _ in parsed)
    if not biluo:
        end = numpy.array([True] * n)
    trans = numpy.zeros((n, n), dtype=bool)
    for i, (p1, l1) in enumerate(parsed):
        inside = p1 in ("B", "I")  # an entity is open after this tag
        for j, (p2, l2) in enumerate(parsed):
            if p2 in ("I", "L"):
                trans[i, j] = inside and l1 == l2
            elif biluo:
                trans[i, j] = not inside
            else:
                trans[i, j] = True
    return start, trans, end


def decode(
    probs: numpy.ndarray,
    tags: Sequence[str],
    has_pieces: numpy.ndarray,
    decoder: str = "viterbi",
) -> List[Entity]:
    """Entities ``(start, end, label, score)`` from per-token tag
    probabilities ``(n_tokens, n_tags)``."""
    if decoder not in DECODERS:
        raise ValueError(
            Errors.UNKNOWN_DECODER.format(decoder=decoder, choices=", ".join(DECODERS))
        )
    if len(probs) == 0:
        return []
    probs = numpy.asarray(probs, dtype="float64")
    if decoder == "viterbi":
        path = _viterbi(numpy.log(numpy.maximum(probs, 1e-12)), tags, has_pieces)
    else:
        path = probs.argmax(axis=1)
    chosen = probs[numpy.arange(len(path)), path]
    return [
        (start, end, label, float(chosen[start:end][has_pieces[start:end]].mean()))
        for start, end, label in _spans(path, tags, has_pieces)
    ]


def _viterbi(log_probs: numpy.ndarray, tags: Sequence[str], has_pieces) -> numpy.ndarray:
    start_ok, trans_ok, end_ok = _allowed(tags)
    n, n_tags = log_probs.shape
    # A token without pieces has no evidence: any tag that doesn't open an
    # entity is equally likely.
    scores = log_probs.copy()
    opens = numpy.array([t[:2] in ("B-", "U-") for t in tags])
    scores[~has_pieces] = 0.0
    scores[numpy.ix_(~has_pieces, opens)] = -numpy.inf
    trans = numpy.where(trans_ok, 0.0, -numpy.inf)
    best = numpy.where(start_ok, scores[0], -numpy.inf)
    back = numpy.zeros((n, n_tags), dtype="int64")
    for i in range(1, n):
        candidates = best[:, None] + trans
        back[i] = candidates.argmax(axis=0)
        best = candidates.max(axis=0) + scores[i]
    best = numpy.where(end_ok, best, -numpy.inf)
    if not numpy.isfinite(best).any():  # a tag set without a valid path
        return log_probs.argmax(axis=1)
    path = numpy.zeros(n, dtype="int64")
    path[-1] = best.argmax()
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def _spans(path, tags: Sequence[str], has_pieces) -> List[Tuple[int, int, str]]:
    """Read entities off a tag path. Tokens without pieces are skipped (an
    entity spans them only if it continues after them); an ``I-``/``L-`` that
    doesn't continue an entity of its label starts a new one."""
    entities = []
    current: Optional[List] = None  # [start, end, label]
    for i, tag_i in enumerate(path):
        if not has_pieces[i]:
            continue
        tag = tags[tag_i]
        prefix, label = (tag[0], tag[2:]) if tag != "O" else ("O", "")
        if prefix in ("I", "L") and current is not None and current[2] == label:
            current[1] = i + 1
        elif prefix == "O":
            current = None
        else:
            current = [i, i + 1, label]
            entities.append(current)
        if prefix in ("L", "U"):
            current = None
    return [(start, end, label) for start, end, label in entities]
