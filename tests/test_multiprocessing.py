"""nlp.pipe(n_process=2) works on CPU after the parent has used torch (its
OpenMP pool would hang a forked child) and gives the same entities."""
import subprocess
import sys

SCRIPT = """
import sys
from spacy_xlmr.load import from_huggingface
nlp = from_huggingface(sys.argv[1], "token-classification")
texts = ["Maria mora em Lisboa e trabalha no Porto.", "O Benfica ganhou."] * 40
expected = [[(e.start, e.end, e.label_) for e in nlp(t).ents] for t in texts]
docs = list(nlp.pipe(texts, n_process=2, batch_size=8))
assert [[(e.start, e.end, e.label_) for e in d.ents] for d in docs] == expected
print("ok", len(docs))
"""


def test_pipe_with_two_processes(token_classification_checkpoint):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(token_classification_checkpoint)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok 80" in result.stdout
