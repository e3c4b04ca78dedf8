"""Bad configuration and bad checkpoints fail early, with an error that names
the problem and the fix."""
import pytest
import spacy

from spacy_xlmr.hf import CheckpointError
from spacy_xlmr.load import from_huggingface

from .conftest import make_nlp

# (fixture, task it was fine-tuned for)
CHECKPOINTS = {
    "token_classification_checkpoint": "token-classification",
    "single_label_checkpoint": "text-classification",
    "masked_lm_checkpoint": "fill-mask",
    "question_answering_checkpoint": "question-answering",
}


@pytest.mark.parametrize("fixture", sorted(CHECKPOINTS))
@pytest.mark.parametrize(
    "task", ["token-classification", "text-classification", "fill-mask", "question-answering"]
)
def test_head_of_another_task_is_refused(request, fixture, task):
    checkpoint = str(request.getfixturevalue(fixture))
    if CHECKPOINTS[fixture] == task:
        from_huggingface(checkpoint, task)  # the right one imports
        return
    with pytest.raises(CheckpointError) as err:
        from_huggingface(checkpoint, task)
    message = str(err.value)
    assert "checkpoint, but this component imports" in message
    assert f"from_huggingface('{checkpoint}', '{CHECKPOINTS[fixture]}')" in message


def test_bare_encoder_is_not_a_head(tiny_checkpoint):
    with pytest.raises(CheckpointError, match="has no head this package imports"):
        from_huggingface(str(tiny_checkpoint), "question-answering")


def test_missing_model_directory(tmp_path):
    nlp = make_nlp(tmp_path / "nowhere")
    nlp.add_pipe("xlmr_ner")
    with pytest.raises(CheckpointError, match="nowhere"):
        nlp.initialize(lambda: [])


@pytest.mark.parametrize("damage", ["config", "weights", "tokenizer"])
def test_corrupt_model_directory(tiny_checkpoint, tmp_path, damage):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    if damage == "config":
        (broken / "config.json").write_text("{not json")
    elif damage == "weights":
        (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    else:
        for name in ("tokenizer.json", "sentencepiece.bpe.model"):
            (broken / name).unlink()
    nlp = make_nlp(broken)
    with pytest.raises(CheckpointError, match="broken"):
        nlp.initialize()


def test_window_larger_than_the_model(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint, window_size=600, stride=300)
    with pytest.raises(ValueError, match="window_size <= 510"):
        nlp.initialize()


@pytest.mark.parametrize("stride", [0, 510, 600])
def test_stride_not_smaller_than_window(tiny_checkpoint, stride):
    with pytest.raises(ValueError, match="stride"):
        make_nlp(tiny_checkpoint, window_size=510, stride=stride)


def test_unknown_label_scheme(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint)
    with pytest.raises(ValueError, match="BIOES"):
        nlp.add_pipe("xlmr_ner", config={"scheme": "BIOES"})


def test_hf_labels_conflicting_with_added_labels(token_classification_checkpoint):
    nlp = make_nlp(token_classification_checkpoint)
    ner = nlp.add_pipe("xlmr_ner", name="ner")
    ner.add_label("MISC")
    nlp.config["initialize"]["components"]["ner"] = {
        "hf_checkpoint": str(token_classification_checkpoint)
    }
    with pytest.raises(ValueError, match="Leave labels unset"):
        nlp.initialize()


def test_head_needs_an_encoder():
    nlp = spacy.blank("xx")
    nlp.add_pipe("xlmr_qa", name="qa")
    assert nlp.pipe_names == ["transformer", "qa"]  # added for it
    nlp.remove_pipe("transformer")
    with pytest.raises(ValueError, match="xlmr_transformer"):
        nlp.initialize()
