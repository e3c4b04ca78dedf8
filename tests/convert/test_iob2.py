from collections import Counter
from pathlib import Path
from typing import List, Tuple

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_xlmr.convert import ConversionStats, convert_iob2, read_iob2

PREFIX = "# text = "
DATA = Path(__file__).parents[2] / "data" / "ner"
SAMPLES = {
    # file: (sentences, tokens, entities by label)
    "uner-pt/train.iob2": (600, 12199, {"PER": 252, "ORG": 236, "LOC": 159}),
    "uner-pt/dev.iob2": (200, 3748, {"PER": 72, "ORG": 66, "LOC": 71}),
    "uner-zh/train.iob2": (600, 14109, {"PER": 297, "ORG": 181, "LOC": 420}),
    "uner-zh/dev.iob2": (200, 5143, {"PER": 65, "ORG": 44, "LOC": 179}),
}


@pytest.fixture(scope="module")
def vocab():
    return spacy.blank("xx").vocab


def source_sentences(path: Path) -> List[Tuple[str, List[str]]]:
    """(text line, tags) of every sentence, read independently of the converter."""
    sentences = []
    for block in path.read_text(encoding="utf8").split("\n\n"):
        lines = block.splitlines()
        if not lines:
            continue
        (text,) = [line[len(PREFIX):] for line in lines if line.startswith(PREFIX)]
        tags = [line.split("\t")[2] for line in lines if not line.startswith("#")]
        sentences.append((text, tags))
    return sentences


def token_iob2(doc) -> List[str]:
    return [t.ent_iob_ if t.ent_iob_ == "O" else f"{t.ent_iob_}-{t.ent_type_}" for t in doc]


def write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "in.iob2"
    path.write_text(content, encoding="utf8")
    return path


def row(i: int, token: str, tag: str = "O") -> str:
    return f"{i}\t{token}\t{tag}\t-\t-\n"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples_text_and_entities(vocab, name):
    n_sents, n_tokens, entities = SAMPLES[name]
    source = source_sentences(DATA / name)
    stats = ConversionStats()
    docs = list(read_iob2(DATA / name, vocab, stats=stats))
    assert len(docs) == len(source) == n_sents
    for doc, (text, tags) in zip(docs, source):
        assert doc.text == text
        assert len(doc) == len(tags)
        # Each token's entity IOB is exactly its source tag: same spans, same labels.
        assert token_iob2(doc) == tags
        assert Counter(ent.label_ for ent in doc.ents) == Counter(
            tag[2:] for tag in tags if tag.startswith("B-")
        )
    assert (stats.docs, stats.sentences, stats.tokens) == (n_sents, n_sents, n_tokens)
    assert stats.entities == Counter(entities)
    assert not stats.warnings and not stats.skipped


def test_spaces_recovered(vocab, tmp_path):
    path = write(
        tmp_path,
        "# sent_id = 1\n# text = Olá, mundo (Lisboa)!\n"
        + row(1, "Olá") + row(2, ",") + row(3, "mundo") + row(4, "(")
        + row(5, "Lisboa", "B-LOC") + row(6, ")") + row(7, "!") + "\n",
    )
    (doc,) = read_iob2(path, vocab)
    assert doc.text == "Olá, mundo (Lisboa)!"
    assert [t.whitespace_ for t in doc] == ["", " ", " ", "", "", "", ""]
    assert [(e.text, e.label_, e.start_char) for e in doc.ents] == [("Lisboa", "LOC", 12)]


def test_fallback_to_single_spaces(vocab, tmp_path):
    path = write(
        tmp_path,
        "# text = Ana  mora\n" + row(1, "Ana", "B-PER") + row(2, "mora") + "\n"
        "# sent_id = no-text\n" + row(1, "em") + row(2, "Porto", "B-LOC") + "\n"
        "# text = do Porto\n"
        + row(1, "de") + row(2, "o") + row(3, "Porto", "B-LOC") + "\n",
    )
    stats = ConversionStats()
    docs = list(read_iob2(path, vocab, stats=stats))
    assert [doc.text for doc in docs] == ["Ana mora", "em Porto", "de o Porto"]
    assert [[(e.text, e.label_) for e in doc.ents] for doc in docs] == [
        [("Ana", "PER")], [("Porto", "LOC")], [("Porto", "LOC")]
    ]
    assert stats.warnings == Counter({
        "tokens do not match '# text': tokens joined with single spaces": 2,
        "no '# text' line: tokens joined with single spaces": 1,
    })


def test_i_without_b_is_read_as_b(vocab, tmp_path):
    path = write(
        tmp_path,
        "# text = o João Silva\n"
        + row(1, "o") + row(2, "João", "I-PER") + row(3, "Silva", "I-PER") + "\n"
        "# text = Maria Google\n"
        + row(1, "Maria", "B-PER") + row(2, "Google", "I-ORG") + "\n"
        "# text = Nova Iorque\n"
        + row(1, "Nova", "B-LOC") + row(2, "Iorque", "I-LOC") + "\n",
    )
    stats = ConversionStats()
    docs = list(read_iob2(path, vocab, stats=stats))
    assert [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs] == [
        [(1, 3, "PER")],
        [(0, 1, "PER"), (1, 2, "ORG")],
        [(0, 2, "LOC")],
    ]
    assert stats.warnings == Counter({"I- tag not continuing an entity, read as B-": 2})
    assert stats.entities == Counter({"PER": 2, "ORG": 1, "LOC": 1})


def test_n_sents_and_limit(vocab):
    path = DATA / "uner-pt/dev.iob2"
    source = source_sentences(path)[:7]
    stats = ConversionStats()
    docs = list(read_iob2(path, vocab, n_sents=3, limit=7, stats=stats))
    assert [len(list(doc.sents)) for doc in docs] == [3, 3, 1]
    groups = [source[0:3], source[3:6], source[6:7]]
    for doc, group in zip(docs, groups):
        assert doc.text == " ".join(text for text, _ in group)
        assert [sent.text for sent in doc.sents] == [text for text, _ in group]
        assert token_iob2(doc) == [tag for _, tags in group for tag in tags]
    assert (stats.docs, stats.sentences) == (3, 7)
    assert stats.tokens == sum(len(tags) for _, tags in source)
    assert len(list(read_iob2(path, vocab, limit=5))) == 5
    with pytest.raises(ValueError, match="n_sents"):
        list(read_iob2(path, vocab, n_sents=0))


def test_sentence_without_tokens_is_skipped(vocab, tmp_path):
    path = write(
        tmp_path,
        "# newdoc id = d1\n# text = nada\n\n# text = Rio\n" + row(1, "Rio", "B-LOC") + "\n",
    )
    stats = ConversionStats()
    docs = list(read_iob2(path, vocab, stats=stats))
    assert [doc.text for doc in docs] == ["Rio"]
    assert stats.skipped == Counter({"sentence without token lines": 1})


def test_docbin_round_trip(vocab, tmp_path):
    path = DATA / "uner-zh/dev.iob2"
    output = tmp_path / "out" / "dev.spacy"
    stats = convert_iob2(path, output, n_sents=4)
    assert (stats.docs, stats.sentences, stats.tokens) == (50, 200, 5143)
    assert stats.entities == Counter(SAMPLES["uner-zh/dev.iob2"][2])
    expected = list(read_iob2(path, vocab, n_sents=4))
    loaded = list(DocBin().from_disk(output).get_docs(vocab))
    assert len(loaded) == len(expected) == 50
    for got, want in zip(loaded, expected):
        assert got.text == want.text
        assert [t.text for t in got] == [t.text for t in want]
        assert token_iob2(got) == token_iob2(want)
        assert [s.start for s in got.sents] == [s.start for s in want.sents]
    assert "PER: 65" in stats.summary() and "sentences: 200" in stats.summary()


@pytest.mark.parametrize(
    "bad_line,line_no,message",
    [
        ("2\tmundo\tO\t-\n", 3, "expected 5 tab-separated columns"),
        ("2 mundo O - -\n", 3, "expected 5 tab-separated columns"),
        ("3\tmundo\tO\t-\t-\n", 3, "expected token id 2, got '3'"),
        ("2\tmundo\tX-PER\t-\t-\n", 3, "invalid IOB2 tag 'X-PER'"),
        ("2\tmundo\tB-\t-\t-\n", 3, "invalid IOB2 tag 'B-'"),
        ("2\t\tO\t-\t-\n", 3, "empty token"),
        ("# text = late comment\n", 3, "comment line inside a sentence"),
    ],
)
def test_malformed_input(vocab, tmp_path, bad_line, line_no, message):
    path = write(tmp_path, "# text = olá mundo\n" + row(1, "olá") + bad_line + "\n")
    with pytest.raises(ValueError, match=rf"in\.iob2:{line_no}: {message}"):
        list(read_iob2(path, vocab))


def test_byte_order_mark_is_accepted(tmp_path, vocab):
    """A UTF-8 file saved with a byte-order mark (as Windows editors do)
    reads as the same file without it, through the CLI too."""
    from typer.testing import CliRunner

    from spacy_xlmr.cli import app

    source = DATA / "uner-pt/dev.iob2"
    with_bom = tmp_path / "bom.iob2"
    with_bom.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())
    expected = [doc.to_json() for doc in read_iob2(source, vocab, limit=5)]
    assert [doc.to_json() for doc in read_iob2(with_bom, vocab, limit=5)] == expected
    output = tmp_path / "bom.spacy"
    result = CliRunner().invoke(app, ["convert-iob2", str(with_bom), str(output)])
    assert result.exit_code == 0, result.output
    assert len(DocBin().from_disk(output)) == SAMPLES["uner-pt/dev.iob2"][0]
