"""Slow: a trained pipeline packaged with `spacy package` installs as a wheel
and predicts the same entities after `spacy.load`."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from spacy.training import Example

from spacy_xlmr.convert import read_iob2

from .conftest import make_nlp

DATA = Path(__file__).parents[1] / "data" / "ner" / "uner-pt"
LOAD_AND_PREDICT = """
import json, sys, spacy
nlp = spacy.load("xx_xlmr_ner_test")
texts = json.loads(sys.stdin.read())
print(json.dumps([[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]))
"""


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
    (tmp_path / "packages").mkdir()

    subprocess.run(
        [sys.executable, "-m", "spacy", "package", str(tmp_path / "pipeline"),
         str(tmp_path / "packages"), "--build", "wheel", "--name", "xlmr_ner_test",
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
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT], input=json.dumps(texts),
        capture_output=True, text=True, env=env, check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected
