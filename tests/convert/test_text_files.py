"""Every converter reads UTF-8 (with or without a byte-order mark); other
encodings are an error naming the file and how to re-encode it."""
import json

import pytest
import spacy

from spacy_xlmr.convert import read_char_span_json, read_iob2, read_labels, read_squad, read_textcat

SQUAD = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{
    "context": "José mora em São Paulo.",
    "qas": [{"id": "q1", "question": "Onde mora José?", "is_impossible": False,
             "answers": [{"text": "São Paulo", "answer_start": 13}]}],
}]}]}
FILES = {
    "iob2": ("data.iob2", "# text = José mora\n1\tJosé\tB-PER\t-\t-\n2\tmora\tO\t-\t-\n\n"),
    "squad": ("data.json", json.dumps(SQUAD, ensure_ascii=False)),
    "char_spans": ("spans.json", json.dumps([{"text": "José mora", "entities": [
        {"name": "José", "span": [0, 4], "type": "PER"}]}], ensure_ascii=False)),
    "textcat_jsonl": ("data.jsonl", '{"text": "José mora", "label": "a"}\n'),
    "textcat_csv": ("data.csv", "text,label\nJosé mora,a\n"),
    "labels": ("labels.txt", "ação\nsaúde\n"),
}


def read(kind, path):
    nlp = spacy.blank("xx")
    if kind == "iob2":
        return list(read_iob2(path, nlp.vocab))
    if kind == "squad":
        return list(read_squad(path, nlp))
    if kind == "char_spans":
        return list(read_char_span_json(path, nlp))
    if kind == "labels":
        return read_labels(path)
    return list(read_textcat(path, nlp, labels=["a"]))


@pytest.mark.parametrize("kind", sorted(FILES))
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_utf8_with_or_without_a_byte_order_mark_is_read(tmp_path, kind, encoding):
    name, text = FILES[kind]
    (tmp_path / name).write_text(text, encoding=encoding)
    assert read(kind, tmp_path / name)


@pytest.mark.parametrize("kind", sorted(FILES))
@pytest.mark.parametrize("encoding, named", [("latin-1", "not UTF-8"), ("utf-16", "UTF-16 text")])
def test_other_encodings_are_an_error_naming_the_file(tmp_path, kind, encoding, named):
    name, text = FILES[kind]
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    with pytest.raises(ValueError, match=f"{path}: {named}.*re-encode the file") as error:
        read(kind, path)
    assert "iconv" in str(error.value)
