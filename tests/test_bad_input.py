"""Bad configuration and bad checkpoints fail early, with an error that names
the problem and the fix."""
import pytest
import spacy

from spacy_xlmr.errors import CheckpointError, DamagedPipelineError
from spacy_xlmr.load import from_huggingface

from .util import make_nlp

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


def test_missing_nested_relative_directory_is_not_taken_for_a_hub_name(tmp_path, monkeypatch):
    """"pipe/transformer/model" can't be a hub name ("owner/model"): the
    error speaks of the directory, not of downloading it."""
    from spacy_xlmr.hf import load_config

    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="from the directory 'pipe/transformer/model'"):
        load_config("pipe/transformer/model")


@pytest.mark.parametrize("missing", ["transformer/model", "ner/model"])
def test_saved_pipeline_with_missing_weights(tiny_checkpoint, tmp_path, missing, monkeypatch):
    import shutil

    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="ner")
    nlp.get_pipe("transformer").initialize(lambda: [], nlp=nlp)
    nlp.get_pipe("ner").initialize(lambda: [], nlp=nlp, labels=["PER"])
    nlp.to_disk(tmp_path / "pipe")
    target = tmp_path / "pipe" / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    monkeypatch.chdir(tmp_path)  # a relative path, as users type it
    with pytest.raises(DamagedPipelineError, match=f"'pipe/{missing}.*' is missing"):
        spacy.load("pipe")


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


def test_unknown_label_scheme(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint)
    with pytest.raises(ValueError, match="BIOES"):
        nlp.add_pipe("xlmr_ner", config={"scheme": "BIOES"})


@pytest.mark.parametrize("factory,checkpoint,label", [
    ("xlmr_ner", "token_classification_checkpoint", "MISC"),
    ("xlmr_textcat", "single_label_checkpoint", "finance"),
])
def test_hf_labels_conflicting_with_added_labels(request, factory, checkpoint, label):
    checkpoint = request.getfixturevalue(checkpoint)
    nlp = make_nlp(checkpoint)
    nlp.add_pipe(factory, name="head").add_label(label)
    nlp.config["initialize"]["components"]["head"] = {"hf_checkpoint": str(checkpoint)}
    with pytest.raises(ValueError, match="Leave labels unset"):
        nlp.initialize()


def test_fill_mask_targets_checked_at_initialize(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_fill_mask", config={"targets": ["Lisboa é bonita"]})
    with pytest.warns(UserWarning, match="isn't a piece of the vocabulary: replaced"):
        nlp.initialize()


def test_head_needs_an_encoder():
    nlp = spacy.blank("xx")
    nlp.add_pipe("xlmr_qa", name="qa")
    assert nlp.pipe_names == ["transformer", "qa"]  # added for it
    nlp.remove_pipe("transformer")
    with pytest.raises(ValueError, match="xlmr_transformer"):
        nlp.initialize()


def test_misaligned_gold_entities_are_reported(tiny_checkpoint):
    from spacy.tokens import Doc
    from spacy.training import Example

    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="ner")
    # The gold tokens split "Lisboa", the pipeline's tokenizer doesn't.
    gold = Doc(nlp.vocab, words=["Lis", "boa", "é", "bonita"], spaces=[False, True, True, False],
               ents=["B-LOC", "O", "O", "O"])
    good = nlp.make_doc("Maria mora em Lisboa.")
    good.ents = [good.char_span(0, 5, label="PER")]
    examples = [Example(nlp.make_doc(gold.text), gold), Example(nlp.make_doc(good.text), good)]
    expected = (
        r"\[ner\] 1 of 2 training examples: gold entities that don't start and "
        r"end on the tokens.*'Lisboa é bonita'"
    )
    with pytest.warns(UserWarning, match=expected):
        nlp.initialize(lambda: examples)


def test_docs_without_cats_or_questions_are_reported(tiny_checkpoint):
    from spacy.training import Example

    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_textcat", name="textcat")
    nlp.add_pipe("xlmr_qa", name="qa")
    with_cats = nlp.make_doc("Golo do Benfica.")
    with_cats.cats = {"sports": 1.0, "politics": 0.0}
    with_cats._.qa_questions = [
        {"id": "a", "question": "Quem?", "answers": [{"text": "Benfica", "answer_start": 8}]}
    ]
    bare = nlp.make_doc("Sem nada.")
    examples = [Example(nlp.make_doc(d.text), d) for d in (with_cats, bare, bare)]
    with pytest.warns(UserWarning) as record:
        nlp.initialize(lambda: examples)
    messages = [str(w.message) for w in record]
    assert any(
        "[textcat] 2 of 3 training examples: no gold cats" in m and "'Sem nada.'" in m
        for m in messages
    )
    assert any("[qa] 2 of 3 training examples: no questions" in m for m in messages)


def test_cats_exclusive_classes_cant_learn_are_reported(tiny_checkpoint):
    from spacy.training import Example

    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_textcat", name="textcat")
    docs = []
    for text, cats in [
        ("Golo do Benfica.", {"sports": 1.0, "politics": 0.0}),
        ("Eleições e golos.", {"sports": 1.0, "politics": 1.0}),
        ("Só desporto.", {"sports": 1.0}),
    ]:
        doc = nlp.make_doc(text)
        doc.cats = cats
        docs.append(doc)
    examples = [Example(nlp.make_doc(d.text), d) for d in docs]
    with pytest.warns(UserWarning) as record:
        nlp.initialize(lambda: examples)
    messages = [str(w.message) for w in record]
    assert any("1 of 3 training examples: more than one positive label" in m
               and "'Eleições e golos.'" in m for m in messages)
    assert any("1 of 3 training examples: only some of the labels" in m
               and "'Só desporto.'" in m for m in messages)


def test_questions_and_answers_qa_cant_learn_are_reported(tiny_checkpoint):
    from spacy.training import Example

    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_qa", name="qa", config={
        "max_question_len": 4, "max_seq_len": 16, "doc_stride": 4, "max_answer_len": 8,
    })
    text = "O golo do Benfica foi marcado por Rafa Silva no segundo tempo do jogo."
    answer = "Rafa Silva no segundo tempo do jogo"
    docs = []
    for question, answer_text in [
        ("Quem marcou o golo do jogo de ontem à noite?", "Benfica"),  # question cut
        ("Quem?", answer),  # 13 pieces: more than max_answer_len and a window's context
        ("Quem?", "Benfica"),  # fine
    ]:
        doc = nlp.make_doc(text)
        doc._.qa_questions = [{
            "id": "q", "question": question,
            "answers": [{"text": answer_text, "answer_start": text.index(answer_text)}],
        }]
        docs.append(doc)
    examples = [Example(nlp.make_doc(d.text), d) for d in docs]
    with pytest.warns(UserWarning) as record:
        nlp.initialize(lambda: examples)
    messages = [str(w.message) for w in record]
    for problem in [
        "questions longer than max_question_len = 4 pieces (cut)",
        "answers longer than max_answer_len = 8 pieces",
        "answers that no context window holds whole",
    ]:
        assert any(f"[qa] 1 of 3 training examples: {problem}" in m for m in messages), messages


def test_empty_training_corpus_is_a_clear_error(tiny_checkpoint, tmp_path):
    """spacy train on an empty corpus stops before training, saying so."""
    import subprocess
    import sys
    from pathlib import Path

    from spacy.tokens import DocBin

    DocBin().to_disk(tmp_path / "empty.spacy")
    config = Path(__file__).parents[1] / "configs" / "ner-tiny.cfg"
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(config), "--paths.train",
         str(tmp_path / "empty.spacy"), "--paths.dev", str(tmp_path / "empty.spacy"),
         "--paths.encoder", str(tiny_checkpoint)],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "The training data is empty" in result.stderr
