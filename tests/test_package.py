"""Slow: a trained pipeline packaged with `spacy package` installs as a wheel
and predicts the same after `spacy.load`: an NER pipeline, and one pipeline
with every spacy-xlmr head on one encoder."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import spacy
from spacy.training import Example

from spacy_xlmr.convert import read_iob2, read_labels, read_squad, read_textcat

from .util import make_nlp

DATA = Path(__file__).parents[1] / "data" / "ner" / "uner-pt"
SIB200 = Path(__file__).parents[1] / "data" / "textcat" / "sib200-pt"
SQUAD_ES = Path(__file__).parents[1] / "data" / "qa" / "squad-es-v2"
LOAD_AND_PREDICT = """
import json, sys, spacy
nlp = spacy.load("xx_xlmr_ner_test")
texts = json.loads(sys.stdin.read())
print(json.dumps([
    [(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)
]))
"""


def _package_and_install(pipeline: Path, tmp_path: Path, name: str) -> Path:
    """`spacy package` the pipeline as a wheel, check that the wheel requires
    spacy-xlmr, install it (no network) and return the install target."""
    (tmp_path / "packages").mkdir()
    subprocess.run(
        [sys.executable, "-m", "spacy", "package", str(pipeline),
         str(tmp_path / "packages"), "--build", "wheel", "--name", name,
         "--version", "0.0.1", "--force"],
        check=True,
    )
    (wheel,) = (tmp_path / "packages").glob("*/dist/*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith("METADATA"))
        requires = [
            line for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist")
        ]
    assert any("spacy-xlmr" in line for line in requires), requires
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        check=True,
    )
    return target


@pytest.mark.slow
def test_spacy_package_wheel_predicts_the_same(tiny_checkpoint, tmp_path):
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="ner")
    docs = list(read_iob2(DATA / "train.iob2", nlp.vocab, limit=32))
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 1e-3
    for _ in range(15):
        for start in range(0, len(examples), 8):
            nlp.update(examples[start : start + 8], sgd=optimizer)
    texts = [eg.text for eg in examples]
    expected = [[[e.start_char, e.end_char, e.label_] for e in doc.ents] for doc in nlp.pipe(texts)]
    assert any(expected)
    nlp.to_disk(tmp_path / "pipeline")
    target = _package_and_install(tmp_path / "pipeline", tmp_path, "xlmr_ner_test")
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT], input=json.dumps(texts),
        capture_output=True, text=True, env=env, check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected


# Every head of the multi-head pipeline, run on a doc with a question and on
# a text with a mask, in the parent process and (after packaging) in another.
MULTI_HEAD_PREDICT = r'''
import json, sys

def predict(nlp, cases):
    results = []
    for case in cases:
        doc = nlp.make_doc(case["text"])
        doc._.qa_questions = [{"id": "q0", "question": case["question"]}]
        doc = nlp(doc)
        results.append({
            "ents": [[e.start_char, e.end_char, e.label_, e._.ent_score] for e in doc.ents],
            "cats": doc.cats,
            "qa_answers": doc._.qa_answers,
            "qa_spans": [[s.start_char, s.end_char, s.label_] for s in doc.spans["qa"]],
            "fill_mask": doc._.fill_mask,
        })
    return results

if __name__ == "__main__":
    import spacy
    nlp = spacy.load(sys.argv[1])
    print(json.dumps({"pipe_names": nlp.pipe_names,
                      "results": predict(nlp, json.loads(sys.stdin.read()))}))
'''


def _assert_same(actual, expected, path="", tol=1e-6):
    """Equal JSON-like structures; floats within ``tol``."""
    if isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=tol), path
    elif isinstance(expected, dict):
        assert set(actual) == set(expected), path
        for key in expected:
            _assert_same(actual[key], expected[key], f"{path}.{key}", tol)
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_same(a, e, f"{path}[{i}]", tol)
    else:
        assert actual == expected, path


@pytest.mark.slow
def test_multi_head_wheel_gives_the_same_outputs(tiny_checkpoint, tmp_path):
    """One pipeline with all five spacy-xlmr components (encoder, NER, textcat,
    QA, fill-mask), trained a few steps, packaged as a wheel, installed
    without network and loaded in a fresh process: every head gives the same
    outputs as before packaging, with the encoder's checkpoint directory gone."""
    checkpoint = tmp_path / "encoder"
    shutil.copytree(tiny_checkpoint, checkpoint)
    nlp = make_nlp(checkpoint)
    nlp.add_pipe("xlmr_ner", name="ner")
    nlp.add_pipe("xlmr_textcat", name="textcat")
    nlp.add_pipe("xlmr_qa", name="qa", config={"top_k": 2})
    nlp.add_pipe("xlmr_fill_mask", name="fill_mask", config={"top_k": 3})
    docs = (
        list(read_iob2(DATA / "train.iob2", nlp.vocab, limit=16))
        + list(read_textcat(SIB200 / "train.tsv", nlp, labels=read_labels(SIB200 / "labels.txt"),
                            limit=16))
        + list(read_squad(SQUAD_ES / "train.json", nlp, limit=2))
    )
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 2e-3
    losses = {}
    for _ in range(6):  # enough for xlmr_ner to predict some entities
        for batch in spacy.util.minibatch(examples, 8):
            nlp.update(batch, sgd=optimizer, losses=losses)
    assert set(losses) == {"transformer", "ner", "textcat", "qa", "fill_mask"}
    assert all(loss > 0 for loss in losses.values()), losses

    cases = [
        {"text": "O João mora em Lisboa e trabalha na Microsoft em Portugal.",
         "question": "Onde mora o João?"},
        {"text": "Lisboa é a <mask> de Portugal e o Porto é uma <mask> grande.",
         "question": "Qual é a capital de Portugal?"},
    ] + [
        {"text": eg.text, "question": "Quem?"} for eg in examples[:16] if eg.reference.ents
    ][:3]
    namespace = {}
    exec(MULTI_HEAD_PREDICT, namespace)
    expected = json.loads(json.dumps(namespace["predict"](nlp, cases)))
    assert any(result["ents"] for result in expected)
    assert all(len(result["cats"]) == 7 for result in expected)
    assert all(len(result["qa_answers"]["q0"]) == 2 for result in expected)
    assert expected[0]["fill_mask"] == []
    assert [len(masks) for masks in expected[1]["fill_mask"]] == [3, 3]
    assert any(result["qa_spans"] for result in expected)

    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(checkpoint)  # the package must not need the original encoder
    target = _package_and_install(tmp_path / "pipeline", tmp_path, "xlmr_multi_test")
    script = tmp_path / "predict.py"
    script.write_text(MULTI_HEAD_PREDICT)
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, str(script), "xx_xlmr_multi_test"], input=json.dumps(cases),
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["pipe_names"] == ["transformer", "ner", "textcat", "qa", "fill_mask"]
    _assert_same(loaded["results"], expected)
