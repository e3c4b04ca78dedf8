"""Masked-LM training with xlmr_fill_mask: masking, loss and gradients equal
to HF's XLMRobertaForMaskedLM on the same masks, the loss falls on shipped raw
text, and the adapted encoder can be used by other pipelines."""
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from spacy.training import Example

from spacy_xlmr.encoder.alignment import tokenize_docs
from spacy_xlmr.encoder.listener import encoder_of
from spacy_xlmr.heads.masked_lm import masked_lm_logits
from spacy_xlmr.heads.torch_head import get_head_module
from spacy_xlmr.load import from_huggingface
from spacy_xlmr.mlm.masking import mask_pieces

from ..util import count_encoder_calls, make_nlp, no_dropout

ROOT = Path(__file__).parents[2]
TEXTS = [
    "Lisboa é a capital de Portugal e a maior cidade do país.",
    "The number of North Korean defectors to South Korea has fallen.",
    "北京是中华人民共和国的首都。",
    "",
    "Die Zahl der Überläufer ist seit dem Amtsantritt gesunken, sagte ein Abgeordneter.",
]


def _lines(directory: Path, per_file: int):
    texts = []
    for path in sorted(directory.glob("ntrex128-*.txt")):
        with path.open(encoding="utf8") as file_:
            texts.extend(line.strip() for _, line in zip(range(per_file), file_))
    return [text for text in texts if text]


def _examples(nlp, texts):
    return [Example(nlp.make_doc(text), nlp.make_doc(text)) for text in texts]


def _mlm_nlp(checkpoint):
    nlp = make_nlp(checkpoint)
    nlp.add_pipe("xlmr_fill_mask", name="fill_mask")
    return nlp


def test_loss_and_gradients_equal_hf(masked_lm_checkpoint):
    """Our masked-LM objective is HF's: same loss and same gradients for the
    encoder, the head and the tied word embeddings, on the same masks."""
    from transformers import XLMRobertaForMaskedLM

    nlp = from_huggingface(str(masked_lm_checkpoint), "fill-mask")
    fill_mask = nlp.get_pipe("fill_mask")
    encoder = encoder_of(fill_mask.model)
    ours = encoder.torch_module
    no_dropout(ours)
    docs = [nlp.make_doc(text) for text in TEXTS]
    logits, targets, backprop = masked_lm_logits(
        fill_mask.model, docs, numpy.random.default_rng(7), probability=0.3, is_train=True
    )
    loss, d_logits = fill_mask.get_loss([], (logits, targets))
    backprop(d_logits)

    tokenizer = encoder.tokenizer
    special = set(tokenizer.all_special_ids)
    replacement_ids = numpy.array([i for i in range(len(tokenizer)) if i not in special])
    rng = numpy.random.default_rng(7)
    rows, labels = [], []
    for pieces in tokenize_docs(tokenizer, docs):
        masked, chosen = mask_pieces(
            pieces.ids, rng, mask_id=tokenizer.mask_token_id,
            replacement_ids=replacement_ids, probability=0.3,
        )
        rows.append([tokenizer.cls_token_id, *masked, tokenizer.sep_token_id])
        row_labels = [-100] * len(rows[-1])
        for i in chosen:
            row_labels[i + 1] = pieces.ids[i]
        labels.append(row_labels)
    width = max(len(row) for row in rows)
    input_ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    attention_mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    label_ids = torch.tensor([r + [-100] * (width - len(r)) for r in labels])
    assert len(targets) == int((label_ids != -100).sum()) > 10
    hf = XLMRobertaForMaskedLM.from_pretrained(
        masked_lm_checkpoint, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    output = hf(input_ids=input_ids, attention_mask=attention_mask, labels=label_ids)
    output.loss.backward()

    assert loss == pytest.approx(output.loss.item(), rel=1e-5)
    head = get_head_module(fill_mask.model.get_ref("head"))
    pairs = [
        (ours.embeddings.word_embeddings.weight, hf.roberta.embeddings.word_embeddings.weight),
        (ours.encoder.layer[0].attention.self.query.weight,
         hf.roberta.encoder.layer[0].attention.self.query.weight),
        (ours.encoder.layer[-1].output.dense.weight,
         hf.roberta.encoder.layer[-1].output.dense.weight),
        (head.lm_head.dense.weight, hf.lm_head.dense.weight),
        (head.lm_head.bias, hf.lm_head.bias),
    ]
    for our_param, hf_param in pairs:
        assert our_param.grad.abs().max() > 0
        torch.testing.assert_close(our_param.grad, hf_param.grad, atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def adapted_nlp(tiny_checkpoint):
    """A tiny encoder adapted for 3 epochs to 240 lines of shipped raw text."""
    spacy.util.fix_random_seed(0)
    nlp = _mlm_nlp(tiny_checkpoint)
    train = _examples(nlp, _lines(ROOT / "data" / "text", 24))
    dev = _examples(nlp, _lines(ROOT / "data" / "text-dev", 10))
    optimizer = nlp.initialize(lambda: train)
    before = nlp.get_pipe("fill_mask").score(dev)
    transformer = nlp.get_pipe("transformer").encoder.torch_module
    initial_embeddings = transformer.embeddings.word_embeddings.weight.detach().clone()
    losses = []
    with count_encoder_calls(nlp) as calls:
        for _ in range(3):
            for batch in spacy.util.minibatch(train, 16):
                losses.append(nlp.update(batch, sgd=optimizer)["fill_mask"])
    nlp._test_info = {
        "before": before, "dev": dev, "losses": losses, "encoder_calls": calls,
        "initial_embeddings": initial_embeddings,
    }
    return nlp


def test_training_lowers_loss_and_perplexity(adapted_nlp):
    info = adapted_nlp._test_info
    after = adapted_nlp.get_pipe("fill_mask").score(info["dev"])
    assert after["mlm_ppl"] < 0.5 * info["before"]["mlm_ppl"]
    assert after["mlm_acc"] > info["before"]["mlm_acc"]
    first, last = numpy.mean(info["losses"][:5]), numpy.mean(info["losses"][-5:])
    assert last < first - 0.5  # nats per masked piece


def test_training_adapts_the_shared_encoder_without_an_unmasked_pass(adapted_nlp):
    """Only the masked pass runs: the encoder component computes nothing for a
    pipeline whose only head is the masked LM, yet its weights are trained."""
    info = adapted_nlp._test_info
    assert info["encoder_calls"] == []
    transformer = adapted_nlp.get_pipe("transformer").encoder.torch_module
    embeddings = transformer.embeddings.word_embeddings.weight
    assert not torch.equal(embeddings.detach(), info["initial_embeddings"])


def test_score_is_deterministic_and_empty_safe(adapted_nlp):
    fill_mask = adapted_nlp.get_pipe("fill_mask")
    dev = adapted_nlp._test_info["dev"]
    assert fill_mask.score(dev) == fill_mask.score(dev)
    scores = fill_mask.score(_examples(adapted_nlp, ["", "   "]))
    assert scores == {"mlm_acc": None, "mlm_ppl": None}
    assert 0.0 <= fill_mask.score(dev)["mlm_acc"] <= 1.0


def test_update_with_empty_and_whitespace_docs(adapted_nlp):
    losses = adapted_nlp.update(_examples(adapted_nlp, ["", " \n ", "\t"]))
    assert losses["fill_mask"] == 0.0


def test_trained_pipeline_round_trip_keeps_the_tie(adapted_nlp, tmp_path):
    text = "O presidente disse que a <mask> vai crescer."
    expected = adapted_nlp(text)._.fill_mask
    dev = adapted_nlp._test_info["dev"]
    expected_scores = adapted_nlp.get_pipe("fill_mask").score(dev)
    adapted_nlp.to_disk(tmp_path / "mlm")
    size = sum(f.stat().st_size for f in (tmp_path / "mlm" / "fill_mask").rglob("*"))
    assert size < 200_000  # the head only: no copy of the 8002 x 64 embeddings
    loaded = spacy.load(tmp_path / "mlm")
    assert loaded(text)._.fill_mask == expected
    assert loaded.get_pipe("fill_mask").score(dev) == pytest.approx(expected_scores)


def test_adapted_encoder_can_be_sourced_by_ner(adapted_nlp):
    """Domain adaptation: the adapted encoder, sourced into a NER pipeline,
    keeps its weights through initialize and trains with xlmr_ner."""
    nlp = spacy.blank("xx")
    nlp.add_pipe("transformer", source=adapted_nlp)
    nlp.add_pipe("xlmr_ner", name="ner")
    doc = nlp.make_doc("Lisboa é a capital de Portugal.")
    examples = [Example.from_dict(doc, {"entities": ["U-LOC", "O", "O", "O", "O", "U-LOC", "O"]})]
    optimizer = nlp.initialize(lambda: examples)
    adapted = adapted_nlp.get_pipe("transformer").encoder.torch_module.state_dict()
    sourced = nlp.get_pipe("transformer").encoder.torch_module.state_dict()
    assert adapted.keys() == sourced.keys()
    assert all(torch.equal(adapted[k], sourced[k]) for k in adapted)
    losses = [nlp.update(examples, sgd=optimizer)["ner"] for _ in range(10)]
    assert losses[-1] < losses[0]


def test_long_docs_get_the_filled_sequence(masked_lm_checkpoint):
    """Docs longer than a window get `sequence` too, decoded like HF's
    pipeline (with a single target both give the same one prediction)."""
    from transformers import pipeline

    text = " ".join(["Lisboa é a <mask> de Portugal."] + ["O país fica na Europa."] * 12)
    nlp = from_huggingface(
        str(masked_lm_checkpoint), "fill-mask", config={"targets": ["▁de"]},
        encoder_config={"window_size": 16, "stride": 8},
    )
    doc = nlp(text)
    assert len(doc._.trf_data.wordpieces.lengths) > 1
    hf_pipe = pipeline("fill-mask", model=str(masked_lm_checkpoint), device="cpu")
    expected = hf_pipe(text, targets=["▁de"])
    assert [p["sequence"] for p in doc._.fill_mask[0]] == [p["sequence"] for p in expected]
    assert doc._.fill_mask[0][0]["token"] == expected[0]["token"]


def test_mask_probability_is_validated(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint)
    with pytest.raises(ValueError, match="mask_probability"):
        nlp.add_pipe("xlmr_fill_mask", config={"mask_probability": 1.5})
