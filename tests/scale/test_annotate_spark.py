"""The Annotator as the function of Spark's mapInPandas (local[2], bound to
127.0.0.1): the same rows as the Annotator on the same pandas batch."""
import shutil
import sys

import pytest

from spacy_xlmr.scale.annotate import Annotator, map_in_pandas, spark_schema

from .util import save_ner_pipeline, shipped_sentences

pyspark = pytest.importorskip("pyspark", reason="pyspark isn't installed (pip install pyspark)")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java >= 17"),
    pytest.mark.usefixtures("time_limit"),
]


def test_map_in_pandas_in_spark_gives_the_annotators_rows(
    token_classification_checkpoint, tmp_path, monkeypatch
):
    import pandas
    from pyspark.sql import SparkSession

    # The workers run this Python (Spark's default: the first python3 on PATH).
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)

    pipeline = str(save_ner_pipeline(token_classification_checkpoint, tmp_path / "ner"))
    texts = shipped_sentences(40)
    batch = pandas.DataFrame({"id": [f"d{i}" for i in range(len(texts))], "text": texts})
    annotator = Annotator(pipeline, threads=1)
    expected = annotator(batch)
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    try:
        frame = spark.createDataFrame(batch).repartition(2)
        annotated = frame.mapInPandas(
            map_in_pandas(pipeline, threads=1), schema=spark_schema(annotator.columns)
        ).toPandas()
    finally:
        spark.stop()
    rows = {row["id"]: row for row in annotated.to_dict("records")}
    assert sorted(rows) == sorted(expected["id"])
    for row in expected.to_dict("records"):
        got = rows[row["id"]]
        assert pandas.isna(got["error"]) and got["text"] == row["text"]
        got_ents = [dict(e) for e in got["ents"]]
        assert [(e["start_char"], e["end_char"], e["label"]) for e in got_ents] == [
            (e["start_char"], e["end_char"], e["label"]) for e in row["ents"]
        ]
        assert [e["score"] for e in got_ents] == pytest.approx(
            [e["score"] for e in row["ents"]], abs=1e-5
        )
    assert sum(len(row["ents"]) for row in expected.to_dict("records")) > 0
