import unicodedata

import pytest
import spacy
from spacy.tokens import Doc

from spacy_xlmr.encoder.alignment import tokenize_docs, trim_span
from spacy_xlmr.hf import load_tokenizer

TEXTS = {
    "latin": "Maria mora em Lisboa, não é? O João disse: \"sim!\"",
    "contraction": "I don't think it's 3.5km away.",
    "cjk": "北京是中国的首都。东京在日本。",
    "japanese": "東京タワーは日本の電波塔です。",
    "arabic": "القاهرة هي عاصمة مصر.",
    "hebrew": "שלום עולם, היום אנחנו נוסעים לירושלים.",
    "devanagari": "विधानसभा के कुछ सदस्यों के बीच।",
    "thai": "สวัสดีครับ วันนี้อากาศดีมาก",
    "korean": "안녕하세요, 저는 서울에 살고 있습니다.",
    "emoji": "Family 👩‍👩‍👧 and flag 🇧🇷 ❤️ ok 😀!",
    "combining": "Cafe\u0301 e\u0301le\u0300ve nai\u0308ve",
    "nfkc": "ﬁnance ﬂow Ｆｕｌｌｗｉｄｔｈ １２３ ㈱",
    "whitespace": "a  b\t\tc\n\nd\u00a0e \u2003 f",
    "control": "abc\x07def ghi\u200bjkl zero\u200dwidth",
    "empty": "",
    "only_space": "   \n\t ",
}


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    return load_tokenizer(tiny_checkpoint)


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if not (c.isspace() or unicodedata.category(c) in ("Cc", "Cf")))


def _piece_text(piece: str) -> str:
    return _normalize(piece.replace("▁", ""))


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_aligned_pieces_spell_the_token(tokenizer, name):
    """Each token's pieces concatenate (minus ▁, NFKC) to the token's text,
    except where a piece straddles a token boundary."""
    nlp = spacy.blank("xx")
    doc = nlp.make_doc(TEXTS[name])
    (pieces,) = tokenize_docs(tokenizer, [doc])
    assert len(pieces.token_pieces) == len(doc)
    for token, token_pieces in zip(doc, pieces.token_pieces):
        assert token_pieces == sorted(token_pieces)
        if token.is_space:
            assert token_pieces == []
            continue
        token_start, token_end = token.idx, token.idx + len(token)
        for p in token_pieces:
            start, end = pieces.spans[p]
            # Every aligned piece touches the token's characters (or is an
            # invisible piece inside it).
            assert start < token_end and end > token_start or start == end
        straddling = any(
            pieces.spans[p][0] < token_start or pieces.spans[p][1] > token_end
            for p in token_pieces
        )
        if straddling or "<unk>" in [pieces.strings[p] for p in token_pieces]:
            continue
        spelled = "".join(_piece_text(pieces.strings[p]) for p in token_pieces)
        assert spelled == _normalize(token.text), (
            token.text, [pieces.strings[p] for p in token_pieces]
        )


def test_no_token_gets_the_next_words_leading_piece(tokenizer):
    doc = Doc(spacy.blank("xx").vocab, words=["Hello", "world", "again"])
    (pieces,) = tokenize_docs(tokenizer, [doc])
    for token, token_pieces in zip(doc, pieces.token_pieces):
        strings = [pieces.strings[p] for p in token_pieces]
        assert "".join(strings).replace("▁", "") == token.text
        # Only the token's own first piece may carry ▁.
        assert all("▁" not in s for s in strings[1:])


def test_straddling_piece_goes_to_every_token_it_overlaps(tokenizer):
    # spaCy splits "don't" into "do" + "n't"; a piece covering "on" of "don"
    # and beyond may straddle them. Build the case directly from offsets.
    from spacy_xlmr.encoder.alignment import align_doc

    doc = Doc(spacy.blank("xx").vocab, words=["do", "n't"], spaces=[False, False])
    spans, token_pieces = align_doc(doc, [(0, 3), (3, 5)])
    assert token_pieces == [[0], [0, 1]]
    assert spans == [(0, 3), (3, 5)]


def test_invisible_piece_aligns_to_the_token_containing_it():
    from spacy_xlmr.encoder.alignment import align_doc

    doc = Doc(spacy.blank("xx").vocab, words=["a\u200db", "c"], spaces=[True, False])
    # pieces: "a", ZWJ, "b", a lone "▁" over the space, "c"
    spans, token_pieces = align_doc(doc, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)])
    # The lone "▁" before "c" is c's first piece, as HF word_ids() have it.
    assert token_pieces == [[0, 1, 2], [3, 4]]


def test_lone_metaspace_is_the_words_first_piece_like_hf_word_ids(tokenizer):
    words = ["Maria", "123", "Lisboa", "北京", "东京", "😀"]
    doc = Doc(spacy.blank("xx").vocab, words=words)
    (pieces,) = tokenize_docs(tokenizer, [doc])
    encoding = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
    hf_pieces = [[] for _ in words]
    for piece, word in enumerate(encoding.word_ids()):
        hf_pieces[word].append(piece)
    assert pieces.token_pieces == hf_pieces


def test_trim_span():
    assert trim_span(" world", 0, 6) == (1, 6)
    assert trim_span("\u200bb", 0, 2) == (1, 2)
    assert trim_span("  ", 0, 2) == (0, 0)


def test_control_character_token_gets_no_pieces(tokenizer):
    doc = Doc(spacy.blank("xx").vocab, words=["abc", "\x07", "def"])
    (pieces,) = tokenize_docs(tokenizer, [doc])
    assert pieces.token_pieces[1] == []
    assert pieces.token_pieces[0] and pieces.token_pieces[2]
