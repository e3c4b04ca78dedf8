"""Training options of the encoder that must not change its gradients:
gradient checkpointing, and loss scaling over several backward passes."""
import numpy
import pytest
import torch
from thinc.api import PyTorchGradScaler

from spacy_xlmr.encoder import model as encoder_model


from ..util import make_nlp, no_dropout

TEXTS = ["Lisboa e Porto ficam em Portugal.", "Olá!", "Madrid " * 12]


class CPUGradScaler(PyTorchGradScaler):
    """thinc's loss scaler, whose kernels need a GPU, with the same
    arithmetic on CPU (a fixed scale)."""

    def __init__(self, scale: float):
        super().__init__(enabled=True, init_scale=scale)
        self.backward_passes = 0

    def _scale_tensor(self, tensor, scale_per_device, inplace):
        return tensor.mul_(self._scale) if inplace else tensor * self._scale

    def unscale(self, tensors):
        self.backward_passes += 1
        for tensor in tensors:
            tensor.div_(self._scale)
            self._found_inf |= not bool(torch.isfinite(tensor).all())
        return self._found_inf


def _gradients(tiny_checkpoint, monkeypatch, *, grad_scaler=None, **encoder_config):
    if grad_scaler is not None:  # the scaler the encoder's builder makes
        monkeypatch.setattr(encoder_model, "PyTorchGradScaler", lambda **_: grad_scaler)
    nlp = make_nlp(
        tiny_checkpoint, window_size=8, stride=5, max_batch_pieces=24, **encoder_config
    )
    if encoder_config.get("mixed_precision"):
        with pytest.warns(UserWarning, match="mixed_precision = true needs a GPU"):
            nlp.initialize()
    else:
        nlp.initialize()
    encoder = nlp.get_pipe("transformer").model
    transformer = nlp.get_pipe("transformer").encoder.torch_module
    no_dropout(transformer)
    trf_datas, backprop = encoder.begin_update([nlp.make_doc(t) for t in TEXTS])
    rng = numpy.random.default_rng(0)
    d_hidden = [
        rng.normal(size=t.model_output.last_hidden_state.shape).astype("float32")
        for t in trf_datas
    ]
    transformer.zero_grad()
    backprop(d_hidden)
    outputs = [t.model_output.last_hidden_state for t in trf_datas]
    grads = {n: p.grad.clone() for n, p in transformer.named_parameters() if p.grad is not None}
    return transformer, outputs, grads


def test_gradient_checkpointing_gives_the_same_outputs_and_gradients(
    tiny_checkpoint, monkeypatch
):
    plain, plain_outputs, plain_grads = _gradients(tiny_checkpoint, monkeypatch)
    checkpointed, outputs, grads = _gradients(
        tiny_checkpoint, monkeypatch, gradient_checkpointing=True
    )
    assert not plain.is_gradient_checkpointing
    assert checkpointed.is_gradient_checkpointing
    for a, b in zip(plain_outputs, outputs):
        numpy.testing.assert_allclose(a, b, atol=1e-6)
    assert grads.keys() == plain_grads.keys() and len(grads) > 10
    for name, grad in grads.items():
        torch.testing.assert_close(grad, plain_grads[name], atol=1e-6, rtol=1e-5)


def test_loss_scaling_unscales_each_gradient_once(tiny_checkpoint, monkeypatch):
    """With mixed precision, the windows of an update are several backward
    passes (one per length batch) before one optimizer step; every gradient
    must be unscaled exactly once. (On CPU the encoder turns mixed precision
    off, with a warning; the test gives it a CPU scaler.)"""
    _, plain_outputs, plain_grads = _gradients(tiny_checkpoint, monkeypatch)
    scaler = CPUGradScaler(1024.0)
    _, outputs, grads = _gradients(
        tiny_checkpoint, monkeypatch, grad_scaler=scaler, mixed_precision=True
    )
    assert scaler.backward_passes > 1 and not scaler.found_inf
    for a, b in zip(plain_outputs, outputs):
        numpy.testing.assert_allclose(a, b, atol=1e-6)
    assert grads.keys() == plain_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, plain_grads[name], atol=1e-6, rtol=1e-4)
