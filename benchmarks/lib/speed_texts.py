"""speed.py's text sets: short and long NTREX-128 docs, their fill-mask
versions, and question/context pairs from the QA samples in data/qa (read
with ``spacy_xlmr.convert.read_squad``), with the words and pieces each needs."""
import json
import random
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .corpora import ntrex_lines, squad_paragraphs
from .env import REPO, TEXT_DIR

# language code -> NTREX-128 file name part
LANGUAGES = {
    "en": "eng", "es": "spa", "pt": "por", "ru": "rus",
    "ar": "arb", "hi": "hin", "zh": "zho-CN", "ja": "jpn",
}
LONG_LANGUAGES = ["en", "zh", "ru", "hi", "es", "ar"]
NO_SPACES = {"zh", "ja"}
SHORT_WORDS = (40, 120)
LONG_WORDS = 1000
# Question answering: HF's pipeline defaults, passed explicitly to both sides.
QA_OPTIONS = {
    "top_k": 1, "doc_stride": 128, "max_seq_len": 384, "max_question_len": 64,
    "max_answer_len": 15, "handle_impossible_answer": False,
}
QA_DIR = REPO / "data" / "qa"
# source -> (file under data/qa, language).
# Not XQuAD th: the checkpoint's tokenizer (trained on data/text, 2 Thai lines)
# cuts Thai into about one piece per character (2773 pieces for the 2781
# non-space characters of the European_Union_law paragraph), far more than
# xlm-roberta-base's tokenizer, so Thai contexts would weigh more than they should.
QA_SOURCES = {
    "xquad-en": ("xquad/xquad.en.json", "en"),
    "xquad-es": ("xquad/xquad.es.json", "es"),
    "xquad-zh": ("xquad/xquad.zh.json", "zh"),
    "xquad-ar": ("xquad/xquad.ar.json", "ar"),
    "xquad-hi": ("xquad/xquad.hi.json", "hi"),
    "squad2-en": ("squad-v2-en/sample.json", "en"),
    "squad-es": ("squad-es-v2/dev.json", "es"),
}


def count_words(text: str, lang: str) -> int:
    """Whitespace-separated words; in zh/ja, non-space characters."""
    if lang in NO_SPACES:
        return sum(1 for char in text if not char.isspace())
    return len(text.split())


def _join(lines: List[str], lang: str) -> str:
    return ("" if lang in NO_SPACES else " ").join(lines)


def read_lines(lang: str) -> List[str]:
    return ntrex_lines(TEXT_DIR / f"ntrex128-{LANGUAGES[lang]}.txt")


def make_docs(n_short: int, n_long: int, seed: int) -> Dict[str, List[Dict]]:
    """Short docs (consecutive lines joined, 40-120 words, round robin over the
    languages) and long docs (~1000 words, one per language of
    ``LONG_LANGUAGES``), from the NTREX-128 files in data/text."""
    rng = random.Random(seed)
    lines = {lang: read_lines(lang) for lang in LANGUAGES}
    cursor = {lang: 0 for lang in LANGUAGES}

    def next_line(lang: str) -> str:
        line = lines[lang][cursor[lang] % len(lines[lang])]
        cursor[lang] += 1
        return line

    short = []
    langs = list(LANGUAGES)
    lo, hi = SHORT_WORDS
    for i in range(n_short):
        lang = langs[i % len(langs)]
        target = rng.randint(lo, hi)
        doc_lines: List[str] = []
        words = 0
        while words < target:
            line = next_line(lang)
            n = count_words(line, lang)
            if words >= lo and words + n > hi:
                cursor[lang] -= 1  # keep it for the next doc
                break
            doc_lines.append(line)
            words += n
        text = _join(doc_lines, lang)
        short.append({"lang": lang, "text": text, "words": count_words(text, lang)})
    long = []
    for i in range(n_long):
        lang = LONG_LANGUAGES[i % len(LONG_LANGUAGES)]
        doc_lines = []
        words = 0
        while words < LONG_WORDS:
            line = next_line(lang)
            doc_lines.append(line)
            words += count_words(line, lang)
        text = _join(doc_lines, lang)
        long.append({"lang": lang, "text": text, "words": count_words(text, lang)})
    return {"short": short, "long": long}


def mask_doc(doc: Dict, rng: random.Random) -> Dict:
    """Replace 1-2 random words (zh/ja: characters) that contain a letter
    with ``<mask>``. The doc keeps the word count of the original text."""
    text, lang = doc["text"], doc["lang"]
    if lang in NO_SPACES:
        spans = [(m.start(), m.end()) for m in re.finditer(r"\w", text)]
    else:
        spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)
                 if any(c.isalpha() for c in m.group())]
    chosen = sorted(rng.sample(spans, min(rng.choice([1, 2]), len(spans))))
    for start, end in reversed(chosen):
        text = text[:start] + "<mask>" + text[end:]
    return {**doc, "text": text, "masks": len(chosen)}


def read_qa_source(source: str) -> List[Dict]:
    """The paragraphs of a QA sample: [{"context", "questions": [{"id",
    "question"}]}], question ids prefixed with the source (XQuAD's are the
    same in every language)."""
    path, _ = QA_SOURCES[source]
    return squad_paragraphs(QA_DIR / path, source)


def join_paragraphs(paragraphs: List[Dict], lang: str, min_words: Optional[int]) -> List[Dict]:
    """Consecutive paragraphs joined with a newline into contexts of at least
    ``min_words`` words (None: all into one); a last context of less than half
    of that is dropped."""
    contexts, current = [], []

    def flush():
        contexts.append({
            "context": "\n".join(par["context"] for par in current),
            "questions": [q for par in current for q in par["questions"]],
        })

    for par in paragraphs:
        current.append(par)
        if min_words and sum(count_words(p["context"], lang) for p in current) >= min_words:
            flush()
            current = []
    if current and (not min_words or
                    sum(count_words(p["context"], lang) for p in current) >= min_words / 2):
        flush()
    return contexts


def make_qa_items(n_questions: int, long: bool) -> List[Dict]:
    """``n_questions`` questions, round robin over the sources and within a
    source over its contexts (paragraphs; long: joined paragraphs), grouped
    by context: [{"lang", "source", "context", "questions"}]."""
    queues = []
    for source, (path, lang) in QA_SOURCES.items():
        contexts = read_qa_source(source)
        if long:
            min_words = LONG_WORDS if source == "squad-es" else None
            contexts = join_paragraphs(contexts, lang, min_words)
        # Interleave the contexts: 1st question of each, then the 2nd of each, ...
        queue = []
        for rank in range(max(len(c["questions"]) for c in contexts)):
            for c_index, context in enumerate(contexts):
                if rank < len(context["questions"]):
                    queue.append((c_index, context["questions"][rank]))
        queues.append((source, lang, contexts, queue))
    picked: Dict[Tuple[str, int], Dict] = {}
    n = 0
    for rank in range(max(len(q[3]) for q in queues)):
        for source, lang, contexts, queue in queues:
            if n >= n_questions:
                break
            if rank < len(queue):
                c_index, question = queue[rank]
                item = picked.setdefault((source, c_index), {
                    "lang": lang, "source": source,
                    "context": contexts[c_index]["context"], "questions": [],
                })
                item["questions"].append(question)
                n += 1
    return list(picked.values())


def add_qa_counts(items: List[Dict], tokenizer) -> None:
    """Per QA item: ``words`` and ``pieces`` of its pairs (question plus
    context, for each question), ``specials`` (4 per pair), the pair windows
    HF's pipeline makes (``windows``, one count per question)."""
    for item in items:
        lang = item["lang"]
        questions = [q["question"] for q in item["questions"]]
        item["context_words"] = count_words(item["context"], lang)
        item["words"] = sum(item["context_words"] + count_words(q, lang) for q in questions)
        context_pieces = len(tokenizer(item["context"], add_special_tokens=False)["input_ids"])
        question_pieces = [
            len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]
        ]
        item["context_pieces"] = context_pieces
        item["pieces"] = sum(context_pieces + min(q, QA_OPTIONS["max_question_len"])
                             for q in question_pieces)
        item["specials"] = 4 * len(questions)
        item["windows"] = [len(w) for w in qa_windows(tokenizer, questions, item["context"])]


def qa_windows(tokenizer, questions: List[str], context: str) -> List[List[List[int]]]:
    """The input ids of the pair windows of each question, as HF's
    question-answering pipeline makes them (fast tokenizer)."""
    out = []
    for question in questions:
        enc = tokenizer(
            text=question, text_pair=context, truncation="only_second",
            max_length=QA_OPTIONS["max_seq_len"], stride=QA_OPTIONS["doc_stride"],
            return_overflowing_tokens=True, padding="do_not_pad",
        )
        out.append(enc["input_ids"])
    return out


def add_piece_counts(docs: List[Dict], tokenizer) -> None:
    """``pieces``: the doc's pieces without special tokens (what the text needs)."""
    ids = tokenizer([d["text"] for d in docs], add_special_tokens=False)["input_ids"]
    for doc, doc_ids in zip(docs, ids):
        doc["pieces"] = len(doc_ids)


def prepare_texts(out: Path, dirs: Dict[str, Path], n_short: int, n_long: int, seed: int,
                  qa_questions: Dict[str, int]) -> Dict:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(dirs["encoder"]), use_fast=True)
    docs = make_docs(n_short, n_long, seed)
    rng = random.Random(f"{seed}-masks")
    texts = {}
    for name, plain in docs.items():
        masked = [mask_doc(doc, rng) for doc in plain]
        add_piece_counts(plain, tokenizer)
        add_piece_counts(masked, tokenizer)
        qa = make_qa_items(qa_questions[name], long=name == "long")
        add_qa_counts(qa, tokenizer)
        texts[name] = {"plain": plain, "masked": masked, "qa": qa}
    (out / "texts.json").write_text(
        json.dumps(texts, ensure_ascii=False, indent=1), encoding="utf8"
    )
    return texts


def text_stats(docs: List[Dict]) -> Dict:
    if docs and "questions" in docs[0]:
        return qa_stats(docs)
    words = [d["words"] for d in docs]
    pieces = [d["pieces"] for d in docs]
    return {
        "docs": len(docs),
        "words": sum(words),
        "pieces": sum(pieces),
        "words_min_mean_max": [min(words), sum(words) / len(words), max(words)],
        "pieces_min_mean_max": [min(pieces), sum(pieces) / len(pieces), max(pieces)],
        "pieces_per_word": sum(pieces) / max(sum(words), 1),
        "languages": sorted({d["lang"] for d in docs}),
        "masks": sum(d.get("masks", 0) for d in docs),
    }


def qa_stats(items: List[Dict]) -> Dict:
    words = [d["context_words"] for d in items]
    pieces = [d["context_pieces"] for d in items]
    windows = [w for d in items for w in d["windows"]]
    by_source: Dict[str, int] = {}
    for d in items:
        by_source[d["source"]] = by_source.get(d["source"], 0) + len(d["questions"])
    return {
        "contexts": len(items),
        "questions": len(windows),
        "questions_per_source": by_source,
        "pair_words": sum(d["words"] for d in items),
        "pair_pieces": sum(d["pieces"] for d in items),
        "context_words_min_mean_max": [min(words), sum(words) / len(words), max(words)],
        "context_pieces_min_mean_max": [min(pieces), sum(pieces) / len(pieces), max(pieces)],
        "pair_windows": sum(windows),
        "questions_over_one_window": sum(w > 1 for w in windows),
        "windows_per_question_max": max(windows),
        "languages": sorted({d["lang"] for d in items}),
    }
