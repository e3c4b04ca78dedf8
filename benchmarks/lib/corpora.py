"""The benchmark corpora, read and converted with ``spacy_xlmr.convert``.

* NTREX-128 lines (``data/text``): plain text, one sentence a line.
* Universal NER (``.iob2``): ``convert_iob2`` to ``.spacy``, ``read_iob2``
  for character spans.
* SIB-200 (TSV): ``convert_textcat`` (format ``sib200``), ``read_labels``.
* SQuAD-style QA samples: ``read_squad``.
"""
import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from .env import TEXT_DIR


def ntrex_files() -> List[Path]:
    """The NTREX-128 files of ``data/text``, sorted by name."""
    return sorted(TEXT_DIR.glob("ntrex128-*.txt"))


def ntrex_lines(path: Path) -> List[str]:
    """The non-empty lines of a text file, stripped."""
    return [line.strip() for line in path.read_text(encoding="utf8").splitlines() if line.strip()]


def convert_uner(
    src: Path, out_dir: Path, splits: Dict[str, Tuple[str, Optional[int]]], details: bool = True
) -> Dict:
    """Convert ``src/<file>`` to ``out_dir/<split>.spacy`` for each split of
    ``splits`` (split -> (file name, sentence limit)) with ``convert_iob2``
    (``lang="xx"``, one sentence per doc). Returns the counts per split
    (with ``details``, also the converter's warnings and skipped items)."""
    from spacy_xlmr.convert import convert_iob2

    out_dir.mkdir(parents=True, exist_ok=True)
    stats = {}
    for split, (filename, limit) in splits.items():
        result = convert_iob2(
            src / filename, out_dir / f"{split}.spacy", lang="xx", n_sents=1, limit=limit
        )
        stats[split] = {
            "file": str(src / filename),
            "docs": result.docs,
            "tokens": result.tokens,
            "entities": sum(result.entities.values()),
        }
        if details:
            stats[split].update(warnings=dict(result.warnings), skipped=dict(result.skipped))
    return stats


def iob2_char_spans(path: Path) -> List[Tuple[str, List[Tuple[int, int, str]]]]:
    """(text, [(start_char, end_char, IOB2 tag)]) per sentence of a UNER
    ``.iob2`` file, read with ``spacy_xlmr.convert.read_iob2`` (the text is
    the sentence's ``# text`` line). The reader repairs an ``I-`` tag that
    doesn't continue an entity into ``B-`` and joins tokens that don't match
    the text with spaces; both are counted and reported here."""
    from spacy.vocab import Vocab

    from spacy_xlmr.convert import ConversionStats, read_iob2

    stats = ConversionStats()
    sentences = []
    for doc in read_iob2(path, Vocab(), stats=stats):
        spans = [
            (t.idx, t.idx + len(t.text),
             "O" if t.ent_iob_ == "O" else f"{t.ent_iob_}-{t.ent_type_}")
            for t in doc
        ]
        sentences.append((doc.text, spans))
    if stats.warnings or stats.skipped:
        print(f"{path}: {dict(stats.warnings)} {dict(stats.skipped)}", flush=True)
    return sentences


def convert_sib200(
    data_dir: Path, out_dir: Path, languages: Iterable[str], labels: List[str]
) -> Dict:
    """Convert every language's SIB-200 train/dev/test TSV to .spacy
    (``lang="xx"``) and write the union of the train and of the dev sets
    under ``all/``. Returns doc counts and label counts."""
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    from spacy_xlmr.convert import convert_textcat

    languages = list(languages)
    stats: Dict = {}
    for lang in languages:
        src = data_dir / "textcat" / "sib200" / lang
        stats[lang] = {}
        for split in ("train", "dev", "test"):
            result = convert_textcat(
                src / f"{split}.tsv", out_dir / lang / f"{split}.spacy", lang="xx",
                format="sib200", labels=labels,
            )
            stats[lang][split] = {
                "file": str(src / f"{split}.tsv"),
                "docs": result.docs,
                "tokens": result.tokens,
                "labels": dict(result.labels),
                "warnings": dict(result.warnings),
                "skipped": dict(result.skipped),
            }
    vocab = Vocab()
    (out_dir / "all").mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        union = DocBin(store_user_data=False)
        for lang in languages:
            for doc in DocBin().from_disk(out_dir / lang / f"{split}.spacy").get_docs(vocab):
                union.add(doc)
        union.to_disk(out_dir / "all" / f"{split}.spacy")
        stats.setdefault("all", {})[split] = {"docs": len(union)}
    return stats


def sib200_labels(data_dir: Path) -> List[str]:
    """The SIB-200 topics, from the English ``labels.txt``."""
    from spacy_xlmr.convert import read_labels

    return read_labels(data_dir / "textcat" / "sib200" / "en" / "labels.txt")


def squad_paragraphs(path: Path, prefix: str) -> List[Dict]:
    """The paragraphs of a SQuAD-style file, read with ``read_squad``:
    [{"context", "questions": [{"id", "question"}]}], question ids
    prefixed with ``prefix/`` (XQuAD's are the same in every language)."""
    import spacy

    from spacy_xlmr.convert import read_squad

    return [
        {"context": doc.text,
         "questions": [{"id": f"{prefix}/{q['id']}", "question": q["question"]}
                       for q in doc._.qa_questions]}
        for doc in read_squad(path, spacy.blank("xx"))
    ]


def split_squad_by_article(source: Path, out_dir: Path, every: int) -> Dict:
    """Write ``out_dir/{train,test}.json``: every ``every``-th article of
    ``source`` (sorted by title) is held out for testing."""
    squad = json.loads(source.read_text(encoding="utf8"))
    articles = sorted(squad["data"], key=lambda article: article["title"])
    test = [a for i, a in enumerate(articles) if i % every == every - 1]
    train = [a for i, a in enumerate(articles) if i % every != every - 1]
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("test", test)):
        (out_dir / f"{name}.json").write_text(
            json.dumps({"version": squad.get("version", "v2.0"), "data": part}, ensure_ascii=False),
            encoding="utf8",
        )
    return {"train_articles": len(train), "test_articles": len(test)}
