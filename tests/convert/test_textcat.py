import json
from collections import Counter
from pathlib import Path
from typing import List, Tuple

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_xlmr.convert import (
    TEXTCAT_FORMATS,
    ConversionStats,
    convert_textcat,
    detect_textcat_format,
    read_labels,
    read_textcat,
)

DATA = Path(__file__).parents[2] / "data" / "textcat"
SIB_LABELS = [
    "science/technology", "travel", "politics", "sports", "health", "entertainment", "geography",
]
SIB_TRAIN = {
    "science/technology": 55, "travel": 38, "politics": 36, "health": 20,
    "sports": 19, "geography": 17, "entertainment": 15,
}
SIB_DEV = {
    "science/technology": 19, "travel": 15, "health": 7, "sports": 6,
    "politics": 6, "geography": 4, "entertainment": 3,
}
SAMPLES = {
    # file: (docs, labels, rows whose text contains ")
    "sib200-en/train.tsv": (200, SIB_TRAIN, 10),
    "sib200-en/dev.tsv": (60, SIB_DEV, 2),
    "sib200-pt/train.tsv": (200, SIB_TRAIN, 13),
    "sib200-pt/dev.tsv": (60, SIB_DEV, 3),
    "sib200-zh/train.tsv": (200, SIB_TRAIN, 0),
    "sib200-zh/dev.tsv": (60, SIB_DEV, 0),
    "nusax-en/train.csv": (150, {"positive": 67, "negative": 49, "neutral": 34}, 4),
    "nusax-en/dev.csv": (50, {"negative": 22, "neutral": 14, "positive": 14}, 1),
}


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("xx")


def unquote(field: str) -> str:
    """Decode one pandas-written field, independently of the csv module."""
    if field.startswith('"'):
        assert field.endswith('"')
        return field[1:-1].replace('""', '"')
    return field


def source_rows(path: Path) -> List[Tuple[str, str, bool]]:
    """(text, label, whether the raw field was CSV-quoted) of every data row,
    read without the csv module. No sample text contains a tab or a newline,
    and NusaX ids and labels never need quoting, so splitting each line is
    enough."""
    lines = path.read_text(encoding="utf8").splitlines()[1:]
    rows = []
    for line in lines:
        if path.suffix == ".tsv":
            _, label, text = line.split("\t")
        else:
            rest, label = line.rsplit(",", 1)
            text = rest.split(",", 1)[1]
        rows.append((unquote(text), label, text.startswith('"')))
    return rows


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf8")
    return path


def jsonl(*objects) -> str:
    return "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in objects)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples(nlp, name):
    n_docs, label_counts, n_quoted = SAMPLES[name]
    path = DATA / name
    rows = source_rows(path)
    stats = ConversionStats()
    docs = list(read_textcat(path, nlp, stats=stats))
    assert len(docs) == len(rows) == n_docs
    assert sum('"' in text for text, _, _ in rows) == n_quoted
    if name.startswith("sib200"):
        # pandas quotes a TSV field exactly when its text contains ".
        assert all(quoted == ('"' in text) for text, _, quoted in rows)
    labels = sorted(label_counts)
    for doc, (text, label, _) in zip(docs, rows):
        assert doc.text == text
        assert list(doc.cats) == labels
        assert doc.cats == {lab: 1.0 if lab == label else 0.0 for lab in labels}
    assert stats.labels == Counter(label for _, label, _ in rows) == Counter(label_counts)
    assert stats.docs == n_docs and stats.tokens == sum(len(doc) for doc in docs)
    assert stats.labels_per_doc == Counter({1: n_docs})
    assert stats.exclusive and stats.max_labels_per_doc == 1
    assert not stats.skipped and not stats.warnings


def test_sib200_labels_file_and_parallel_rows(nlp):
    for lang in ("en", "pt", "zh"):
        assert read_labels(DATA / f"sib200-{lang}" / "labels.txt") == SIB_LABELS
    docs = {
        lang: list(read_textcat(DATA / f"sib200-{lang}/dev.tsv", nlp, labels=SIB_LABELS))
        for lang in ("en", "pt", "zh")
    }
    # cats follow the order of the given label set; the rows are parallel.
    assert all(list(doc.cats) == SIB_LABELS for doc in docs["zh"])
    assert [d.cats for d in docs["en"]] == [d.cats for d in docs["pt"]] == [
        d.cats for d in docs["zh"]
    ]


def test_sib200_quoted_texts(nlp, tmp_path):
    en = list(read_textcat(DATA / "sib200-en/train.tsv", nlp))
    pt = list(read_textcat(DATA / "sib200-pt/train.tsv", nlp))
    # Line 13 of both files: '1239\tentertainment\t"""She’s very cute ..."' (pandas quoting).
    assert en[11].text == (
        '"She’s very cute and sings quite well, too," he said according to a '
        "transcript of the news conference."
    )
    assert pt[11].text == (
        '"Ela é bem fofa e canta muito bem ", disse ele, segundo uma transcrição '
        "da entrevista coletiva."
    )
    assert en[66].text.startswith("He did, however, reiterate") and (
        '"settled law of the land"' in en[66].text
    )
    assert en[11].cats["entertainment"] == en[66].cats["politics"] == 1.0
    # A quoted field may hold the delimiter and doubled quotes.
    path = write(
        tmp_path, "quoted.tsv",
        'index_id\tcategory\ttext\n'
        '1\ttravel\t"He said ""hi""\tthen left"\n'
        '2\tsports\tA "plain" quote inside an unquoted field\n',
    )
    assert detect_textcat_format(path) == "sib200"
    docs = list(read_textcat(path, nlp))
    assert [doc.text for doc in docs] == [
        'He said "hi"\tthen left', 'A "plain" quote inside an unquoted field'
    ]
    assert [doc.cats for doc in docs] == [
        {"sports": 0.0, "travel": 1.0}, {"sports": 1.0, "travel": 0.0}
    ]


def test_nusax_texts_kept_exactly(nlp):
    docs = list(read_textcat(DATA / "nusax-en/train.csv", nlp))
    # Row 316 (line 40) is '316,"""...Gramed\'s staff passed me...""",negative'.
    assert docs[38].text == '"...Gramed\'s staff passed me..."'
    assert docs[38].cats == {"negative": 1.0, "neutral": 0.0, "positive": 0.0}
    # Trailing whitespace in the source text is kept, not stripped.
    assert docs[7].text.endswith("drain this fast, boss? ")
    assert sum(doc.text != doc.text.strip() for doc in docs) == 9


def test_detect_format(tmp_path):
    assert {
        name: detect_textcat_format(DATA / name) for name in SAMPLES
    } == {name: name.split("-")[0] for name in SAMPLES}
    cases = {
        "a.jsonl": ('{"text": "x", "label": "a"}\n', "jsonl"),
        "a.ndjson": ('{"text": "x", "label": "a"}\n', "jsonl"),
        "a.txt": ('{"text": "x", "label": "a"}\n', "jsonl"),
        "b.tsv": ("text\tlabel\nx\ta\n", "tsv"),
        "b.txt": ("text\tlabel\nx\ta\n", "tsv"),
        "c.csv": ("label,text\na,x\n", "csv"),
        "c.txt": ("label,text\na,x\n", "csv"),
        "d.txt": ("id,text,label\n1,x,a\n", "nusax"),
        "e.txt": ("index_id\tcategory\ttext\n1\ta\tx\n", "sib200"),
    }
    for name, (content, fmt) in cases.items():
        assert detect_textcat_format(write(tmp_path, name, content)) == fmt, name
    with pytest.raises(ValueError, match=r"list\.json:1: a JSON array is not supported"):
        detect_textcat_format(write(tmp_path, "list.json", '[{"text": "x"}]\n'))
    assert TEXTCAT_FORMATS == ("sib200", "nusax", "jsonl", "csv", "tsv")


def test_generic_columns(nlp, tmp_path):
    path = write(
        tmp_path, "reviews.csv",
        'stars,review,lang\n5,"Great, really",en\n1,Terrible,en\n5,Ótimo,pt\n',
    )
    stats = ConversionStats()
    docs = list(
        read_textcat(path, nlp, text_column="review", label_column="stars", stats=stats)
    )
    assert [(doc.text, doc.cats) for doc in docs] == [
        ("Great, really", {"1": 0.0, "5": 1.0}),
        ("Terrible", {"1": 1.0, "5": 0.0}),
        ("Ótimo", {"1": 0.0, "5": 1.0}),
    ]
    assert stats.labels == Counter({"5": 2, "1": 1}) and stats.exclusive
    tsv = write(tmp_path, "t.tsv", "text\tlabel\nBom dia\tgreeting\n")
    assert [doc.cats for doc in read_textcat(tsv, nlp, labels=["greeting", "other"])] == [
        {"greeting": 1.0, "other": 0.0}
    ]


def test_jsonl_forms(nlp, tmp_path):
    path = write(
        tmp_path, "train.jsonl",
        jsonl(
            {"text": "Vai chover amanhã", "cats": {"weather": 1.0, "sports": 0.0}},
            {"text": "O Benfica ganhou", "cats": {"sports": 1}},
            {"text": "Jogo adiado pela chuva", "labels": ["sports", "weather"]},
            {"text": "Boa noite", "labels": []},
            {"text": "政治新闻", "label": "politics", "id": 7},
        ),
    )
    assert detect_textcat_format(path) == "jsonl"
    stats = ConversionStats()
    docs = list(read_textcat(path, nlp, stats=stats))
    labels = ["politics", "sports", "weather"]
    assert [doc.text for doc in docs] == [
        "Vai chover amanhã", "O Benfica ganhou", "Jogo adiado pela chuva",
        "Boa noite", "政治新闻",
    ]
    assert all(list(doc.cats) == labels for doc in docs)
    assert [doc.cats for doc in docs] == [
        {"politics": 0.0, "sports": 0.0, "weather": 1.0},
        {"politics": 0.0, "sports": 1.0, "weather": 0.0},
        {"politics": 0.0, "sports": 1.0, "weather": 1.0},
        {"politics": 0.0, "sports": 0.0, "weather": 0.0},
        {"politics": 1.0, "sports": 0.0, "weather": 0.0},
    ]
    assert stats.labels == Counter({"sports": 2, "weather": 2, "politics": 1})
    assert stats.labels_per_doc == Counter({1: 3, 2: 1, 0: 1})
    assert stats.max_labels_per_doc == 2 and not stats.exclusive
    assert "exclusive: False (docs by number of labels: 0: 1, 1: 3, 2: 1)" in stats.summary()
    assert not stats.skipped and not stats.warnings


def test_jsonl_single_label_is_exclusive_and_soft_cats_warn(nlp, tmp_path):
    path = write(
        tmp_path, "a.jsonl",
        jsonl({"text": "a", "label": "x"}, {"text": "b", "cats": {"y": 1.0, "x": 0.0}}),
    )
    stats = ConversionStats()
    assert len(list(read_textcat(path, nlp, stats=stats))) == 2
    assert stats.exclusive and stats.labels_per_doc == Counter({1: 2})
    soft = write(tmp_path, "soft.jsonl", jsonl({"text": "a", "cats": {"x": 0.7, "y": 0.3}}))
    stats = ConversionStats()
    (doc,) = read_textcat(soft, nlp, stats=stats)
    assert doc.cats == {"x": 0.7, "y": 0.3}
    assert stats.labels == Counter({"x": 1})
    assert stats.warnings == Counter(
        {"cats value other than 0.0/1.0 kept (spaCy's textcat needs 0.0 or 1.0)": 2}
    )


def test_jsonl_text_column(nlp, tmp_path):
    path = write(tmp_path, "a.jsonl", jsonl({"sentence": "olá", "label": "hi"}))
    assert [d.text for d in read_textcat(path, nlp, text_column="sentence")] == ["olá"]
    with pytest.raises(ValueError, match="label_column does not apply to JSONL"):
        read_textcat(path, nlp, label_column="label")


def test_empty_text_and_blank_lines_are_skipped_and_counted(nlp, tmp_path):
    table = write(
        tmp_path, "e.tsv",
        "index_id\tcategory\ttext\n1\ttravel\t\n2\tsports\tGol!\n\n3\ttravel\t   \n"
        '4\thealth\t""\n5\ttravel\tViagem\n',
    )
    stats = ConversionStats()
    docs = list(read_textcat(table, nlp, stats=stats))
    assert [doc.text for doc in docs] == ["Gol!", "Viagem"]
    # Labels of skipped rows are not part of the label set.
    assert [list(doc.cats) for doc in docs] == [["sports", "travel"]] * 2
    assert stats.skipped == Counter({"empty text": 3, "blank line": 1})
    assert stats.docs == 2 and stats.labels == Counter({"sports": 1, "travel": 1})
    assert "empty text: 3" in stats.summary()

    lines = write(
        tmp_path, "e.jsonl",
        jsonl({"text": "", "label": "a"}, {"text": "ok", "label": "b"}) + "\n"
        + jsonl({"text": " \t", "labels": ["a"]}),
    )
    stats = ConversionStats()
    docs = list(read_textcat(lines, nlp, stats=stats))
    assert [(doc.text, doc.cats) for doc in docs] == [("ok", {"b": 1.0})]
    assert stats.skipped == Counter({"empty text": 2, "blank line": 1})


def test_limit(nlp, tmp_path):
    path = DATA / "sib200-en/dev.tsv"
    stats = ConversionStats()
    docs = list(read_textcat(path, nlp, limit=5, stats=stats))
    assert [doc.text for doc in docs] == [text for text, _, _ in source_rows(path)[:5]]
    # The label set is still the whole file's.
    assert all(list(doc.cats) == sorted(SIB_LABELS) for doc in docs)
    assert stats.docs == 5 and sum(stats.labels.values()) == 5
    skipping = write(tmp_path, "s.csv", "text,label\nx,a\n,a\ny,b\n,b\nz,a\n")
    stats = ConversionStats()
    assert [d.text for d in read_textcat(skipping, nlp, limit=2, stats=stats)] == ["x", "y"]
    assert stats.skipped == Counter({"empty text": 1})
    assert list(read_textcat(skipping, nlp, limit=0)) == []
    with pytest.raises(ValueError, match="limit must be at least 0"):
        read_textcat(skipping, nlp, limit=-1)


def test_vocab_splits_on_whitespace_only():
    vocab = spacy.blank("xx").vocab
    path = DATA / "sib200-pt/train.tsv"
    docs = list(read_textcat(path, vocab, limit=12))
    assert docs[11].text.startswith('"Ela é bem fofa e canta muito bem ", disse')
    assert [t.text for t in docs[11]][:3] == ['"Ela', "é", "bem"]
    assert all(doc.vocab is vocab for doc in docs)
    assert [doc.text for doc in docs] == [text for text, _, _ in source_rows(path)[:12]]
    with pytest.raises(TypeError, match="expected a spaCy Language or Vocab"):
        read_textcat(path, "xx")


def test_docbin_round_trip(nlp, tmp_path):
    path = DATA / "sib200-pt/dev.tsv"
    output = tmp_path / "out" / "dev.spacy"
    stats = convert_textcat(path, output, labels=SIB_LABELS)
    assert stats.docs == 60 and stats.labels == Counter(SIB_DEV) and stats.exclusive
    assert "science/technology: 19" in stats.summary()
    expected = list(read_textcat(path, nlp, labels=SIB_LABELS))
    loaded = list(DocBin().from_disk(output).get_docs(nlp.vocab))
    assert len(loaded) == len(expected) == 60
    for got, want in zip(loaded, expected):
        assert got.text == want.text
        assert [t.text for t in got] == [t.text for t in want]
        assert got.cats == want.cats and list(got.cats) == SIB_LABELS

    multi = write(
        tmp_path, "m.jsonl",
        jsonl({"text": "a b", "labels": ["x", "y"]}, {"text": "c", "cats": {"y": 1.0}}),
    )
    stats = convert_textcat(multi, tmp_path / "m.spacy", lang="en")
    assert not stats.exclusive and stats.labels_per_doc == Counter({2: 1, 1: 1})
    loaded = list(DocBin().from_disk(tmp_path / "m.spacy").get_docs(nlp.vocab))
    assert [(d.text, d.cats) for d in loaded] == [
        ("a b", {"x": 1.0, "y": 1.0}), ("c", {"x": 0.0, "y": 1.0})
    ]


def test_bad_arguments(nlp, tmp_path):
    tsv = write(tmp_path, "in.tsv", "index_id\tlabel\ttext\n1\ta\tx\n")
    assert [d.cats for d in read_textcat(tsv, nlp)] == [{"a": 1.0}]  # generic "tsv"
    with pytest.raises(ValueError, match=r"in\.tsv:1: missing column\(s\) 'category'"):
        list(read_textcat(tsv, nlp, format="sib200"))
    path = DATA / "nusax-en/dev.csv"
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        read_textcat(path, nlp, format="xml")
    with pytest.raises(ValueError, match=r"duplicate labels: \['a'\]"):
        read_textcat(path, nlp, labels=["a", "b", "a"])
    with pytest.raises(ValueError, match="labels is empty"):
        read_textcat(path, nlp, labels=[])
    with pytest.raises(TypeError, match="not a string"):
        read_textcat(path, nlp, labels="positive")


def test_bad_labels_file(tmp_path):
    path = write(tmp_path, "labels.txt", "a\n\nb\na\n")
    with pytest.raises(ValueError, match=r"labels\.txt:4: duplicate label 'a'"):
        read_labels(path)


SIB_HEADER = "index_id\tcategory\ttext\n"


@pytest.mark.parametrize(
    "name,content,labels,line,message",
    [
        ("in.tsv", "", None, 1, "empty file, expected a header line"),
        ("in.tsv", "id\tcategoria\ttexto\n1\ta\tx\n", None, 1,
         r"missing column\(s\) 'text', 'label'; the header has \['id', 'categoria', 'texto'\]"),
        ("in.csv", "id,label\n1,positive\n", None, 1, r"missing column\(s\) 'text'"),
        ("in.tsv", SIB_HEADER + "1\ttravel\tok\n2\ttravel\n", None, 3,
         "expected 3 tab-separated columns, got 2"),
        ("in.csv", "id,text,label\n1,a,b,c\n", None, 2,
         "expected 3 comma-separated columns, got 4"),
        ("in.tsv", SIB_HEADER + "1\ttravel\tok\n2\t\tsem rótulo\n", None, 3,
         "empty label in column 'category'"),
        ("in.tsv", SIB_HEADER + "1\ttravel\tok\n2\tmusic\tsong\n", SIB_LABELS, 3,
         r"label\(s\) 'music' not in the label set \['science/technology'"),
        # Written without CSV quoting: must not be read silently as 'Hi he said'.
        ("in.tsv", SIB_HEADER + '1\ttravel\t"Hi" he said\n', None, 2,
         "malformed CSV: '\t' expected after '\"'"),
        ("in.csv", 'text,label\nok,a\n"never closed,a\nmore,b\n', None, 3,
         "malformed CSV: unexpected end of data"),
        ("in.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "x"\n', None, 2,
         "invalid JSON: Expecting ',' delimiter"),
        ("in.jsonl", '{"text": "a", "label": "x"}\n["b", "x"]\n', None, 2,
         "expected a JSON object, got list"),
        ("in.jsonl", '{"label": "x"}\n', None, 1, "missing key 'text'"),
        ("in.jsonl", '{"text": 3, "label": "x"}\n', None, 1, "'text' must be a string, got int"),
        ("in.jsonl", '{"text": "a"}\n', None, 1,
         "expected exactly one of 'cats', 'label', 'labels', got none"),
        ("in.jsonl", '{"text": "a", "label": "x", "cats": {"x": 1}}\n', None, 1,
         r"expected exactly one of 'cats', 'label', 'labels', got \['cats', 'label'\]"),
        ("in.jsonl", '{"text": "a", "cats": {"x": "1.0"}}\n', None, 1,
         "non-numeric cats value for 'x': '1.0'"),
        ("in.jsonl", '{"text": "a", "cats": {"x": true}}\n', None, 1,
         "non-numeric cats value for 'x': True"),
        ("in.jsonl", '{"text": "a", "cats": {"x": null}}\n', None, 1,
         "non-numeric cats value for 'x': None"),
        ("in.jsonl", '{"text": "a", "cats": {"x": 2}}\n', None, 1,
         "cats value for 'x' must be between 0 and 1, got 2"),
        ("in.jsonl", '{"text": "a", "cats": {"x": NaN}}\n', None, 1,
         "cats value for 'x' must be between 0 and 1, got nan"),
        ("in.jsonl", '{"text": "a", "cats": ["x"]}\n', None, 1,
         "'cats' must be an object of label: number, got list"),
        ("in.jsonl", '{"text": "a", "labels": "x"}\n', None, 1,
         "'labels' must be a list of strings, got str"),
        ("in.jsonl", '{"text": "a", "labels": ["x", "x"]}\n', None, 1,
         "duplicate label in 'labels'"),
        ("in.jsonl", '{"text": "a", "label": ""}\n', None, 1,
         "'label' must hold non-empty strings, got ''"),
        ("in.jsonl", '{"text": "a", "label": "x"}\n\n{"text": "b", "labels": ["x", "z"]}\n',
         ["x", "y"], 3, r"label\(s\) 'z' not in the label set \['x', 'y'\]"),
        ("in.jsonl", '{"text": "a", "cats": {"x": 1.0, "q": 0.0}}\n', ["x"], 1,
         r"label\(s\) 'q' not in the label set"),
    ],
)
def test_malformed_input(nlp, tmp_path, name, content, labels, line, message):
    path = write(tmp_path, name, content)
    pattern = rf"in\.{path.suffix[1:]}:{line}: {message}"
    with pytest.raises(ValueError, match=pattern):
        list(read_textcat(path, nlp, labels=labels))
