"""xlmr_textcat with an imported XLMRobertaForSequenceClassification gives
HF's numbers: logits within 1e-4, and doc.cats equal to the HF
text-classification pipeline's scores (top_k=None) within 1e-4, for the
single-label and the multi-label problem types."""
import numpy
import pytest
import torch
from spacy.training import Example

from spacy_xlmr.heads.torch_head import get_head_module
from spacy_xlmr.load import from_huggingface

from ..util import TOPICS

TEXTS = [
    "The new vaccine was approved by health officials on Monday.",
    "O presidente falou com os deputados sobre o orçamento.",
    "北京是中国的首都，也是一个旅游城市。",
    "Die Mannschaft gewann das Spiel in der letzten Minute.",
    "القاهرة هي عاصمة مصر.",
    "",
]
CHECKPOINTS = ["single_label_checkpoint", "multi_label_checkpoint"]


@pytest.fixture(scope="module", params=CHECKPOINTS)
def imported(request):
    checkpoint = request.getfixturevalue(request.param)
    return checkpoint, from_huggingface(str(checkpoint), "text-classification")


def test_import_takes_labels_and_problem_type(imported):
    checkpoint, nlp = imported
    textcat = nlp.get_pipe("textcat")
    assert textcat.labels == tuple(TOPICS)
    assert textcat.cfg["exclusive_classes"] == (
        "multi" not in checkpoint.name and "tags" not in checkpoint.name
    )


@pytest.mark.parametrize("text", TEXTS[:-1])
def test_logits_equal_hf(imported, text):
    from transformers import XLMRobertaForSequenceClassification

    checkpoint, nlp = imported
    hf_model = XLMRobertaForSequenceClassification.from_pretrained(checkpoint).eval()
    tokenizer = nlp.get_pipe("transformer").encoder.tokenizer
    with torch.no_grad():
        expected = hf_model(**tokenizer(text, return_tensors="pt")).logits[0].numpy()
    textcat = nlp.get_pipe("textcat")
    (ours,) = textcat.predict([nlp(text)])
    numpy.testing.assert_allclose(ours, expected, atol=1e-4)


@pytest.mark.parametrize("text", TEXTS[:-1])
def test_cats_equal_hf_pipeline(imported, text):
    from transformers import pipeline

    checkpoint, nlp = imported
    hf_pipe = pipeline("text-classification", model=str(checkpoint), top_k=None, device="cpu")
    (scores,) = hf_pipe([text])
    expected = {item["label"]: item["score"] for item in scores}
    cats = nlp(text).cats
    assert set(cats) == set(expected)
    numpy.testing.assert_allclose(
        [cats[label] for label in TOPICS], [expected[label] for label in TOPICS], atol=1e-4
    )


def test_an_empty_text_is_scored_without_the_encoder(imported):
    """Where HF's pipeline classifies ``<s></s>``, an empty doc isn't encoded:
    the classifier reads a zero vector (README, "Empty docs")."""
    from transformers import XLMRobertaForSequenceClassification

    checkpoint, nlp = imported
    assert TEXTS[-1] == ""
    hf_model = XLMRobertaForSequenceClassification.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        logits = hf_model.classifier(torch.zeros(1, 1, hf_model.config.hidden_size))[0]
    exclusive = nlp.get_pipe("textcat").cfg["exclusive_classes"]
    expected = logits.softmax(-1) if exclusive else logits.sigmoid()
    cats = nlp("").cats
    numpy.testing.assert_allclose([cats[label] for label in TOPICS], expected.numpy(), atol=1e-5)


def test_training_continues_after_import(imported):
    checkpoint, nlp = imported
    text = TEXTS[0]
    cats = {label: float(label == "health") for label in TOPICS}
    examples = [Example.from_dict(nlp.make_doc(text), {"cats": cats})]
    before = nlp(text).cats["health"]
    optimizer = nlp.resume_training()
    optimizer.learn_rate = 1e-3
    for _ in range(10):
        nlp.update(examples, sgd=optimizer)
    assert nlp(text).cats["health"] > max(before, 0.5)


def test_wrong_problem_type_is_an_error(multi_label_checkpoint):
    with pytest.raises(ValueError, match="set exclusive_classes = false"):
        from_huggingface(
            str(multi_label_checkpoint), "text-classification",
            config={"exclusive_classes": True},
        )


def test_head_mirrors_hf_parameter_names(imported):
    from transformers import XLMRobertaForSequenceClassification

    checkpoint, nlp = imported
    head = get_head_module(nlp.get_pipe("textcat").model.get_ref("head"))
    hf_model = XLMRobertaForSequenceClassification.from_pretrained(checkpoint)
    hf_names = {name for name in hf_model.state_dict() if not name.startswith("roberta.")}
    assert set(head.state_dict()) == hf_names


def test_labels_given_in_any_order_take_the_checkpoints_order(imported):
    """As for xlmr_ner: the labels given must be the checkpoint's, in any
    order; the head keeps the checkpoint's output order."""
    checkpoint, nlp = imported
    textcat = nlp.get_pipe("textcat")
    textcat.initialize(
        lambda: [], nlp=nlp, labels=list(reversed(TOPICS)), hf_checkpoint=str(checkpoint)
    )
    assert textcat.labels == tuple(TOPICS)
    with pytest.raises(ValueError, match="differ from those of"):
        textcat.initialize(
            lambda: [], nlp=nlp, labels=TOPICS[:-1], hf_checkpoint=str(checkpoint)
        )
