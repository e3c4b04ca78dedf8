"""Read Universal NER ``.iob2`` files into spaCy ``Doc`` objects.

The format is CoNLL-like: one token per line with 5 tab-separated columns
(``id``, ``token``, IOB2 tag, ``-``, annotator), sentences separated by blank
lines, and comment lines (``# sent_id = …``, ``# text = …``,
``# newdoc id = …``) before each sentence.
"""
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Union

import spacy
from spacy.tokens import Doc
from spacy.training.iob_utils import biluo_tags_to_spans, iob_to_biluo
from spacy.vocab import Vocab

from ..errors import Errors
from .output import write_docbin
from .stats import ConversionStats
from .text_files import open_text

TEXT_PREFIX = "# text = "
N_COLUMNS = 5
_VALID_TAG = re.compile(r"O|[BI]-\S+")


@dataclass
class _Sentence:
    text: Optional[str]
    words: List[str]
    tags: List[str]


def _read_sentences(path: Path) -> Iterator[_Sentence]:
    """Parse ``path`` into sentences (blocks of lines between blank lines),
    checking every token line."""
    in_block = False
    text: Optional[str] = None
    words: List[str] = []
    tags: List[str] = []
    with open_text(path) as file_:
        for line_no, line in enumerate(file_, 1):
            line = line.rstrip("\r\n")
            where = f"{path}:{line_no}"
            if not line.strip():
                if in_block:
                    yield _Sentence(text, words, tags)
                in_block, text, words, tags = False, None, [], []
                continue
            in_block = True
            if line.startswith("#"):
                if words:
                    raise ValueError(Errors.IOB2_COMMENT_IN_SENTENCE.format(where=where, line=line))
                if line.startswith(TEXT_PREFIX):
                    text = line[len(TEXT_PREFIX):]
                continue
            columns = line.split("\t")
            if len(columns) != N_COLUMNS:
                raise ValueError(
                    Errors.IOB2_COLUMN_COUNT.format(
                        where=where, n_columns=N_COLUMNS, n_found=len(columns), line=line
                    )
                )
            token_id, word, tag = columns[:3]
            if token_id != str(len(words) + 1):
                raise ValueError(
                    Errors.IOB2_BAD_TOKEN_ID.format(
                        where=where, expected=len(words) + 1, token_id=token_id
                    )
                )
            if not word:
                raise ValueError(Errors.IOB2_EMPTY_TOKEN.format(where=where))
            if not _VALID_TAG.fullmatch(tag):
                raise ValueError(Errors.IOB2_BAD_TAG.format(where=where, tag=tag))
            words.append(word)
            tags.append(tag)
    if in_block:
        yield _Sentence(text, words, tags)


def _align_spaces(words: List[str], text: str) -> Optional[List[bool]]:
    """Return the trailing-space flag of each word so that the words rebuild
    ``text`` exactly, or None if the words are not, in order, ``text`` with
    nothing or a single space between them."""
    spaces: List[bool] = []
    pos = 0
    for i, word in enumerate(words):
        if text.startswith(word, pos):
            space = False
        elif i > 0 and text.startswith(" " + word, pos):
            space = True
        else:
            return None
        if i > 0:
            spaces.append(space)
        pos += len(word) + (1 if space else 0)
    if pos == len(text):
        spaces.append(False)
    elif text[pos:] == " ":
        spaces.append(True)
    else:
        return None
    return spaces


def _sentence_spaces(sentence: _Sentence, stats: ConversionStats) -> List[bool]:
    """Trailing-space flags for a sentence, falling back to single spaces
    (counted in ``stats.warnings``) when the text can't be rebuilt."""
    if sentence.text is None:
        stats.warnings["no '# text' line: tokens joined with single spaces"] += 1
    else:
        spaces = _align_spaces(sentence.words, sentence.text)
        if spaces is not None:
            return spaces
        stats.warnings[
            "tokens do not match '# text': tokens joined with single spaces"
        ] += 1
    return [True] * (len(sentence.words) - 1) + [False]


def _make_doc(vocab: Vocab, sentences: List[_Sentence], stats: ConversionStats) -> Doc:
    """Build one Doc from consecutive sentences, joined by a single space."""
    words: List[str] = []
    spaces: List[bool] = []
    sent_starts: List[Optional[Union[bool, int]]] = []  # as Doc() takes them
    biluo: List[str] = []
    for sentence in sentences:
        sentence_spaces = _sentence_spaces(sentence, stats)
        if spaces:
            spaces[-1] = True
        words.extend(sentence.words)
        spaces.extend(sentence_spaces)
        sent_starts.extend([True] + [False] * (len(sentence.words) - 1))
        sentence_biluo = iob_to_biluo(sentence.tags)
        repaired = sum(
            iob.startswith("I-") and new[0] in "BU"
            for iob, new in zip(sentence.tags, sentence_biluo)
        )
        if repaired:
            stats.warnings["I- tag not continuing an entity, read as B-"] += repaired
        biluo.extend(sentence_biluo)
    doc = Doc(vocab, words=words, spaces=spaces, sent_starts=sent_starts)
    doc.ents = biluo_tags_to_spans(doc, biluo)
    stats.docs += 1
    stats.sentences += len(sentences)
    stats.tokens += len(doc)
    stats.entities.update(ent.label_ for ent in doc.ents)
    return doc


def _nonempty(
    sentences: Iterable[_Sentence], stats: ConversionStats
) -> Iterator[_Sentence]:
    """Drop sentences without token lines, counting them."""
    for sentence in sentences:
        if sentence.words:
            yield sentence
        else:
            stats.skipped["sentence without token lines"] += 1


def read_iob2(
    path: Union[str, Path],
    vocab: Vocab,
    *,
    n_sents: int = 1,
    limit: Optional[int] = None,
    stats: Optional[ConversionStats] = None,
) -> Iterator[Doc]:
    """Yield Docs of ``n_sents`` sentences each from a UNER ``.iob2`` file.

    Each sentence's text is its ``# text =`` line; sentences in one Doc are
    joined by a single space. ``limit`` caps the number of sentences read.
    Counts are added to ``stats`` if given. Raises ValueError on malformed
    lines.
    """
    if n_sents < 1:
        raise ValueError(Errors.IOB2_N_SENTS.format(n_sents=n_sents))
    stats = ConversionStats() if stats is None else stats
    sentences = _nonempty(_read_sentences(Path(path)), stats)
    sentences = itertools.islice(sentences, limit)
    while True:
        group = list(itertools.islice(sentences, n_sents))
        if not group:
            return
        yield _make_doc(vocab, group, stats)


def convert_iob2(
    input_path: Union[str, Path],
    output_path: Union[str, Path],
    *,
    lang: str = "xx",
    n_sents: int = 1,
    limit: Optional[int] = None,
) -> ConversionStats:
    """Convert a UNER ``.iob2`` file to a ``.spacy`` DocBin file."""
    stats = ConversionStats()
    vocab = spacy.blank(lang).vocab
    docs = read_iob2(input_path, vocab, n_sents=n_sents, limit=limit, stats=stats)
    write_docbin(docs, output_path)
    return stats
