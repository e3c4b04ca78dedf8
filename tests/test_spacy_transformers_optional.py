"""spacy-transformers is an optional extra.

Without it, ``doc._.trf_data`` is spacy-xlmr's own ``TransformerData`` and
spaCy's components listen through spacy-xlmr's listener (also under the name
``spacy-transformers.TransformerListener.v1``, so configs written for it load).
With it, ``doc._.trf_data`` is spacy-transformers' class and that name is its
own listener. CI runs the suite in both environments; the test across them
runs where ``SPACY_XLMR_OTHER_PYTHON`` names the other environment's Python.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.training import Example
from spacy.util import registry

from spacy_xlmr.encoder.data import SPACY_TRANSFORMERS, TransformerData, XLMRTransformerData
from spacy_xlmr.encoder.listener import XLMRListener, build_listener

from .util import make_nlp

TEXTS = ["Maria mora em Lisboa.", "O Porto é bonito.", "Ana e João vivem no Brasil."]
OTHER_PYTHON = os.environ.get("SPACY_XLMR_OTHER_PYTHON")


def _listener(name: str) -> dict:
    return {"@architectures": name, "grad_factor": 1.0, "pooling": {"@layers": "reduce_mean.v1"}}


def _spacy_components(checkpoint: Path, listener: str) -> spacy.language.Language:
    """The encoder with spaCy's own ner and textcat listening to it."""
    nlp = make_nlp(checkpoint)
    nlp.add_pipe("ner", config={"model": {
        "@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner",
        "extra_state_tokens": False, "hidden_width": 16, "maxout_pieces": 2,
        "use_upper": False, "tok2vec": _listener(listener),
    }})
    nlp.add_pipe("textcat", config={"model": {
        "@architectures": "spacy.TextCatReduce.v1", "exclusive_classes": True,
        "use_reduce_first": False, "use_reduce_last": False, "use_reduce_max": False,
        "use_reduce_mean": True, "tok2vec": _listener(listener),
    }})
    return nlp


def _examples(nlp):
    annotations = [
        {"entities": [(0, 5, "PER"), (14, 20, "LOC")], "cats": {"A": 1.0, "B": 0.0}},
        {"entities": [(2, 7, "LOC")], "cats": {"A": 0.0, "B": 1.0}},
        {"entities": [(0, 3, "PER"), (6, 10, "PER"), (20, 26, "LOC")],
         "cats": {"A": 1.0, "B": 0.0}},
    ]
    return [Example.from_dict(nlp.make_doc(t), a) for t, a in zip(TEXTS, annotations)]


def _train(nlp, steps: int = 30):
    spacy.util.fix_random_seed(0)
    examples = _examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    losses = []
    for _ in range(steps):
        step = {}
        nlp.update(examples, sgd=optimizer, losses=step)
        losses.append(step)
    return losses


def _predictions(nlp):
    docs = list(nlp.pipe(TEXTS))
    return [
        ([(e.start_char, e.end_char, e.label_) for e in doc.ents],
         {label: round(score, 5) for label, score in doc.cats.items()})
        for doc in docs
    ]


def test_the_data_class_and_listener_follow_the_extra(tiny_checkpoint):
    """With spacy-transformers installed its classes are used; without it,
    spacy-xlmr's, under the same names."""
    listener = registry.architectures.get("spacy-transformers.TransformerListener.v1")
    nlp = make_nlp(tiny_checkpoint)
    nlp.initialize()
    trf_data = nlp(TEXTS[0])._.trf_data
    assert isinstance(trf_data, TransformerData)
    try:
        import spacy_transformers
    except ImportError:
        assert not SPACY_TRANSFORMERS
        assert type(trf_data) is XLMRTransformerData
        assert listener is build_listener
    else:
        assert SPACY_TRANSFORMERS
        assert type(trf_data) is spacy_transformers.data_classes.TransformerData
        assert listener is not build_listener
    assert trf_data.tensors[0].shape == (1, trf_data.wordpieces.input_ids.shape[1], 64)
    assert trf_data.width == 64
    assert len(trf_data.align.lengths) == 5  # one row per token


def test_spacy_components_train_through_spacy_xlmrs_listener(tiny_checkpoint):
    """spaCy's ner and textcat with spacy-xlmr's listener initialize on sample
    docs (which the encoder hasn't annotated), learn and predict; with
    spacy-transformers' listener (where installed) they compute exactly the
    same."""
    ours = _spacy_components(tiny_checkpoint, "spacy-xlmr.TransformerListener.v1")
    losses = _train(ours)
    assert losses[-1]["ner"] < 0.5 * losses[0]["ner"], losses
    assert losses[-1]["textcat"] < 0.9 * losses[0]["textcat"], losses
    listeners = [n for n in ours.get_pipe("ner").model.walk() if isinstance(n, XLMRListener)]
    assert listeners and ours.get_pipe("transformer").listener_map["ner"] == listeners
    predictions = _predictions(ours)
    assert [ents for ents, _ in predictions] == [
        [(0, 5, "PER"), (14, 20, "LOC")],
        [(2, 7, "LOC")],
        [(0, 3, "PER"), (6, 10, "PER"), (20, 26, "LOC")],
    ]
    assert predictions[0][1]["A"] > predictions[1][1]["A"]

    theirs = _spacy_components(tiny_checkpoint, "spacy-transformers.TransformerListener.v1")
    their_losses = _train(theirs)
    for step, their_step in zip(losses, their_losses):
        assert their_step == pytest.approx(step, rel=1e-4)
    assert _predictions(theirs) == predictions


def test_listener_refuses_other_docs_without_encoder_output(tiny_checkpoint):
    """Zeros only for the initialization samples: any other doc without
    encoder output is an error naming the fix."""
    nlp = _spacy_components(tiny_checkpoint, "spacy-xlmr.TransformerListener.v1")
    _train(nlp, steps=1)
    with nlp.select_pipes(disable=["transformer"]):
        with pytest.raises(ValueError, match="doc._.trf_data is None"):
            nlp("Uma frase nova.")


SAVE_AND_PREDICT = """
import json, sys
import numpy, spacy
sys.path.insert(0, {root!r})
from tests.test_spacy_transformers_optional import TEXTS, _predictions
nlp = spacy.load({path!r})
docs = list(nlp.pipe(TEXTS))
print(json.dumps({{
    "predictions": _predictions(nlp),
    "hidden": [float(numpy.abs(doc._.trf_data.tensors[0]).sum()) for doc in docs],
    "class": type(docs[0]._.trf_data).__module__,
}}))
"""


def _other_environment(path: Path) -> dict:
    code = SAVE_AND_PREDICT.format(root=str(Path(__file__).parents[1]), path=str(path))
    result = subprocess.run(
        [OTHER_PYTHON, "-c", code], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(
    not OTHER_PYTHON,
    reason="set SPACY_XLMR_OTHER_PYTHON to the Python of an environment with the "
    "other spacy-transformers setting (CI does)",
)
def test_pipelines_load_across_the_extra(tiny_checkpoint, tmp_path):
    """A pipeline saved here (with or without spacy-transformers) loads in the
    other environment with the same predictions, and one saved there loads
    here."""
    nlp = _spacy_components(tiny_checkpoint, "spacy-transformers.TransformerListener.v1")
    nlp.add_pipe("xlmr_ner")
    nlp.get_pipe("xlmr_ner").add_label("PER")
    _train(nlp, steps=4)
    nlp.to_disk(tmp_path / "here")
    here = _predictions(nlp)
    hidden = [float(numpy.abs(doc._.trf_data.tensors[0]).sum()) for doc in nlp.pipe(TEXTS)]

    there = _other_environment(tmp_path / "here")
    assert there["class"].startswith("spacy_transformers") != SPACY_TRANSFORMERS
    assert [[list(map(tuple, e)), c] for e, c in there["predictions"]] == [
        [e, c] for e, c in here
    ]
    assert there["hidden"] == pytest.approx(hidden, rel=1e-6)

    # And back: saved by the other environment, loaded here.
    code = (
        "import spacy, sys; nlp = spacy.load(sys.argv[1]); nlp.to_disk(sys.argv[2])"
    )
    subprocess.run(
        [OTHER_PYTHON, "-c", code, str(tmp_path / "here"), str(tmp_path / "there")],
        check=True, timeout=600,
    )
    back = spacy.load(tmp_path / "there")
    assert _predictions(back) == here


def test_encoder_output_travels_in_a_docbin(tiny_checkpoint):
    """doc._.trf_data serializes with the doc (DocBin with user data, and
    nlp.pipe(n_process=...)) whichever class holds it."""
    from spacy.tokens import DocBin

    nlp = make_nlp(tiny_checkpoint)
    nlp.initialize()
    docs = list(nlp.pipe([TEXTS[0], ""]))
    loaded = list(DocBin(docs=docs, store_user_data=True).get_docs(nlp.vocab))
    for doc, back in zip(docs, loaded):
        original, copy = doc._.trf_data, back._.trf_data
        assert type(copy) is type(original)
        assert len(copy.tensors) == len(original.tensors)
        for mine, theirs in zip(copy.tensors, original.tensors):
            numpy.testing.assert_array_equal(mine, theirs)
        assert list(map(list, copy.wordpieces.strings)) == original.wordpieces.strings
        numpy.testing.assert_array_equal(copy.align.dataXd, original.align.dataXd)
        numpy.testing.assert_array_equal(copy.align.lengths, original.align.lengths)
