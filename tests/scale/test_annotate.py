"""spacy_xlmr.scale: the Annotator worker contract and `spacy-xlmr apply`
with the local engine: rows equal the pipeline's own annotations, sharded
output is resumable (each row written exactly once after a kill), bad rows
get an error and never stop the job."""
import itertools
import json
import sys

import pytest
import spacy
import torch
from spacy.language import Language
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_xlmr.cli import app
from spacy_xlmr.scale.annotate import Annotator, pipeline_columns, spark_schema
from spacy_xlmr.scale.apply import apply
from spacy_xlmr.scale.corpus_io import MANIFEST, input_files, read_records, scan

from .util import (
    assert_rows_close, assert_tags_and_spans_predicted, expected_row, kill_after_shards,
    multi_head_rows, read_jsonl_dir, shipped_sentences, tags_and_spans_rows, write_jsonl,
)


def test_annotator_gives_each_heads_own_annotations(multi_head_pipeline):
    import pandas as pd

    rows = multi_head_rows(24)
    annotator = Annotator(str(multi_head_pipeline), batch_size=5)
    assert annotator.columns == ["id", "text", "ents", "cats", "answers", "fill_mask", "error"]
    expected = [expected_row(annotator.nlp, row) for row in rows]
    assert sum(len(r["fill_mask"]) for r in expected) == 6  # every 4th text has a mask
    assert sum(len(r["answers"]) for r in expected) == 16  # 2 questions every 3rd text
    assert any(r["ents"] for r in expected)
    frame = annotator(pd.DataFrame(rows))
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == annotator.columns
    assert_rows_close(frame.to_dict("records"), expected)
    columns = {key: [row.get(key) for row in rows] for key in ("id", "text", "questions")}
    as_dict = annotator(columns)
    assert list(as_dict) == annotator.columns
    assert_rows_close([dict(zip(as_dict, values)) for values in zip(*as_dict.values())], expected)


def test_columns_come_from_the_config_and_have_a_spark_schema(ner_pipeline):
    config = spacy.util.load_config(ner_pipeline / "config.cfg")
    assert pipeline_columns(config) == ["id", "text", "ents", "error"]
    config["nlp"]["disabled"] = ["ner"]
    assert pipeline_columns(config) == ["id", "text", "error"]
    assert spark_schema(["id", "cats"]) == "id string, cats map<string,double>"


def test_annotator_caps_torch_threads(ner_pipeline):
    before = torch.get_num_threads()
    try:
        Annotator(str(ner_pipeline), threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_apply_local_writes_every_row_once_in_shards(multi_head_pipeline, tmp_path):
    rows = multi_head_rows(130)
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    result = apply(str(multi_head_pipeline), str(source), tmp_path / "out", shard_size=50)
    assert (result.rows, result.annotated, result.errors) == (130, 130, 0)
    parts = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert parts == [MANIFEST, "part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    nlp = spacy.load(multi_head_pipeline)
    assert_rows_close(read_jsonl_dir(tmp_path / "out"), [expected_row(nlp, r) for r in rows])


def test_bad_rows_get_an_error_and_the_rest_is_written(multi_head_pipeline, tmp_path):
    good = shipped_sentences(6)
    lines = [
        json.dumps({"id": "ok0", "text": good[0]}),
        json.dumps({"id": "empty", "text": ""}),
        json.dumps({"id": "blank", "text": " \n\t "}),
        json.dumps({"id": "number", "text": 42}),
        json.dumps({"id": "list", "text": ["a"]}),
        json.dumps({"id": "surrogate", "text": "Lisboa \ud800 x"}),
        json.dumps({"id": "ok1", "text": good[1]}),
        '{"id": "broken", "text": ',
        json.dumps({"id": "no-text", "body": good[2]}),
        json.dumps({"id": "questions", "text": good[3], "questions": [{"id": 1}]}),
        json.dumps({"id": "ok2", "text": good[4], "questions": "Who?"}),
        "[1, 2]",
    ]
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        "\n".join(lines[:7]).encode() + b'\n{"id": "latin1", "text": "S\xe3o Paulo"}\n'
        + "\n".join(lines[7:]).encode() + b"\n"
    )
    result = apply(str(multi_head_pipeline), str(source), tmp_path / "out.jsonl", shard_size=4)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert (result.rows, result.errors) == (13, 10)
    assert [r["id"] for r in rows] == [
        "ok0", "empty", "blank", "number", "list", "surrogate", "ok1", "7", "8",
        "no-text", "questions", "ok2", "12",
    ]
    errors = {r["id"]: r["error"] for r in rows if r["error"]}
    assert set(errors) == {"empty", "blank", "number", "list", "surrogate", "7", "8",
                           "no-text", "questions", "12"}
    assert "empty" in errors["empty"] and "empty" in errors["blank"]
    assert "int, not a string" in errors["number"] and "list" in errors["list"]
    assert "lone surrogate" in errors["surrogate"]
    assert errors["7"] == "in.jsonl line 8: invalid UTF-8 at byte 27: fix the encoding"
    assert "line 9: not JSON" in errors["8"]
    assert errors["no-text"] == "in.jsonl line 10: no 'text'"
    assert "questions[0]" in errors["questions"] and "not a JSON object" in errors["12"]
    nlp = spacy.load(multi_head_pipeline)
    expected = [expected_row(nlp, {"id": "ok0", "text": good[0]}),
                expected_row(nlp, {"id": "ok1", "text": good[1]}),
                expected_row(nlp, {"id": "ok2", "text": good[4], "questions": ["Who?"]})]
    assert_rows_close([r for r in rows if r["id"].startswith("ok")], expected)
    assert [r["text"] for r in rows if r["id"] in ("number", "surrogate", "7")] == [None] * 3
    assert all(r["ents"] is None and r["cats"] is None for r in rows if r["error"])


@Language.component("fail_on_boom")
def fail_on_boom(doc):
    if "BOOM" in doc.text:
        raise RuntimeError("boom")
    return doc


def test_a_doc_that_breaks_the_pipeline_fails_alone(ner_pipeline):
    annotator = Annotator(str(ner_pipeline), max_chars=200, batch_size=8)
    annotator.nlp.add_pipe("fail_on_boom")
    texts = shipped_sentences(5)
    records = [{"id": i, "text": t} for i, t in enumerate(texts)]
    records[2]["text"] = "BOOM " + texts[2]
    records.append({"id": 5, "text": "x" * 201})
    rows = annotator.annotate(records)
    assert [r["id"] for r in rows] == ["0", "1", "2", "3", "4", "5"]
    assert rows[2]["error"] == "RuntimeError: boom"
    assert rows[5]["error"].startswith("text has 201 characters, more than max_chars (200)")
    ents = [[(e.start_char, e.end_char, e.label_) for e in annotator.nlp(t).ents]
            for t in texts]
    for i in (0, 1, 3, 4):
        assert rows[i]["error"] is None
        assert [(e["start_char"], e["end_char"], e["label"]) for e in rows[i]["ents"]] == ents[i]


def test_wrong_schema_or_pipeline_fails_before_any_work(ner_pipeline, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"body": "Lisboa"}])
    with pytest.raises(ValueError, match="no 'text' in the first row .*--text-key"):
        apply(str(ner_pipeline), str(source), tmp_path / "out")
    with pytest.raises(ValueError, match="Can't find a spaCy pipeline at 'no_such_pipeline'"):
        apply("no_such_pipeline", str(source), tmp_path / "out", text_key="body")
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(app, ["apply", str(ner_pipeline), str(source),
                                      str(tmp_path / "out")])
    assert result.exit_code == 1 and "pass --text-key" in result.output


def test_rerun_with_other_input_is_refused(ner_pipeline, tmp_path):
    texts = shipped_sentences(6)
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    apply(str(ner_pipeline), str(source), tmp_path / "out", shard_size=4)
    write_jsonl(source, [{"text": t} for t in texts[:5]])
    with pytest.raises(ValueError, match="another job .*input.*write to a new OUTPUT or delete"):
        apply(str(ner_pipeline), str(source), tmp_path / "out", shard_size=4)
    write_jsonl(source, [{"text": t} for t in texts])
    with pytest.raises(ValueError, match=r"different options\)"):
        apply(str(ner_pipeline), str(source), tmp_path / "out", shard_size=3)


def test_interrupted_run_resumes_and_writes_each_row_once(ner_pipeline, tmp_path):
    """SIGKILL `spacy-xlmr apply` once two shards are on disk, rerun it: the
    finished shards are kept as they are, the rest is written once."""
    texts = shipped_sentences(400)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": t}
                                                 for i, t in enumerate(texts)])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "spacy_xlmr", "apply", str(ner_pipeline), str(source),
               str(out), "--shard-size", "20", "--batch-size", "4", "--threads", "1"]
    finished = kill_after_shards(command, out, tmp_path / "stderr.log")
    assert 2 <= len(finished) < 20
    result = apply(str(ner_pipeline), str(source), out, shard_size=20, batch_size=4)
    assert result.annotated == 400 - 20 * len(finished)
    assert all(out.joinpath(name).stat().st_mtime_ns == t for name, t in finished.items())
    rows = read_jsonl_dir(out)
    assert [r["id"] for r in rows] == [f"d{i}" for i in range(400)]
    assert not list(out.glob(".*.tmp"))
    fresh = apply(str(ner_pipeline), str(source), tmp_path / "fresh.jsonl", shard_size=20)
    fresh_rows = [json.loads(line) for line in fresh.output.read_text().splitlines()]
    assert_rows_close(rows, fresh_rows)


def test_spacys_tagger_and_spancat_fill_tags_and_spans(tagger_spancat_pipeline, tmp_path):
    nlp = spacy.load(tagger_spancat_pipeline)
    assert pipeline_columns(nlp.config) == ["id", "text", "tags", "spans", "error"]
    rows, expected = tags_and_spans_rows(nlp, 60)
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    apply(str(tagger_spancat_pipeline), str(source), tmp_path / "out.jsonl", shard_size=16,
          batch_size=8)
    found = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [list(r) for r in found] == [["id", "text", "tags", "spans", "error"]] * 60
    assert_rows_close(found, expected)
    assert_tags_and_spans_predicted(found)


def test_each_shard_is_read_from_its_scanned_start(tmp_path):
    """What the Ray engine's actors read from a shard's start position (from
    scan) is that shard of the one stream of records: across files, blank
    lines, bad lines and parquet row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.jsonl").write_bytes(
        b'{"text": "a0"}\n\n{"text": "a1", "id": 7}\n{"text": "S\xe3o"}\nnot json\n'
        b'{"text": "a4", "questions": ["Who?"]}\n'
    )
    pq.write_table(pa.table({"text": [f"b{i}" for i in range(11)]}), tmp_path / "b.parquet",
                   row_group_size=3)
    (tmp_path / "c.txt").write_text("c0\n\nc2\nc3\n")
    files = input_files(str(tmp_path))
    stream = list(read_records(files, questions_key="questions"))
    assert len(stream) == 20 and stream[2]["error"].startswith("a.jsonl line 4: invalid UTF-8")
    for shard_size in (1, 2, 3, 4, 7, 100):
        scanned = scan(files, shard_size)
        assert scanned.rows == 20 and len(scanned.shard_starts) == -(-20 // shard_size)
        for i, start in enumerate(scanned.shard_starts):
            assert start.row == i * shard_size
            records = read_records(files, questions_key="questions", start=start)
            shard = stream[i * shard_size:(i + 1) * shard_size]
            assert list(itertools.islice(records, len(shard))) == shard


@pytest.mark.usefixtures("time_limit")  # two worker processes
def test_txt_and_parquet_inputs_and_outputs(ner_pipeline, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = shipped_sentences(30)
    (tmp_path / "in.txt").write_text("\n".join(texts[:20] + [""] + texts[20:]) + "\n")
    pq.write_table(pa.table({"text": texts}), tmp_path / "in.parquet")
    run = {"shard_size": 8, "n_process": 2}
    apply(str(ner_pipeline), str(tmp_path / "in.txt"), tmp_path / "txt.jsonl", **run)
    apply(str(ner_pipeline), str(tmp_path / "in.parquet"), tmp_path / "pq.parquet", **run)
    apply(str(ner_pipeline), str(tmp_path / "in.txt"), tmp_path / "out.spacy", **run)
    from_txt = [json.loads(line) for line in (tmp_path / "txt.jsonl").read_text().splitlines()]
    from_parquet = pq.read_table(tmp_path / "pq.parquet").to_pylist()
    assert [r["id"] for r in from_txt] == [str(i) for i in range(31)]
    assert from_txt[20]["error"] == "text is empty or whitespace: nothing to annotate"
    del from_txt[20]
    for i, row in enumerate(from_txt):
        row["id"] = str(i)
    assert_rows_close(from_parquet, from_txt)
    # Two processes give what one process gives.
    single = Annotator(str(ner_pipeline), threads=1)({"id": [r["id"] for r in from_txt],
                                                      "text": texts})
    assert_rows_close(from_txt, [dict(zip(single, values)) for values in zip(*single.values())])
    nlp = spacy.load(ner_pipeline)
    docs = list(DocBin().from_disk(tmp_path / "out.spacy").get_docs(nlp.vocab))
    assert [d.text for d in docs] == texts
    assert [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs] == [
        [(e["start_char"], e["end_char"], e["label"]) for e in r["ents"]] for r in from_txt
    ]
    assert all(d._.trf_data is None for d in docs)
    assert not list(tmp_path.glob(".*"))  # shard directories and temp files are gone
