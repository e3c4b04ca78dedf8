"""The heads' losses equal torch's, with torch's gradients, also where the
probabilities round to 0 or 1."""
import numpy
import pytest
import torch
from thinc.api import NumpyOps

from spacy_xlmr.heads.losses import binary_cross_entropy, cross_entropy, soft_cross_entropy

OPS = NumpyOps()


def _logits(scale: float) -> numpy.ndarray:
    return (numpy.random.default_rng(0).normal(size=(5, 4)) * scale).astype("float32")


def _torch_loss_and_grad(logits, loss_fn):
    tensor = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss = loss_fn(tensor)
    loss.backward()
    return float(loss), tensor.grad.numpy()


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_cross_entropy(scale):
    logits = _logits(scale)
    targets = numpy.array([0, 3, 1, 1, 2])
    loss, d_logits = cross_entropy(OPS, logits, targets)
    expected, grad = _torch_loss_and_grad(
        logits,
        lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(targets), reduction="sum"),
    )
    assert numpy.isfinite(loss)
    assert loss == pytest.approx(expected, rel=1e-5)
    numpy.testing.assert_allclose(d_logits, grad, atol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_soft_cross_entropy_weights_leave_rows_out(scale):
    logits = _logits(scale)
    truths = numpy.eye(4, dtype="float32")[[0, 3, 1, 1, 2]]
    weights = numpy.ones_like(truths)
    weights[2] = 0.0  # a doc without gold cats
    loss, d_logits = soft_cross_entropy(OPS, logits, truths, weights)
    kept = [0, 1, 3, 4]
    expected, grad = _torch_loss_and_grad(
        logits[kept],
        lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(truths[kept]), reduction="sum"),
    )
    assert loss == pytest.approx(expected, rel=1e-5)
    numpy.testing.assert_allclose(d_logits[kept], grad, atol=1e-6)
    assert not d_logits[2].any()


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_binary_cross_entropy(scale):
    logits = _logits(scale)
    truths = (numpy.random.default_rng(1).random(logits.shape) > 0.5).astype("float32")
    weights = (numpy.random.default_rng(2).random(logits.shape) > 0.3).astype("float32")
    loss, d_logits = binary_cross_entropy(OPS, logits, truths, weights)
    expected, grad = _torch_loss_and_grad(
        logits,
        lambda x: torch.nn.functional.binary_cross_entropy_with_logits(
            x, torch.tensor(truths, dtype=torch.float64),
            weight=torch.tensor(weights, dtype=torch.float64), reduction="sum",
        ),
    )
    assert numpy.isfinite(loss)
    assert loss == pytest.approx(expected, rel=1e-5)
    numpy.testing.assert_allclose(d_logits, grad, atol=1e-6)
