"""xlmr_ner and xlmr_textcat on one encoder: it runs once per doc, both heads
train jointly through `spacy train`, and `spacy evaluate` reports both."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from spacy.training import Example

from spacy_xlmr.convert import convert_iob2, convert_textcat, read_iob2, read_textcat

from .util import assert_encoded, count_encoder_calls, make_nlp

ROOT = Path(__file__).parents[1]
DATA = ROOT / "data"


def test_encoder_runs_once_per_doc_for_ner_and_textcat(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="ner")
    nlp.add_pipe("xlmr_textcat", name="textcat")
    ner_docs = list(read_iob2(DATA / "ner" / "uner-pt" / "train.iob2", nlp.vocab, limit=8))
    cat_docs = list(read_textcat(DATA / "textcat" / "sib200-pt" / "train.tsv", nlp, limit=8))
    examples = [Example(nlp.make_doc(d.text), d) for d in ner_docs + cat_docs]
    optimizer = nlp.initialize(lambda: examples)
    assert nlp.get_pipe("transformer").listening_components == ["ner", "textcat"]
    with count_encoder_calls(nlp) as calls:
        losses = nlp.update(examples, sgd=optimizer)
        assert calls == [16]
        docs = list(nlp.pipe(eg.text for eg in examples))
        assert calls == [16, 16]
    assert losses["ner"] > 0 and losses["textcat"] > 0 and losses["transformer"] > 0
    for doc in docs:
        assert set(doc.cats) == set(nlp.get_pipe("textcat").labels)
        assert_encoded(doc)


@pytest.mark.slow
def test_spacy_train_and_evaluate_multitask(tiny_checkpoint, tmp_path):
    for split, limit in (("train", 300), ("dev", 60)):
        corpus = tmp_path / split
        corpus.mkdir()
        convert_iob2(DATA / "ner" / "uner-pt" / f"{split}.iob2", corpus / "ner.spacy", limit=limit)
        convert_textcat(DATA / "textcat" / "sib200-pt" / f"{split}.tsv", corpus / "cats.spacy")
    subprocess.run(
        [
            sys.executable, "-m", "spacy", "train", str(ROOT / "configs" / "multitask-tiny.cfg"),
            "--output", str(tmp_path / "out"),
            "--paths.train", str(tmp_path / "train"), "--paths.dev", str(tmp_path / "dev"),
            "--paths.encoder", str(tiny_checkpoint),
            "--training.max_steps", "400", "--training.eval_frequency", "100",
        ],
        check=True,
    )
    scores = {}
    for split in ("train", "dev"):
        metrics = tmp_path / f"{split}-metrics.json"
        subprocess.run(
            [
                sys.executable, "-m", "spacy", "evaluate", str(tmp_path / "out" / "model-best"),
                str(tmp_path / split), "--output", str(metrics),
            ],
            check=True,
        )
        scores[split] = json.loads(metrics.read_text())
    print("MULTITASK", {s: {k: v[k] for k in ("ents_f", "cats_score")} for s, v in scores.items()})
    for split_scores in scores.values():
        assert set(split_scores["ents_per_type"]) == {"PER", "ORG", "LOC"}
        assert len(split_scores["cats_f_per_type"]) == 7
    assert scores["dev"]["ents_f"] > 0.08
    # Both heads learned from the joint updates: on the training docs, well
    # above a constant prediction (macro F of the majority class ~0.04).
    assert scores["train"]["ents_f"] > 0.15
    assert scores["train"]["cats_score"] > 0.2
