"""xlmr_qa: training through nlp.update raises EM/F1, several questions per
doc, unanswerable questions, serialization, scoring as `spacy evaluate` does,
bad input."""
from pathlib import Path

import pytest
import spacy
from spacy.training import Example

from spacy_xlmr.convert import read_squad
from spacy_xlmr.load import from_huggingface

from ..util import make_nlp

DATA = Path(__file__).parents[2] / "data" / "qa"


@pytest.fixture(scope="module")
def squad_es_examples():
    nlp = spacy.blank("xx")
    docs = list(read_squad(DATA / "squad-es-v2" / "train.json", nlp, limit=12))
    return [Example(nlp.make_doc(doc.text), doc) for doc in docs]


@pytest.fixture(scope="module")
def trained_nlp(tiny_checkpoint, squad_es_examples):
    """A tiny encoder trained from scratch for QA on 12 SQuAD-es paragraphs."""
    spacy.util.fix_random_seed(0)
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_qa", name="qa", config={"handle_impossible_answer": True})
    optimizer = nlp.initialize(lambda: squad_es_examples)
    optimizer.learn_rate = 2e-3
    before = nlp.get_pipe("qa").score(_fresh(nlp, squad_es_examples))
    losses = []
    for _ in range(15):
        for batch in spacy.util.minibatch(squad_es_examples, 4):
            losses.append(nlp.update(batch, sgd=optimizer)["qa"])
    nlp._test_info = {"before": before, "losses": losses}
    return nlp


def _fresh(nlp, examples):
    """Examples whose predicted docs are plain text, as `spacy evaluate` makes them."""
    return [Example(nlp.make_doc(eg.reference.text), eg.reference) for eg in examples]


def test_training_improves_exact_match_and_f1(trained_nlp, squad_es_examples):
    info = trained_nlp._test_info
    after = trained_nlp.evaluate(_fresh(trained_nlp, squad_es_examples))
    assert after["qa_f1"] > info["before"]["qa_f1"] + 0.2
    assert after["qa_exact"] > info["before"]["qa_exact"]
    assert {"qa_HasAns_f1", "qa_NoAns_f1"} <= set(after)
    assert sum(info["losses"][-3:]) < 0.5 * sum(info["losses"][:3])


def test_unanswerable_questions_get_no_span(trained_nlp, squad_es_examples):
    n_abstained = 0
    for eg in squad_es_examples:
        doc = trained_nlp.get_pipe("qa").ask(
            eg.reference.text,
            [{"id": q["id"], "question": q["question"]} for q in eg.reference._.qa_questions],
        )
        labels = {span.label_ for span in doc.spans["qa"]}
        for qid, answers in doc._.qa_answers.items():
            assert qid in doc._.qa_null_scores
            if answers[0]["answer"] == "":
                n_abstained += 1
                assert qid not in labels
                assert answers[0]["score"] == pytest.approx(doc._.qa_null_scores[qid])
            else:
                assert qid in labels
    assert n_abstained > 0


def test_several_questions_and_top_k(question_answering_checkpoint):
    nlp = from_huggingface(
        str(question_answering_checkpoint), "question-answering", config={"top_k": 2}
    )
    doc = nlp.get_pipe("qa").ask(
        "O Porto fica no norte de Portugal. Lisboa é a capital.",
        ["Onde fica o Porto?", {"id": "capital", "question": "Qual é a capital?"}],
    )
    assert set(doc._.qa_answers) == {"q0", "capital"}
    assert all(len(answers) == 2 for answers in doc._.qa_answers.values())
    assert {span.label_ for span in doc.spans["qa"]} == {"q0", "capital"}
    for span in doc.spans["qa"]:
        answer = span._.qa_answer
        assert answer == doc._.qa_answers[span.label_][span.id]
        assert doc.text[answer["start"] : answer["end"]] == answer["answer"]
        assert span.text == answer["answer"].strip()
    assert doc.spans["qa"][0]._.qa_question == "Onde fica o Porto?"


def test_round_trip(question_answering_checkpoint, tmp_path):
    nlp = from_huggingface(
        str(question_answering_checkpoint), "question-answering",
        config={"top_k": 3, "doc_stride": 64, "spans_key": "answers"},
    )
    text = "O Porto fica no norte de Portugal. " * 40
    expected = nlp.get_pipe("qa").ask(text, ["Onde fica o Porto?"])._.qa_answers
    nlp.to_disk(tmp_path / "qa")
    loaded = spacy.load(tmp_path / "qa")
    qa = loaded.get_pipe("qa")
    assert (qa.top_k, qa.doc_stride, qa.spans_key) == (3, 64, "answers")
    doc = qa.ask(text, ["Onde fica o Porto?"])
    assert doc._.qa_answers == expected
    assert len(doc.spans["answers"]) == 3
    from_bytes = spacy.blank("xx")
    from_bytes.add_pipe(
        "xlmr_transformer", name="transformer",
        config={"model": {"name": str(question_answering_checkpoint)}},
    )
    from_bytes.add_pipe("xlmr_qa", name="qa", config={"top_k": 3, "doc_stride": 64})
    from_bytes.from_bytes(nlp.to_bytes())
    assert from_bytes.get_pipe("qa").ask(text, ["Onde fica o Porto?"])._.qa_answers == expected


def test_pipeline_answers_questions_set_on_the_doc(question_answering_checkpoint):
    nlp = from_huggingface(str(question_answering_checkpoint), "question-answering")
    doc = nlp.make_doc("Lisboa é a capital de Portugal.")
    doc._.qa_questions = [{"id": "a", "question": "Qual é a capital?"}]
    doc = nlp(doc)
    assert list(doc._.qa_answers) == ["a"]
    assert nlp("Sem perguntas.")._.qa_answers == {}


@pytest.mark.parametrize("impossible", [False, True])
@pytest.mark.parametrize("context", ["", "   ", "\n\t"])
def test_empty_context_gives_no_answer(question_answering_checkpoint, context, impossible):
    """The empty answer, as HF's pipeline gives it (score 1 as the
    no-answer, 0 as HF's filler without handle_impossible_answer), never []."""
    nlp = from_huggingface(
        str(question_answering_checkpoint), "question-answering",
        config={"handle_impossible_answer": impossible},
    )
    doc = nlp.get_pipe("qa").ask(context, ["Qual é a capital?"])
    score = 1.0 if impossible else 0.0
    assert doc._.qa_answers["q0"] == [{"answer": "", "start": 0, "end": 0, "score": score}]
    assert len(doc.spans["qa"]) == 0


def test_bad_questions_are_refused(question_answering_checkpoint):
    nlp = from_huggingface(str(question_answering_checkpoint), "question-answering")
    qa = nlp.get_pipe("qa")
    with pytest.raises(ValueError, match="non-empty"):
        qa.ask("Lisboa é a capital.", [""])
    with pytest.raises(ValueError, match="duplicate"):
        qa.ask(
            "Lisboa é a capital.",
            [{"id": "a", "question": "x?"}, {"id": "a", "question": "y?"}],
        )


def test_ask_takes_one_question_as_a_string_and_refuses_other_types(question_answering_checkpoint):
    nlp = from_huggingface(str(question_answering_checkpoint), "question-answering")
    qa = nlp.get_pipe("qa")
    doc = qa.ask("Lisboa é a capital.", "Qual é a capital?")
    assert list(doc._.qa_answers) == ["q0"]
    doc = qa.ask("Lisboa é a capital.", {"id": "a", "question": "Qual é a capital?"})
    assert list(doc._.qa_answers) == ["a"]
    with pytest.raises(TypeError, match="takes a Doc or a str"):
        qa.ask(123, ["Qual?"])
    with pytest.raises(TypeError, match="strings or dicts"):
        qa.ask("Lisboa é a capital.", [None])


def test_ask_before_initialize_says_to_initialize(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint)
    qa = nlp.add_pipe("xlmr_qa")
    with pytest.raises(ValueError, match="nlp.initialize"):
        qa.ask("Lisboa é a capital.", "Qual é a capital?")


def test_bad_options_are_refused(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint)
    message = r"\[xlmr_qa\] doc_stride = 384 is out of range.*0 <= doc_stride <= 315"
    with pytest.raises(ValueError, match=message):
        nlp.add_pipe("xlmr_qa", config={"doc_stride": 384})
    # The longest question would leave the context only 28 positions, fewer
    # than the overlap: refused at once, not at the first long question.
    message = "doc_stride <= 27; or max_question_len <= 3; or max_seq_len >= 61"
    with pytest.raises(ValueError, match=message):
        nlp.add_pipe(
            "xlmr_qa", config={"max_seq_len": 48, "doc_stride": 40, "max_question_len": 16}
        )
    message = "max_seq_len = 16 is out of range: set max_seq_len >= 69.*max_question_len = 64"
    with pytest.raises(ValueError, match=message):
        nlp.add_pipe("xlmr_qa", config={"max_seq_len": 16, "doc_stride": 4, "max_question_len": 64})
    message = "max_question_len = 600 is out of range: set 1 <= max_question_len <= 507"
    with pytest.raises(ValueError, match=message):
        nlp.add_pipe("xlmr_qa", config={"max_question_len": 600})
    with pytest.raises(ValueError, match="top_k = 0 is out of range: set top_k >= 1"):
        nlp.add_pipe("xlmr_qa", config={"top_k": 0})
    nlp.add_pipe("xlmr_qa", config={"max_seq_len": 1000})
    message = "max_seq_len = 1000 is out of range: set 69 <= max_seq_len <= 512"
    with pytest.raises(ValueError, match=message):
        nlp.initialize()


@pytest.mark.parametrize("override,message", [
    ({"max_seq_len": 1000}, "max_seq_len = 1000 is out of range: set 69 <= max_seq_len <= 512"),
    ({"max_seq_len": 16}, "max_seq_len = 16 is out of range: set max_seq_len >= 69"),
    ({"doc_stride": -1}, "doc_stride = -1 is out of range.*Set 0 <= doc_stride <= 315"),
    ({"doc_stride": 400},
     "doc_stride = 400 is out of range.*Set 0 <= doc_stride <= 315; or max_seq_len >= 469"),
    ({"max_question_len": 0}, "max_question_len = 0 is out of range: set max_question_len >= 1"),
    ({"max_question_len": 320}, "doc_stride = 128 is out of range.*max_question_len <= 251"),
])
def test_settings_overridden_at_load_are_refused_naming_the_range(
    question_answering_checkpoint, tmp_path, override, message
):
    """Settings given to spacy.load are checked when the component is built
    and again against the loaded encoder, not left to fail inside torch."""
    nlp = from_huggingface(str(question_answering_checkpoint), "question-answering")
    nlp.to_disk(tmp_path / "qa")
    with pytest.raises(ValueError, match=r"\[qa\] " + message):
        spacy.load(tmp_path / "qa", config={"components": {"qa": override}})


def test_settings_changed_after_loading_are_refused_before_a_pass(question_answering_checkpoint):
    nlp = from_huggingface(str(question_answering_checkpoint), "question-answering")
    qa = nlp.get_pipe("qa")
    qa.max_seq_len = 600
    with pytest.raises(ValueError, match=r"\[qa\] max_seq_len = 600 is out of range"):
        qa.ask("Lisboa é a capital.", "Qual é a capital?")
    qa.max_seq_len = 384
    qa.doc_stride = 1.5
    with pytest.raises(ValueError, match=r"\[qa\] doc_stride = 1.5 is not an integer"):
        qa.ask("Lisboa é a capital.", "Qual é a capital?")


def test_settings_are_checked_against_the_encoder_loaded_from_bytes(question_answering_checkpoint):
    nlp = from_huggingface(str(question_answering_checkpoint), "question-answering")
    small = spacy.blank("xx")
    small.add_pipe(
        "xlmr_transformer", name="transformer",
        config={"model": {"name": str(question_answering_checkpoint)}},
    )
    qa = small.add_pipe("xlmr_qa", name="qa")
    qa.max_seq_len = 513  # accepted before an encoder is loaded: its limit is unknown
    message = r"\[qa\] max_seq_len = 513 is out of range: set 69 <= max_seq_len <= 512"
    with pytest.raises(ValueError, match=message):
        small.from_bytes(nlp.to_bytes())


def test_qa_only_pipeline_runs_with_the_encoder_component_disabled(question_answering_checkpoint):
    """xlmr_qa encodes its pairs itself: disabling the encoder component
    saves its pass over the doc and changes no answer."""
    nlp = from_huggingface(
        str(question_answering_checkpoint), "question-answering", config={"top_k": 2}
    )
    question = [{"id": "a", "question": "Qual é a capital?"}]
    doc = nlp.make_doc("Lisboa é a capital de Portugal.")
    doc._.qa_questions = question
    expected = nlp(doc)._.qa_answers
    nlp.disable_pipe("transformer")
    doc = nlp.make_doc("Lisboa é a capital de Portugal.")
    doc._.qa_questions = question
    doc = nlp(doc)
    assert doc._.trf_data is None
    assert doc._.qa_answers == expected
