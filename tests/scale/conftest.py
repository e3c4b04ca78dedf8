"""Pipelines the annotation tests share, saved once per test module."""
from pathlib import Path

import pytest
import spacy


def save_ner_pipeline(checkpoint: Path, path: Path) -> Path:
    from spacy_xlmr.load import from_huggingface

    from_huggingface(str(checkpoint), "token-classification").to_disk(path)
    return path


def save_multi_head_pipeline(checkpoint: Path, path: Path) -> Path:
    """Encoder + xlmr_ner (imported head) + xlmr_textcat + xlmr_qa +
    xlmr_fill_mask (random heads) on one encoder."""
    nlp = spacy.blank("xx")
    encoder = {"model": {"name": str(checkpoint)}}
    nlp.add_pipe("xlmr_transformer", name="transformer", config=encoder)
    nlp.add_pipe("xlmr_ner", name="ner")
    textcat = nlp.add_pipe("xlmr_textcat", name="textcat")
    for label in ("news", "sports", "science"):
        textcat.add_label(label)
    nlp.add_pipe("xlmr_qa", name="qa", config={"top_k": 2})
    nlp.add_pipe("xlmr_fill_mask", name="fill_mask", config={"top_k": 2})
    nlp.config["initialize"]["components"]["ner"] = {"hf_checkpoint": str(checkpoint)}
    nlp.initialize()
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def ner_pipeline(token_classification_checkpoint, tmp_path_factory) -> Path:
    return save_ner_pipeline(token_classification_checkpoint, tmp_path_factory.mktemp("ner"))


@pytest.fixture(scope="module")
def multi_head_pipeline(token_classification_checkpoint, tmp_path_factory) -> Path:
    return save_multi_head_pipeline(
        token_classification_checkpoint, tmp_path_factory.mktemp("multi")
    )
