"""Shared fixtures: tiny XLM-R checkpoints built once per test run, offline."""
from pathlib import Path

import pytest
import spacy
import torch

from spacy_xlmr.checkpoints import build_checkpoint, shipped_texts

from .util import NER_TAGS, TOPICS


def pytest_configure(config):
    torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def fixed_seed():
    """Same random init in every test, whatever ran before it."""
    spacy.util.fix_random_seed(0)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny random XLM-R encoder with a tokenizer trained on shipped text."""
    return build_checkpoint(tmp_path_factory.mktemp("tiny-xlmr"), shipped_texts())


@pytest.fixture(scope="session")
def token_classification_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """A 'fine-tuned' XLMRobertaForTokenClassification on the tiny encoder:
    BIO id2label and a classifier with well-separated random logits."""
    from transformers import AutoTokenizer, XLMRobertaForTokenClassification

    output = tmp_path_factory.mktemp("tiny-xlmr-ner")
    model = XLMRobertaForTokenClassification.from_pretrained(
        tiny_checkpoint,
        num_labels=len(NER_TAGS),
        id2label=dict(enumerate(NER_TAGS)),
        label2id={tag: i for i, tag in enumerate(NER_TAGS)},
    )
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        weight = model.classifier.weight
        weight.copy_(torch.randn(weight.shape, generator=generator) * 0.5)
        model.classifier.bias.copy_(torch.tensor([1.0, 0, 0, 0, 0, 0, 0]))
    model.save_pretrained(output)
    AutoTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(output)
    return output


def _sequence_classification_checkpoint(tiny_checkpoint, output, labels, problem_type):
    from transformers import AutoTokenizer, XLMRobertaForSequenceClassification

    model = XLMRobertaForSequenceClassification.from_pretrained(
        tiny_checkpoint,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type=problem_type,
    )
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for param in model.classifier.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    model.save_pretrained(output)
    AutoTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(output)
    return output


@pytest.fixture(scope="session")
def single_label_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """A 'fine-tuned' single-label XLMRobertaForSequenceClassification."""
    return _sequence_classification_checkpoint(
        tiny_checkpoint, tmp_path_factory.mktemp("tiny-xlmr-topics"), TOPICS,
        "single_label_classification",
    )


@pytest.fixture(scope="session")
def multi_label_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """A 'fine-tuned' multi-label XLMRobertaForSequenceClassification."""
    return _sequence_classification_checkpoint(
        tiny_checkpoint, tmp_path_factory.mktemp("tiny-xlmr-tags"), TOPICS,
        "multi_label_classification",
    )


@pytest.fixture(scope="session")
def masked_lm_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """An XLMRobertaForMaskedLM on the tiny encoder, with a random lm_head."""
    from transformers import AutoTokenizer, XLMRobertaForMaskedLM

    output = tmp_path_factory.mktemp("tiny-xlmr-mlm")
    model = XLMRobertaForMaskedLM.from_pretrained(tiny_checkpoint)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.lm_head.named_parameters():
            if "decoder" not in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    model.save_pretrained(output)
    AutoTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(output)
    return output


@pytest.fixture(scope="session")
def question_answering_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """A 'fine-tuned' XLMRobertaForQuestionAnswering on the tiny encoder,
    with a random qa_outputs layer that gives well-separated logits."""
    from transformers import AutoTokenizer, XLMRobertaForQuestionAnswering

    output = tmp_path_factory.mktemp("tiny-xlmr-qa")
    model = XLMRobertaForQuestionAnswering.from_pretrained(tiny_checkpoint)
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for param in model.qa_outputs.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 2.0)
    model.save_pretrained(output)
    AutoTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(output)
    return output
