"""Read SQuAD-format extractive QA data (SQuAD 1.1 and 2.0, XQuAD, SQuAD-es)
into spaCy ``Doc`` objects, one per paragraph, with the paragraph's questions
in ``doc._.qa_questions`` (see ``spacy_xlmr.qa.data``).

The input is ``{"version", "data": [{"title", "paragraphs": [{"context",
"qas": [{"id", "question", "answers": [{"text", "answer_start"}],
"is_impossible"}]}]}]}``; ``is_impossible`` is SQuAD 2.0 only, and its
``plausible_answers`` are not kept. ``answer_start`` is a character offset
into ``context``.
"""
import itertools
import json
from pathlib import Path
from typing import Any, Iterator, List, Optional, Set, Union

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from ..errors import Errors
from ..qa.data import EXTENSION, Answer, Question
from .output import write_docbin
from .stats import ConversionStats
from .text_files import open_text

# How far (in characters, either way) from ``answer_start`` a misplaced
# answer is looked for.
REPAIR_WINDOW = 20

EMPTY_ANSWER = "empty answer text"
REPAIRED = "answer_start off by a few characters, repaired"
NOT_FOUND = f"answer text not within {REPAIR_WINDOW} characters of answer_start"
AMBIGUOUS = (
    f"answer text found more than once within {REPAIR_WINDOW} characters of "
    "answer_start"
)
STRIPPED = "whitespace around answer text stripped"
INSIDE_TOKEN = "answer boundary inside a spaCy token"
IMPOSSIBLE_WITH_ANSWERS = "answers of an unanswerable question dropped"
NO_VALID_ANSWER = "answerable question without a valid answer"
DUPLICATE_ID = "duplicate question id"
EMPTY_QUESTION = "empty question"
EMPTY_CONTEXT = "paragraph with an empty context"
NO_QUESTIONS = "paragraph without questions"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _get(obj: Any, key: str, kind: type, where: str) -> Any:
    """``obj[key]``, raising ValueError naming ``where`` unless ``obj`` is a
    dict and the value is a ``kind``."""
    if not isinstance(obj, dict):
        raise ValueError(
            Errors.JSON_NOT_AN_OBJECT.format(where=where, type_name=type(obj).__name__)
        )
    value = obj.get(key)
    if not isinstance(value, kind):
        raise ValueError(
            Errors.SQUAD_WRONG_TYPE.format(where=where, key=key, kind=kind.__name__, value=value)
        )
    return value


def _locate(context: str, text: str, start: int, stats: ConversionStats) -> Optional[int]:
    """The start of ``text`` in ``context``: ``start`` if it is there, else
    the one occurrence of ``text`` within ``REPAIR_WINDOW`` characters of
    ``start``; None (counted in ``stats.skipped``) if there is none or more."""
    if start >= 0 and context.startswith(text, start):
        return start
    found: List[int] = []
    pos = context.find(text, max(0, start - REPAIR_WINDOW))
    while 0 <= pos <= start + REPAIR_WINDOW:
        found.append(pos)
        pos = context.find(text, pos + 1)
    if len(found) != 1:
        stats.skipped[AMBIGUOUS if found else NOT_FOUND] += 1
        return None
    stats.warnings[REPAIRED] += 1
    return found[0]


def _read_answer(
    answer: Any, doc: Doc, where: str, stats: ConversionStats
) -> Optional[Answer]:
    """Check one answer against the context, repairing a slightly misplaced
    ``answer_start`` and stripping surrounding whitespace; None if dropped."""
    text = _get(answer, "text", str, where)
    start = answer.get("answer_start")
    if not _is_int(start):
        raise ValueError(Errors.QA_ANSWER_START_NOT_AN_INT.format(where=where, start=start))
    if not text.strip():
        stats.skipped[EMPTY_ANSWER] += 1
        return None
    located = _locate(doc.text, text, start, stats)
    if located is None:
        return None
    stripped = text.strip()
    if stripped != text:
        stats.warnings[STRIPPED] += 1
    start = located + len(text) - len(text.lstrip())
    if doc.char_span(start, start + len(stripped)) is None:
        stats.warnings[INSIDE_TOKEN] += 1
    return {"text": stripped, "answer_start": start}


def _read_question(
    qa: Any, doc: Doc, where: str, seen_ids: Set[str], stats: ConversionStats
) -> Optional[Question]:
    """Check one question and its answers; None if dropped."""
    qid = _get(qa, "id", str, where)
    where = f"{where} (id {qid!r})"
    question = _get(qa, "question", str, where)
    raw_answers = _get(qa, "answers", list, where)
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise ValueError(
            Errors.QA_IMPOSSIBLE_NOT_A_BOOL.format(where=where, impossible=impossible)
        )
    if qid in seen_ids:
        stats.skipped[DUPLICATE_ID] += 1
        return None
    seen_ids.add(qid)
    if not question.strip():
        stats.skipped[EMPTY_QUESTION] += 1
        return None
    answers: List[Answer] = []
    if impossible:
        if raw_answers:
            stats.warnings[IMPOSSIBLE_WITH_ANSWERS] += len(raw_answers)
    else:
        for i, raw in enumerate(raw_answers):
            answer = _read_answer(raw, doc, f"{where}, answers[{i}]", stats)
            if answer is not None:
                answers.append(answer)
        if not answers:
            stats.skipped[NO_VALID_ANSWER] += 1
            return None
    return {"id": qid, "question": question, "answers": answers, "is_impossible": impossible}


def _paragraph_docs(path: Path, nlp: Language, stats: ConversionStats) -> Iterator[Doc]:
    with open_text(path) as file_:
        try:
            squad = json.load(file_)
        except json.JSONDecodeError as err:
            raise ValueError(Errors.INVALID_JSON.format(path=path, error=err)) from err
    seen_ids: Set[str] = set()
    for i, article in enumerate(_get(squad, "data", list, str(path))):
        where = f"{path}: data[{i}]"
        title = article.get("title") if isinstance(article, dict) else None
        if isinstance(title, str):
            where = f"{where} ({title!r})"
        paragraphs = _get(article, "paragraphs", list, where)
        for j, paragraph in enumerate(paragraphs):
            para_where = f"{where}, paragraphs[{j}]"
            context = _get(paragraph, "context", str, para_where)
            qas = _get(paragraph, "qas", list, para_where)
            if not context.strip():
                stats.skipped[EMPTY_CONTEXT] += 1
                continue
            doc = nlp.make_doc(context)
            questions = [
                question
                for question in (
                    _read_question(qa, doc, f"{para_where}, qas[{k}]", seen_ids, stats)
                    for k, qa in enumerate(qas)
                )
                if question is not None
            ]
            if not questions:
                stats.skipped[NO_QUESTIONS] += 1
                continue
            doc._.set(EXTENSION, questions)
            stats.docs += 1
            stats.tokens += len(doc)
            stats.questions += len(questions)
            stats.impossible += sum(q["is_impossible"] for q in questions)
            yield doc


def read_squad(
    path: Union[str, Path],
    nlp_or_lang: Union[Language, str],
    *,
    limit: Optional[int] = None,
    stats: Optional[ConversionStats] = None,
) -> Iterator[Doc]:
    """Yield one Doc per paragraph of a SQuAD 1.1 / 2.0 JSON file, with its
    questions in ``doc._.qa_questions``.

    The context is the doc text, tokenized by ``nlp.make_doc`` (or
    ``spacy.blank(lang)`` for a language code). Every answer is checked
    against the context: a misplaced ``answer_start`` is repaired if the text
    occurs exactly once within ``REPAIR_WINDOW`` characters of it (counted in
    ``stats.warnings``), otherwise the answer is dropped (counted in
    ``stats.skipped``), as are empty answers (SQuAD-es has some, at -1).
    Whitespace around an answer is stripped. An answerable question left
    without answers, a repeated question id and a paragraph left without
    questions are dropped and counted. Answers whose start or end falls
    inside a spaCy token are kept and counted in ``stats.warnings``.

    ``limit`` caps the number of docs. Counts (docs, tokens, questions,
    unanswerable questions) are added to ``stats`` if given. Malformed JSON
    raises ValueError naming the file and the item.
    """
    if limit is not None and limit < 0:
        raise ValueError(Errors.LIMIT_NEGATIVE.format(limit=limit))
    nlp = spacy.blank(nlp_or_lang) if isinstance(nlp_or_lang, str) else nlp_or_lang
    stats = ConversionStats() if stats is None else stats
    return itertools.islice(_paragraph_docs(Path(path), nlp, stats), limit)


def convert_squad(
    input_path: Union[str, Path],
    output_path: Union[str, Path],
    *,
    lang: str = "xx",
    limit: Optional[int] = None,
) -> ConversionStats:
    """Convert a SQuAD JSON file to a ``.spacy`` DocBin file that keeps
    ``doc._.qa_questions``, tokenizing with ``spacy.blank(lang)``; see
    ``read_squad``."""
    stats = ConversionStats()
    docs = read_squad(input_path, lang, limit=limit, stats=stats)
    write_docbin(docs, output_path, store_user_data=True)
    return stats
