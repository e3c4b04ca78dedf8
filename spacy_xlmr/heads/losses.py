"""The losses of the heads' logits, computed with thinc's ops (numpy or
cupy), with their gradients with respect to the logits: one cross-entropy
for every head, from exact log-probabilities (no epsilon)."""
from typing import Tuple, cast

from thinc.api import Ops
from thinc.types import Floats2d, Ints1d


def log_softmax(ops: Ops, logits: Floats2d) -> Floats2d:
    """Log-probabilities of each row of ``logits``."""
    # thinc's stubs lack max's keepdims
    shifted = logits - logits.max(axis=1, keepdims=True)  # type: ignore[call-arg]
    return shifted - ops.xp.log(ops.xp.exp(shifted).sum(axis=1, keepdims=True))


def log_sigmoid(ops: Ops, logits: Floats2d) -> Floats2d:
    """``log(sigmoid(logits))``, exact for large ``|logits|``."""
    return cast(Floats2d, -ops.xp.logaddexp(0.0, -logits))


def cross_entropy(ops: Ops, logits: Floats2d, targets: Ints1d) -> Tuple[float, Floats2d]:
    """The summed cross-entropy of the rows of ``logits`` against their
    target classes, and its gradient (softmax minus one-hot)."""
    log_probs = log_softmax(ops, logits)
    rows = ops.xp.arange(len(targets))
    loss = -float(log_probs[rows, targets].sum())
    d_logits = ops.xp.exp(log_probs)
    d_logits[rows, targets] -= 1.0
    return loss, d_logits


def soft_cross_entropy(
    ops: Ops, logits: Floats2d, truths: Floats2d, weights: Floats2d
) -> Tuple[float, Floats2d]:
    """The cross-entropy of the rows of ``logits`` against target
    distributions ``truths``, each term weighted by ``weights`` (0 leaves a
    class out), summed; and its gradient."""
    log_probs = log_softmax(ops, logits)
    loss = -float(ops.xp.sum(truths * log_probs * weights))
    return loss, (ops.xp.exp(log_probs) - truths) * weights


def binary_cross_entropy(
    ops: Ops, logits: Floats2d, truths: Floats2d, weights: Floats2d
) -> Tuple[float, Floats2d]:
    """The binary cross-entropy of each of ``logits`` (sigmoid) against
    ``truths``, weighted by ``weights``, summed; and its gradient."""
    terms = truths * log_sigmoid(ops, logits) + (1 - truths) * log_sigmoid(ops, -logits)
    loss = -float(ops.xp.sum(terms * weights))
    return loss, (ops.sigmoid(logits) - truths) * weights
