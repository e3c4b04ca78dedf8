"""Tokenize docs into XLM-R pieces and align them exactly to spaCy tokens.

This is the only place where pieces meet tokens. The fast tokenizer gives each
piece the character span it came from in ``doc.text`` (through NFKC
normalisation, so ligatures and full-width forms map back to their source
characters). A token is aligned to every piece whose span overlaps the token's
characters:

* A piece's span is first trimmed of whitespace and invisible format
  characters at its edges: ``▁world`` covers " world" in the offsets, but only
  "world" belongs to the token. A leading ``▁`` never aligns a token to the
  previous word (spacy-transformers 1.4 does that for ~70% of tokens).
* A piece that straddles a token boundary (``▁don`` over "do" + "n't") is
  aligned to every token it overlaps.
* A piece that is nothing but whitespace or format characters is aligned to
  the token that contains it (a zero-width joiner inside an emoji) or, for a
  lone ``▁`` over the space before a word, to that word, as Hugging Face's
  ``word_ids()`` do; whitespace tokens never get pieces.
* Characters the tokenizer drops (control characters) belong to no piece, so a
  token made only of them gets no pieces.

Each token's pieces are listed in text order, so the first one is the piece a
Hugging Face token-classification head is trained on for that word.
"""
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Sequence, Tuple, cast

from spacy.tokens import Doc

if TYPE_CHECKING:
    from transformers.tokenization_utils_fast import PreTrainedTokenizerFast

_INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp"}


@dataclass
class DocPieces:
    """The pieces of one doc (no special tokens) and their alignment.

    ids (List[int]): Piece ids, in text order.
    strings (List[str]): Piece strings.
    spans (List[Tuple[int, int]]): Trimmed character span of each piece.
    token_pieces (List[List[int]]): For each spaCy token, the indices of its
        pieces in text order (possibly empty).
    """

    ids: List[int]
    strings: List[str]
    spans: List[Tuple[int, int]]
    token_pieces: List[List[int]]

    def __len__(self) -> int:
        return len(self.ids)


def _is_invisible(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in _INVISIBLE


def trim_span(text: str, start: int, end: int) -> Tuple[int, int]:
    """Shrink ``[start, end)`` past invisible characters at both edges.
    Returns an empty span at ``start`` if nothing visible is left."""
    s, e = start, end
    while s < e and _is_invisible(text[s]):
        s += 1
    while e > s and _is_invisible(text[e - 1]):
        e -= 1
    return (s, e) if s < e else (start, start)


def align_doc(
    doc: Doc, offsets: Sequence[Tuple[int, int]]
) -> Tuple[List[Tuple[int, int]], List[List[int]]]:
    """Align the pieces with character ``offsets`` to the tokens of ``doc``.

    RETURNS: the trimmed piece spans, and for each token its piece indices.
    """
    text = doc.text
    starts = [token.idx for token in doc]
    ends = [token.idx + len(token) for token in doc]
    is_space = [token.is_space for token in doc]
    token_pieces: List[List[int]] = [[] for _ in range(len(doc))]
    spans: List[Tuple[int, int]] = []
    for piece_i, (raw_start, raw_end) in enumerate(offsets):
        start, end = trim_span(text, raw_start, raw_end)
        spans.append((start, end))
        if start == end:
            # An invisible piece: it belongs to the token that contains it (a
            # zero-width joiner inside an emoji) or, if it is whitespace before
            # a token (a lone "▁"), to that token, as in HF's word_ids().
            if raw_start == raw_end:
                continue
            tok_i = bisect_right(starts, raw_start) - 1
            if tok_i >= 0 and ends[tok_i] >= raw_end and not is_space[tok_i]:
                token_pieces[tok_i].append(piece_i)
                continue
            tok_i = bisect_right(starts, raw_end - 1)
            if tok_i < len(starts) and starts[tok_i] == raw_end and not is_space[tok_i]:
                token_pieces[tok_i].append(piece_i)
            continue
        # First token that ends after the piece starts.
        tok_i = bisect_right(ends, start)
        while tok_i < len(starts) and starts[tok_i] < end:
            if not is_space[tok_i]:
                token_pieces[tok_i].append(piece_i)
            tok_i += 1
    return spans, token_pieces


def tokenize_docs(
    tokenizer: "PreTrainedTokenizerFast", docs: Sequence[Doc]
) -> List[DocPieces]:
    """Tokenize the texts of ``docs`` with a fast XLM-R tokenizer (one batched
    call) and align the pieces to the tokens of each doc."""
    if not docs:
        return []
    encodings = tokenizer(
        [doc.text for doc in docs],
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )
    result = []
    for i, doc in enumerate(docs):
        encoding = encodings.encodings[i]
        spans, token_pieces = align_doc(doc, encoding.offsets)
        result.append(
            DocPieces(
                ids=list(encoding.ids),
                # Vocabulary strings ("<unk>" for unknown pieces), as in
                # spacy-transformers; the surface text is in `spans`.
                # (a list of ids gives a list of strings)
                strings=cast(List[str], tokenizer.convert_ids_to_tokens(encoding.ids)),
                spans=spans,
                token_pieces=token_pieces,
            )
        )
    return result
