"""Reduced-precision predictions: bf16 autocast and int8 dynamic
quantization change the numbers a little, not the training, and the int8
copy follows the weights, sharing every fp32 tensor with them."""
import copy
import itertools
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from spacy.training import Example

from spacy_xlmr.encoder import precision as encoder_precision
from spacy_xlmr.load import from_huggingface

from ..util import make_nlp

TEXTS = [
    line.strip()
    for line in (Path(__file__).parents[2] / "data" / "text" / "ntrex128-por.txt").open(
        encoding="utf8"
    )
][:24]


def _hidden(nlp, texts):
    return [doc._.trf_data.model_output.last_hidden_state for doc in nlp.pipe(texts)]


def _nlp(checkpoint, precision):
    return from_huggingface(
        str(checkpoint), "token-classification",
        encoder_config={"inference_precision": precision},
    )


@pytest.fixture(scope="module")
def fp32_hidden(token_classification_checkpoint):
    return _hidden(_nlp(token_classification_checkpoint, "fp32"), TEXTS)


@pytest.mark.parametrize("precision,tolerance", [("bf16", 0.05), ("int8", 0.1)])
def test_reduced_precision_is_close_not_equal(
    token_classification_checkpoint, fp32_hidden, precision, tolerance
):
    nlp = _nlp(token_classification_checkpoint, precision)
    hidden = _hidden(nlp, TEXTS)
    deviations = [numpy.abs(a - b).max() / numpy.abs(b).max() for a, b in zip(hidden, fp32_hidden)]
    assert max(deviations) < tolerance
    assert max(deviations) > 1e-4  # the reduced precision is really used
    assert all(h.dtype == numpy.float32 for h in hidden)
    for doc in nlp.pipe(TEXTS):
        for ent in doc.ents:
            assert doc.text[ent.start_char : ent.end_char] == ent.text


def test_int8_copy_shares_the_fp32_tensors_and_keeps_the_original(token_classification_checkpoint):
    nlp = _nlp(token_classification_checkpoint, "int8")
    nlp(TEXTS[0])
    original = nlp.get_pipe("transformer").encoder.torch_module
    quantized = encoder_precision.inference_module(nlp.get_pipe("transformer").model)
    assert quantized.embeddings is original.embeddings
    # No fp32 weight is duplicated: the copy's float tensors are the original's.
    original_tensors = {id(t) for t in itertools.chain(original.parameters(), original.buffers())}
    copy_tensors = list(itertools.chain(quantized.parameters(), quantized.buffers()))
    assert copy_tensors and all(id(t) in original_tensors for t in copy_tensors)
    quantized_linear = torch.ao.nn.quantized.dynamic.Linear
    assert any(isinstance(m, quantized_linear) for m in quantized.encoder.modules())
    assert any(isinstance(m, torch.nn.Linear) for m in original.encoder.modules())
    assert not any(type(m) is torch.nn.Linear for m in quantized.encoder.modules())


def test_int8_copy_follows_training(token_classification_checkpoint):
    spacy.util.fix_random_seed(0)
    nlp = _nlp(token_classification_checkpoint, "int8")
    before = _hidden(nlp, TEXTS[:2])
    doc = nlp.make_doc("Maria mora em Lisboa.")
    example = Example.from_dict(doc, {"entities": [(0, 5, "PER"), (14, 20, "LOC")]})
    optimizer = nlp.resume_training()
    for _ in range(3):
        nlp.update([example], sgd=optimizer)
    after = _hidden(nlp, TEXTS[:2])
    assert not numpy.allclose(before[0], after[0])
    fp32 = nlp.get_pipe("transformer").model
    fp32.attrs["inference_precision"] = "fp32"
    reference = _hidden(nlp, TEXTS[:2])
    assert numpy.abs(after[0] - reference[0]).max() / numpy.abs(reference[0]).max() < 0.1


def test_int8_copy_of_an_own_encoder_follows_training(token_classification_checkpoint):
    """After replace_listeners the head trains its own encoder copy: its int8
    copy is made again after the update, and Model.copy doesn't copy it."""
    spacy.util.fix_random_seed(0)
    nlp = _nlp(token_classification_checkpoint, "int8")
    nlp("Maria mora em Lisboa.")  # the shared encoder's int8 copy exists
    nlp.replace_listeners("transformer", "ner", ["model.tok2vec"])
    nlp.remove_pipe("transformer")
    ner = nlp.get_pipe("ner")
    own = ner.model.get_ref("tok2vec").get_ref("listener").get_ref("encoder")
    before = encoder_precision.inference_module(own)
    assert before is encoder_precision.inference_module(own)  # cached
    assert before is not encoder_precision.inference_module(own.copy())
    doc = nlp.make_doc("Maria mora em Lisboa.")
    example = Example.from_dict(doc, {"entities": [(0, 5, "PER"), (14, 20, "LOC")]})
    optimizer = nlp.resume_training()
    (predicted_before,) = ner.predict([doc]).logits
    for _ in range(3):
        nlp.update([example], sgd=optimizer)
    after = encoder_precision.inference_module(own)
    assert after is not before
    assert not numpy.allclose(predicted_before, ner.predict([doc]).logits[0])


def test_training_is_not_affected(tiny_checkpoint):
    """Updates run in full precision whatever inference_precision says."""
    losses = {}
    for precision in ("fp32", "bf16", "int8"):
        spacy.util.fix_random_seed(0)
        nlp = make_nlp(tiny_checkpoint, inference_precision=precision)
        nlp.add_pipe("xlmr_ner", name="ner")
        doc = nlp.make_doc("Maria mora em Lisboa.")
        examples = [Example.from_dict(doc, {"entities": [(0, 5, "PER"), (14, 20, "LOC")]})]
        optimizer = nlp.initialize(lambda: examples)
        losses[precision] = [nlp.update(examples, sgd=optimizer)["ner"] for _ in range(3)]
    assert losses["bf16"] == losses["fp32"] == losses["int8"]


def test_bad_precisions(tiny_checkpoint):
    with pytest.raises(ValueError, match="Unknown inference_precision 'int4'"):
        make_nlp(tiny_checkpoint, inference_precision="int4")
    nlp = make_nlp(tiny_checkpoint, inference_precision="fp16")
    nlp.initialize()
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        nlp("Olá.")


@pytest.mark.parametrize("full_range,at_most", [(False, 1.0), (True, 0.75)])
def test_int8_is_closer_to_fp32_than_torchs_default_quantization(
    token_classification_checkpoint, fp32_hidden, monkeypatch, full_range, at_most
):
    """Weights quantized per output channel, and on VNNI CPUs inputs in all 8
    bits, deviate less from fp32 than ``quantize_dynamic``'s defaults."""
    if full_range and not encoder_precision._int8_full_range():
        pytest.skip("this CPU has no VNNI: int8 inputs keep torch's 7 bits")
    monkeypatch.setattr(encoder_precision, "_int8_full_range", lambda: full_range)
    nlp = _nlp(token_classification_checkpoint, "int8")
    ours = _hidden(nlp, TEXTS)

    def torch_defaults(transformer):
        quantized = copy.copy(transformer)
        quantized._modules = dict(quantized._modules)
        quantized._modules["encoder"] = torch.ao.quantization.quantize_dynamic(
            transformer.encoder, {torch.nn.Linear}, dtype=torch.qint8
        )
        return quantized

    monkeypatch.setattr(encoder_precision, "quantize_int8", torch_defaults)
    encoder_precision.clear_inference_cache(nlp.get_pipe("transformer").model)
    torch_default = _hidden(nlp, TEXTS)

    def deviation(hidden):
        return numpy.mean([numpy.abs(a - b).mean() for a, b in zip(hidden, fp32_hidden)])

    assert deviation(ours) < at_most * deviation(torch_default)


def test_int8_full_range_inputs_dont_overflow():
    """Inputs at the top of the 8-bit range times weights at the top of int8:
    without VNNI the int16 sums of neighbouring products would saturate
    (about half the exact output); with it the output stays within 1%."""
    if not encoder_precision._int8_full_range():
        pytest.skip("this CPU has no VNNI: int8 inputs keep torch's 7 bits")
    linear = torch.nn.Linear(768, 2)
    with torch.no_grad():
        linear.weight[0] = 1.0
        linear.weight[1] = -1.0
        linear.bias.zero_()
    quantized = torch.ao.quantization.quantize_dynamic(
        torch.nn.Sequential(linear),
        {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
        mapping={torch.nn.Linear: encoder_precision._FullRangeInt8Linear},
    )
    inputs = torch.full((2, 768), 3.0)
    with torch.inference_mode():
        numpy.testing.assert_allclose(quantized(inputs), linear(inputs), rtol=0.01)


# Largest change of a doc's hidden states between nlp(doc) alone and
# nlp.pipe (reversed order; one batch, and batches of 5), relative to the
# doc's largest hidden value, measured on this encoder at 2 threads: fp32
# 2.3e-7, bf16 9.5e-5, int8 7.6e-4 (int8 quantizes each Linear's input with
# one scale per padded batch). The bounds leave a margin of 4x or more.
BATCH_BOUNDS = {"fp32": 1e-5, "bf16": 1e-3, "int8": 3e-3}


@pytest.mark.parametrize("precision", sorted(BATCH_BOUNDS))
def test_batch_composition_moves_predictions_within_a_bound(
    token_classification_checkpoint, precision
):
    """pipe == call in fp32; in reduced precision, within the documented bound."""
    nlp = _nlp(token_classification_checkpoint, precision)
    alone = [nlp(text) for text in TEXTS]
    worst = 0.0
    for batch_size in (len(TEXTS), 5):
        piped = list(nlp.pipe(TEXTS[::-1], batch_size=batch_size))[::-1]
        for doc, batched in zip(alone, piped):
            a = doc._.trf_data.model_output.last_hidden_state
            b = batched._.trf_data.model_output.last_hidden_state
            worst = max(worst, float(numpy.abs(a - b).max() / numpy.abs(a).max()))
            if precision == "fp32":
                assert [(e.start_char, e.end_char, e.label_) for e in batched.ents] == [
                    (e.start_char, e.end_char, e.label_) for e in doc.ents
                ]
    assert worst < BATCH_BOUNDS[precision]
    if precision == "int8":
        assert worst > 1e-5  # the dependence is real: one quantization scale per batch
