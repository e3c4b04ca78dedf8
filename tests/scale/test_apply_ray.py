"""`spacy-xlmr apply --engine ray` and the Annotator in Ray Data, on a local
Ray cluster (2 CPUs, bound to 127.0.0.1, no dashboard or usage stats): the
same rows as the local engine, none lost or duplicated."""
import json
import os
import sys

import pytest
import spacy

from spacy_xlmr.scale.annotate import Annotator
from spacy_xlmr.scale.apply import apply

from .util import (
    assert_rows_close, assert_tags_and_spans_predicted, kill_after_shards, multi_head_rows,
    read_jsonl_dir, shipped_sentences, tags_and_spans_rows, write_jsonl,
)

# Before Ray is imported (see init_ray): a local cluster on 127.0.0.1, no usage stats.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
ray = pytest.importorskip("ray", reason="needs the ray extra: pip install spacy-xlmr[ray]")
pytestmark = pytest.mark.usefixtures("time_limit")


@pytest.mark.slow
@pytest.mark.parametrize("pipeline_name, n_rows", [("ner", 300), ("multi_head", 200)])
def test_ray_engine_equals_local_engine(pipeline_name, n_rows, ray_cluster, request, tmp_path):
    pipeline = str(request.getfixturevalue(f"{pipeline_name}_pipeline"))
    rows = multi_head_rows(n_rows)
    rows[7]["text"] = " "  # a bad row on either engine
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    options = {"shard_size": 64, "batch_size": 16}
    local = apply(pipeline, str(source), tmp_path / "local", **options)
    remote = apply(pipeline, str(source), tmp_path / "ray", engine="ray", workers=2,
                   **options)
    assert (remote.rows, remote.annotated, remote.errors) == (n_rows, n_rows, 1)
    assert (local.rows, local.annotated, local.errors) == (n_rows, n_rows, 1)
    local_rows, ray_rows = read_jsonl_dir(tmp_path / "local"), read_jsonl_dir(tmp_path / "ray")
    assert [r["id"] for r in ray_rows] == [r["id"] for r in rows]  # none lost or duplicated
    assert sorted(p.name for p in (tmp_path / "ray").glob("part-*")) == [
        f"part-{i:05d}.jsonl" for i in range(-(-n_rows // 64))
    ]
    assert_rows_close(ray_rows, local_rows)
    assert sum(len(r["ents"] or []) for r in ray_rows) > n_rows
    if pipeline_name == "multi_head":
        assert sum(len(r["answers"] or {}) for r in ray_rows) == 2 * len(range(0, n_rows, 3))
        assert all(len(r["cats"]) == 3 for r in ray_rows if not r["error"])


@pytest.mark.slow
def test_ray_engine_resumes_a_killed_run_and_writes_each_row_once(
    ner_pipeline, ray_cluster, tmp_path
):
    """SIGKILL the process group of `spacy-xlmr apply --engine ray` (driver,
    its local Ray cluster and actors) once its first shards are written,
    rerun on Ray: finished shards are kept, every row is written once, and
    the rows are those of a clean local run."""
    texts = shipped_sentences(400)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": t}
                                                 for i, t in enumerate(texts)])
    out = tmp_path / "out"
    options = {"shard_size": 20, "batch_size": 4}
    command = [sys.executable, "-m", "spacy_xlmr", "apply", str(ner_pipeline), str(source),
               str(out), "--engine", "ray", "--workers", "2", "--threads", "1",
               "--shard-size", "20", "--batch-size", "4", "--no-progress"]
    finished = kill_after_shards(command, out, tmp_path / "stderr.log")
    assert 2 <= len(finished) < 20
    assert sorted(finished) == [f"part-{i:05d}.jsonl" for i in range(len(finished))]
    result = apply(str(ner_pipeline), str(source), out, engine="ray", workers=2, **options)
    assert (result.rows, result.annotated) == (400, 400 - 20 * len(finished))
    assert all(out.joinpath(name).stat().st_mtime_ns == t for name, t in finished.items())
    rows = read_jsonl_dir(out)
    assert [r["id"] for r in rows] == [f"d{i}" for i in range(400)]
    assert not list(out.glob(".*.tmp"))
    local = apply(str(ner_pipeline), str(source), tmp_path / "local.jsonl", **options)
    assert_rows_close(rows, [json.loads(line) for line in local.output.read_text().splitlines()])


def test_annotator_in_a_plain_ray_data_pipeline(ner_pipeline, ray_cluster):
    texts = shipped_sentences(40)
    items = [{"id": i, "text": text} for i, text in enumerate(texts)]
    dataset = ray.data.from_items(items).map_batches(
        Annotator, fn_constructor_kwargs={"pipeline": str(ner_pipeline), "threads": 1},
        batch_format="pandas", batch_size=8, compute=ray.data.ActorPoolStrategy(size=1),
        num_cpus=1,
    )
    rows = sorted(dataset.take_all(), key=lambda row: int(row["id"]))
    nlp = spacy.load(ner_pipeline)
    expected = [expected_row_ner(nlp, item) for item in items]
    found = [{"id": r["id"], "text": r["text"], "ents": [dict(e) for e in r["ents"]],
              "error": r["error"]} for r in rows]
    assert_rows_close(found, expected)


def expected_row_ner(nlp, item):
    """The row of an NER pipeline, from its own API."""
    doc = nlp(item["text"])
    return {"id": str(item["id"]), "text": item["text"], "error": None,
            "ents": [{"start_char": e.start_char, "end_char": e.end_char, "label": e.label_,
                      "score": e._.ent_score} for e in doc.ents]}


def test_ray_engine_writes_parquet_and_spacy(ner_pipeline, ray_cluster, tmp_path):
    import pyarrow.parquet as pq

    texts = shipped_sentences(24)
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    apply(str(ner_pipeline), str(source), tmp_path / "out.parquet", engine="ray", workers=2,
          shard_size=10, batch_size=4)
    apply(str(ner_pipeline), str(source), tmp_path / "out.spacy", engine="ray", workers=2,
          shard_size=10, batch_size=4)
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist(maps_as_pydicts="strict")
    nlp = spacy.load(ner_pipeline)
    assert_rows_close(rows, [expected_row_ner(nlp, {"id": i, "text": t})
                             for i, t in enumerate(texts)])
    docs = list(spacy.tokens.DocBin().from_disk(tmp_path / "out.spacy").get_docs(nlp.vocab))
    assert [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs] == [
        [(e["start_char"], e["end_char"], e["label"]) for e in r["ents"]] for r in rows
    ]
    assert json.loads(json.dumps(rows[0]))["id"] == "0"


@pytest.mark.slow
def test_ray_engine_gives_spacys_tags_and_spans(tagger_spancat_pipeline, ray_cluster, tmp_path):
    """spaCy's tagger (listening to the encoder) and spancat on the Ray
    engine: the tags and spans nlp(text) sets, in .parquet output."""
    import pyarrow.parquet as pq

    nlp = spacy.load(tagger_spancat_pipeline)
    rows, expected = tags_and_spans_rows(nlp, 60)
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    apply(str(tagger_spancat_pipeline), str(source), tmp_path / "out.parquet", engine="ray",
          workers=2, shard_size=16, batch_size=8)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names == ["id", "text", "tags", "spans", "error"]
    found = table.to_pylist(maps_as_pydicts="strict")
    assert_rows_close(found, expected)
    assert_tags_and_spans_predicted(found)
