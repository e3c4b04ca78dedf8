"""Fine-tuned checkpoints whose label maps can't be imported as they are:
a label given to two outputs, ids with gaps."""
import json
import shutil

import pytest

from spacy_xlmr.errors import CheckpointError
from spacy_xlmr.load import from_huggingface


def _with_id2label(checkpoint, tmp_path, id2label):
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    config = json.loads((broken / "config.json").read_text())
    config["id2label"] = id2label
    config["label2id"] = {label: int(i) for i, label in id2label.items()}
    (broken / "config.json").write_text(json.dumps(config))
    return broken


@pytest.mark.parametrize("task", ["text-classification", "token-classification"])
def test_a_label_of_two_outputs_is_refused(
    single_label_checkpoint, token_classification_checkpoint, tmp_path, task
):
    checkpoint = (
        single_label_checkpoint if task == "text-classification"
        else token_classification_checkpoint
    )
    labels = json.loads((checkpoint / "config.json").read_text())["id2label"]
    labels["3"] = labels["1"]
    broken = _with_id2label(checkpoint, tmp_path, labels)
    with pytest.raises(CheckpointError, match=rf"'{labels['1']}' for outputs \[1, 3\]"):
        from_huggingface(str(broken), task)


def test_an_id2label_with_a_gap_is_refused(single_label_checkpoint, tmp_path):
    labels = json.loads((single_label_checkpoint / "config.json").read_text())["id2label"]
    labels["7"] = labels.pop("2")
    broken = _with_id2label(single_label_checkpoint, tmp_path, labels)
    with pytest.raises(CheckpointError, match="outputs 0 … 4, but 2 missing and 7 extra"):
        from_huggingface(str(broken), "text-classification")
