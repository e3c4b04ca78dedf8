"""Strict encoder loading: weights missing from a saved encoder (or saved
under other names) are an error naming them, never random weights."""
import pytest
import spacy
from safetensors.torch import load_file, save_file

from spacy_xlmr.errors import CheckpointError, DamagedPipelineError
from spacy_xlmr.hf import load_encoder

from .util import make_nlp


@pytest.fixture
def saved_pipeline(tiny_checkpoint, tmp_path):
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_textcat", name="textcat").add_label("a")
    nlp.initialize()
    nlp.to_disk(tmp_path / "pipeline")
    return tmp_path / "pipeline"


def weights_file(pipeline):
    return pipeline / "transformer" / "model" / "model.safetensors"


def test_a_missing_encoder_weight_is_an_error_naming_it(saved_pipeline):
    tensors = load_file(weights_file(saved_pipeline))
    del tensors["encoder.layer.1.output.dense.weight"]
    save_file(tensors, weights_file(saved_pipeline), metadata={"format": "pt"})
    missing = r"missing: encoder\.layer\.1\.output\.dense\.weight\)"
    with pytest.raises(DamagedPipelineError, match=missing) as error:
        spacy.load(saved_pipeline)
    assert "[transformer]" in str(error.value)
    assert isinstance(error.value.__cause__, CheckpointError)


def test_weights_under_other_names_are_an_error_naming_them(saved_pipeline):
    tensors = load_file(weights_file(saved_pipeline))
    renamed = {f"bert.{name}": tensor for name, tensor in tensors.items()}
    save_file(renamed, weights_file(saved_pipeline), metadata={"format": "pt"})
    with pytest.raises(DamagedPipelineError) as error:
        spacy.load(saved_pipeline)
    message = str(error.value)
    assert f"and {len(tensors) - 5} more" in message
    assert "unknown to XLMRobertaModel: bert.embeddings" in message
    assert "strict=False" in message


def test_a_partial_load_on_purpose_keeps_the_matching_weights(saved_pipeline):
    path = weights_file(saved_pipeline)
    tensors = load_file(path)
    kept = tensors["embeddings.word_embeddings.weight"]
    del tensors["encoder.layer.1.output.dense.weight"]
    save_file(tensors, path, metadata={"format": "pt"})
    transformer = load_encoder(path.parent, strict=False)
    assert transformer.embeddings.word_embeddings.weight.equal(kept)
