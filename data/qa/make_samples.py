"""Cut the QA samples in this directory from the full files.

    python data/qa/make_samples.py ../shared/data/qa data/qa

SOURCE holds ``xquad/xquad.<lang>.json``, ``squad-v2/en/dev-v2.0.json`` and
``squad-es-v2/es/dev-v2.0-es_small.json`` (see README.md for where they come
from). Articles, paragraphs and questions are copied unchanged, in their
original order; the files are written as UTF-8 JSON with 2-space indents.
"""
import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Set, Tuple

XQUAD_LANGS = ("en", "es", "zh", "ar", "th", "hi")
# (article, paragraph) indices: Super_Bowl_50, European_Union_law (the
# longest XQuAD paragraph, 509 words in English), Amazon_rainforest.
XQUAD_PARAGRAPHS = ((0, 0), (15, 1), (16, 0))
# The fewest leading paragraphs of the first article with this many questions.
SAMPLE_QUESTIONS = 36
DEMO_TRAIN_TITLES = ("Farmacia", "Construcción", "Escuela privada")
DEMO_DEV_TITLES = ("Fresno, California",)

Squad = Dict[str, Any]


def load(path: Path) -> Squad:
    return json.loads(path.read_text(encoding="utf8"))


def save(squad: Squad, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(squad, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf8")


def subset(squad: Squad, articles: Iterable[Tuple[int, List[Any]]]) -> Squad:
    """``squad`` with only the given (article index, paragraphs) articles,
    keeping the order of the keys."""
    data = [{**squad["data"][i], "paragraphs": paragraphs} for i, paragraphs in articles]
    return {key: data if key == "data" else value for key, value in squad.items()}


def question_ids(squad: Squad) -> Set[str]:
    return {
        qa["id"]
        for article in squad["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }


def leading_paragraphs(squad: Squad, n_questions: int) -> Squad:
    paragraphs = []
    for paragraph in squad["data"][0]["paragraphs"]:
        if sum(len(p["qas"]) for p in paragraphs) >= n_questions:
            break
        paragraphs.append(paragraph)
    return subset(squad, [(0, paragraphs)])


def articles_without(squad: Squad, titles: Iterable[str], exclude: Set[str]) -> Squad:
    """The articles with these titles, without the paragraphs that have a
    question whose id is in ``exclude``."""
    index = {article["title"]: i for i, article in enumerate(squad["data"])}
    return subset(squad, [
        (index[title], [
            paragraph
            for paragraph in squad["data"][index[title]]["paragraphs"]
            if not any(qa["id"] in exclude for qa in paragraph["qas"])
        ])
        for title in titles
    ])


def main(source: Path, output: Path) -> None:
    by_article: Dict[int, List[int]] = {}
    for article, paragraph in XQUAD_PARAGRAPHS:
        by_article.setdefault(article, []).append(paragraph)
    for lang in XQUAD_LANGS:
        xquad = load(source / "xquad" / f"xquad.{lang}.json")
        articles = [
            (i, [xquad["data"][i]["paragraphs"][j] for j in paragraphs])
            for i, paragraphs in by_article.items()
        ]
        save(subset(xquad, articles), output / "xquad" / f"xquad.{lang}.json")
    squad_en = load(source / "squad-v2" / "en" / "dev-v2.0.json")
    save(leading_paragraphs(squad_en, SAMPLE_QUESTIONS), output / "squad-v2-en" / "sample.json")
    squad_es = load(source / "squad-es-v2" / "es" / "dev-v2.0-es_small.json")
    save(leading_paragraphs(squad_es, SAMPLE_QUESTIONS), output / "squad-es-v2" / "sample.json")
    in_xquad = question_ids(load(source / "xquad" / "xquad.en.json"))
    for name, titles in (("train", DEMO_TRAIN_TITLES), ("dev", DEMO_DEV_TITLES)):
        demo = articles_without(squad_es, titles, in_xquad)
        save(demo, output / "squad-es-v2" / f"{name}.json")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
