"""`spacy-xlmr evaluate` prints and saves the scores `spacy evaluate` leaves
out (xlmr_qa's qa_*, xlmr_fill_mask's mlm_*)."""
import json
from pathlib import Path

from typer.testing import CliRunner

from spacy_xlmr.cli import app
from spacy_xlmr.convert import convert_squad
from spacy_xlmr.load import from_huggingface

ROOT = Path(__file__).parents[1]


def test_evaluate_reports_qa_scores(question_answering_checkpoint, tmp_path):
    nlp = from_huggingface(str(question_answering_checkpoint), "question-answering")
    nlp.to_disk(tmp_path / "qa")
    convert_squad(ROOT / "data" / "qa" / "xquad" / "xquad.en.json", tmp_path / "dev.spacy")
    result = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "qa"), str(tmp_path / "dev.spacy"),
              "--output", str(tmp_path / "scores.json")],
    )
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["qa_total"] == 39
    assert 0.0 <= scores["qa_exact"] <= scores["qa_f1"] <= 1.0
    assert "qa_f1" in result.output and "qa_total                 39" in result.output


def test_evaluate_reads_raw_text_for_masked_lm(masked_lm_checkpoint, tmp_path):
    nlp = from_huggingface(str(masked_lm_checkpoint), "fill-mask")
    nlp.to_disk(tmp_path / "mlm")
    result = CliRunner().invoke(
        app,
        ["evaluate", str(tmp_path / "mlm"), str(ROOT / "data" / "text-dev" / "ntrex128-por.txt")],
    )
    assert result.exit_code == 0, result.output
    lines = dict(line.split() for line in result.output.splitlines())
    assert 0.0 <= float(lines["mlm_acc"]) <= 1.0
    assert float(lines["mlm_ppl"]) > 1.0
