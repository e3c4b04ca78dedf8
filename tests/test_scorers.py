"""The registered scorers of xlmr_qa and xlmr_fill_mask: they resolve from
spaCy's registry, are the factories' defaults, give the scores the
components gave before they had a ``scorer`` setting, and a config can swap
them for another registered scorer (``[components.<name>.scorer]``)."""
import math
from pathlib import Path
from typing import Any, Dict, List

import numpy
import pytest
import spacy
from spacy.training import Example
from spacy.util import load_config, load_model_from_config, minibatch, registry

from spacy_xlmr.convert import read_squad
from spacy_xlmr.heads.masked_lm import masked_lm_logits
from spacy_xlmr.mlm.metrics import SCORE_SEED, score_mlm
from spacy_xlmr.pipeline.fill_mask import make_mlm_scorer
from spacy_xlmr.pipeline.qa import make_qa_scorer, score_qa
from spacy_xlmr.qa.data import get_questions
from spacy_xlmr.qa.metrics import score_squad

from .util import make_nlp

ROOT = Path(__file__).parents[1]
SCORERS = {
    "spacy-xlmr.qa_scorer.v1": score_qa,
    "spacy-xlmr.mlm_scorer.v1": score_mlm,
    "spacy-xlmr.textcat_scorer.v1": None,  # the one there was already
}
TEXTS = [
    "Lisboa é a capital de Portugal e fica junto ao rio Tejo.",
    "O Porto é a segunda maior cidade do país.",
    "A equipa ganhou o campeonato no domingo à noite.",
]

# What the custom scorers below were called with, by scorer.
CALLS: Dict[str, List[Dict[str, Any]]] = {"qa": [], "mlm": []}


@registry.scorers("spacy-xlmr-tests.recording_qa_scorer.v1")
def make_recording_qa_scorer():
    def score(examples, **kwargs):
        examples = list(examples)
        answered = [eg.predicted._.qa_answers is not None for eg in examples]
        CALLS["qa"].append({"kwargs": kwargs, "answered": answered})
        return {"custom_qa": len(examples)}

    return score


@registry.scorers("spacy-xlmr-tests.recording_mlm_scorer.v1")
def make_recording_mlm_scorer():
    def score(examples, **kwargs):
        examples = list(examples)
        CALLS["mlm"].append({"kwargs": kwargs})
        return {"custom_mlm": len(examples)}

    return score


@pytest.fixture(scope="module")
def squad_examples():
    nlp = spacy.blank("xx")
    docs = list(read_squad(ROOT / "data" / "qa" / "squad-es-v2" / "train.json", nlp, limit=3))
    return [Example(nlp.make_doc(doc.text), doc) for doc in docs]


def _fresh(nlp, examples):
    """Examples with plain-text predicted docs, as `spacy evaluate` makes them."""
    return [Example(nlp.make_doc(eg.reference.text), eg.reference) for eg in examples]


def _text_examples(nlp):
    return [Example(nlp.make_doc(text), nlp.make_doc(text)) for text in TEXTS]


@pytest.mark.parametrize("name", sorted(SCORERS))
def test_scorer_resolves_from_the_registry(name):
    resolved = registry.resolve({"scorer": {"@scorers": name}})["scorer"]
    assert callable(resolved)
    if SCORERS[name] is not None:
        assert resolved is SCORERS[name]
    assert make_qa_scorer() is score_qa and make_mlm_scorer() is score_mlm


@pytest.mark.parametrize(
    "factory,name",
    [("xlmr_qa", "spacy-xlmr.qa_scorer.v1"), ("xlmr_fill_mask", "spacy-xlmr.mlm_scorer.v1")],
)
def test_factory_default_config_names_the_scorer(factory, name):
    nlp = spacy.blank("xx")
    nlp.add_pipe(factory, name="head")
    assert nlp.config["components"]["head"]["scorer"] == {"@scorers": name}
    assert nlp.get_pipe("head").scorer is SCORERS[name]


def test_qa_default_scorer_gives_the_squad_scores(tiny_checkpoint, squad_examples):
    """The default scores are the SQuAD scores of the top answers, computed
    here as the component computed them before it had a scorer."""
    spacy.util.fix_random_seed(0)
    nlp = make_nlp(tiny_checkpoint)
    qa = nlp.add_pipe("xlmr_qa", name="qa", config={"handle_impossible_answer": True})
    nlp.initialize(lambda: squad_examples)
    scores = qa.score(_fresh(nlp, squad_examples))

    predictions = {}
    gold = []
    for eg in squad_examples:
        questions = get_questions(eg.reference)
        gold.extend(questions)
        doc = qa.ask(eg.reference.text, [{"id": q["id"], "question": q["question"]}
                                         for q in questions])
        for qid, answers in doc._.qa_answers.items():
            predictions[qid] = answers[0]["answer"] if answers else ""
    expected = {f"qa_{key}": value for key, value in score_squad(predictions, gold).items()}
    assert scores == expected
    assert {"qa_exact", "qa_f1", "qa_total", "qa_HasAns_f1", "qa_NoAns_f1"} <= set(scores)
    assert nlp.evaluate(_fresh(nlp, squad_examples))["qa_f1"] == scores["qa_f1"]
    # Without questions there is nothing to score.
    assert qa.score(_text_examples(nlp)) == {"qa_exact": None, "qa_f1": None}


def _mlm_scores_as_before(model, examples, mask_probability):
    """xlmr_fill_mask's score method before it had a scorer (a copy)."""
    rng = numpy.random.default_rng(SCORE_SEED)
    xp = model.ops.xp
    n_pieces = n_correct = 0
    neg_log_likelihood = 0.0
    for batch in minibatch(examples, 32):
        logits, targets, _ = masked_lm_logits(
            model, [eg.predicted for eg in batch], rng, probability=mask_probability
        )
        if len(targets) == 0:
            continue
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        neg_log_likelihood -= float(log_probs[xp.arange(len(targets)), targets].sum())
        n_correct += int((logits.argmax(axis=1) == targets).sum())
        n_pieces += len(targets)
    if n_pieces == 0:
        return {"mlm_acc": None, "mlm_ppl": None}
    return {"mlm_acc": n_correct / n_pieces, "mlm_ppl": math.exp(neg_log_likelihood / n_pieces)}


def test_mlm_default_scorer_gives_the_scores_of_before(tiny_checkpoint):
    spacy.util.fix_random_seed(0)
    nlp = make_nlp(tiny_checkpoint)
    fill_mask = nlp.add_pipe("xlmr_fill_mask", name="fill_mask",
                             config={"mask_probability": 0.3})
    nlp.initialize()
    examples = _text_examples(nlp) * 4
    scores = fill_mask.score(examples)
    assert set(scores) == {"mlm_acc", "mlm_ppl"}
    assert scores == _mlm_scores_as_before(fill_mask.model, examples, 0.3)
    assert scores == score_mlm(examples, model=fill_mask.model, mask_probability=0.3)
    assert nlp.evaluate(examples)["mlm_ppl"] == scores["mlm_ppl"]
    assert fill_mask.score(_text_examples(nlp)[:0]) == {"mlm_acc": None, "mlm_ppl": None}


def _shipped_config(name: str, checkpoint: Path, scorer: str):
    component = {"qa": "qa", "mlm": "fill_mask"}[name]
    return load_config(
        ROOT / "configs" / f"{name}-tiny.cfg",
        overrides={
            "paths.encoder": str(checkpoint),
            "paths.train": "t.spacy",
            "paths.dev": "d.spacy",
            f"components.{component}.scorer.@scorers": scorer,
        },
    )


def test_qa_config_swaps_in_a_custom_scorer(tiny_checkpoint, squad_examples):
    config = _shipped_config("qa", tiny_checkpoint, "spacy-xlmr-tests.recording_qa_scorer.v1")
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.config["components"]["qa"]["scorer"] == {
        "@scorers": "spacy-xlmr-tests.recording_qa_scorer.v1"
    }
    nlp.initialize(lambda: squad_examples)
    CALLS["qa"].clear()
    scores = nlp.evaluate(_fresh(nlp, squad_examples))
    assert scores["custom_qa"] == len(squad_examples)
    assert "qa_f1" not in scores
    (call,) = CALLS["qa"]
    # The component asked the reference questions before scoring.
    assert call["answered"] == [True] * len(squad_examples)


def test_mlm_config_swaps_in_a_custom_scorer(tiny_checkpoint):
    config = _shipped_config("mlm", tiny_checkpoint, "spacy-xlmr-tests.recording_mlm_scorer.v1")
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    nlp.initialize()
    fill_mask = nlp.get_pipe("fill_mask")
    CALLS["mlm"].clear()
    scores = nlp.evaluate(_text_examples(nlp))
    assert scores["custom_mlm"] == len(TEXTS)
    assert "mlm_acc" not in scores
    (call,) = CALLS["mlm"]
    assert call["kwargs"]["model"] is fill_mask.model
    assert call["kwargs"]["mask_probability"] == fill_mask.mask_probability


@pytest.mark.parametrize("factory", ["xlmr_qa", "xlmr_fill_mask"])
def test_no_scorer_no_scores(factory):
    nlp = spacy.blank("xx")
    head = nlp.add_pipe(factory, name="head", config={"scorer": None})
    assert head.scorer is None
    assert head.score([]) == {}
