#!/usr/bin/env python
"""Text classification on SIB-200: spacy_xlmr vs spacy-transformers, same encoder init.

Trains two pipelines per setting with ``spacy train`` and scores each on the
test set of every language (macro-F1 over the 7 topics, accuracy):

  A. ``xlmr_transformer`` + ``xlmr_textcat``                 (configs/textcat_xlmr.cfg)
  B. spacy-transformers ``transformer`` + spaCy ``textcat``  (configs/textcat_spacy_trf.cfg)
     (``spacy.TextCatReduce.v1``, mean over tokens, ``TransformerListener.v1``
     with ``reduce_mean``)

Settings (``--settings``):

  all  train on the union of the train sets of all languages, test on each;
  en   train on English only, test on each language (zero-shot transfer).

Both systems start from the same tiny, randomly initialised XLM-R checkpoint
(built once with ``spacy_xlmr.checkpoints.build_checkpoint``) and use the same
seed, data, batches, optimizer, learning-rate schedule and number of update
steps. The configs differ only in their [components] blocks. The batcher
wrapper and step timer (``spacy-xlmr-bench.timed_batches.v1``,
``spacy-xlmr-bench.cats_step_timer.v1``) are in ``lib/train_hooks.py``, which
is passed to ``spacy train --code``.

Usage (from the repository root):

    python benchmarks/textcat_sib200.py                 # both settings, defaults
    python benchmarks/textcat_sib200.py --settings en --max-steps 100
"""
import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

from lib.corpora import convert_sib200, sib200_labels
from lib.env import CONFIG_DIR, REPO, run_logged
from lib.results import finish, header, pct, save
from lib.systems import System
from lib.training import add_common_arguments, budget, prepare_run, step_stats, train_command

LANGUAGES = ["en", "es", "pt", "sv", "ru", "zh", "ja", "ar", "hi"]
SETTINGS = {
    # key: (label, training languages)
    "all": ("all", LANGUAGES),
    "en": ("en→x", ["en"]),
}
SYSTEMS = {
    "A": System(
        "spacy_xlmr",
        "xlmr_transformer + xlmr_textcat (exclusive, cls pooling)",
        CONFIG_DIR / "textcat_xlmr.cfg",
    ),
    "B": System(
        "spacy-transformers",
        "transformer (TransformerModel.v3) + textcat (TextCatReduce.v1 mean, "
        "TransformerListener.v1 reduce_mean)",
        CONFIG_DIR / "textcat_spacy_trf.cfg",
    ),
}
DEFAULT_MAX_STEPS = 4000
DEFAULT_BATCH_SIZE = 16  # docs (sentences) per update (spacy.batch_by_sequence.v1)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def corpus_paths(setting: str, data: Path) -> Dict[str, Path]:
    src = data / ("all" if setting == "all" else "en")
    return {"train": src / "train.spacy", "dev": src / "dev.spacy"}


def n_docs(path: Path) -> int:
    from spacy.tokens import DocBin

    return len(DocBin().from_disk(path))


def majority_baseline(data: Path, labels: List[str]) -> Dict:
    """Scores of always predicting the most frequent training label, with
    spaCy's scorer, on the (parallel, identically labelled) test sets."""
    from spacy.scorer import Scorer
    from spacy.tokens import DocBin
    from spacy.training import Example
    from spacy.vocab import Vocab

    vocab = Vocab()
    train = list(DocBin().from_disk(data / "en" / "train.spacy").get_docs(vocab))
    top = Counter(max(d.cats, key=d.cats.get) for d in train).most_common(1)[0][0]
    examples = []
    for ref in DocBin().from_disk(data / "en" / "test.spacy").get_docs(vocab):
        pred = ref.copy()
        pred.cats = {label: float(label == top) for label in labels}
        examples.append(Example(pred, ref))
    scores = Scorer.score_cats(examples, "cats", labels=labels, multi_label=False)
    return {
        "label": top,
        "cats_macro_f": scores["cats_macro_f"],
        "accuracy": _accuracy(examples),
    }


# ---------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------


def _accuracy(examples) -> float:
    correct = 0
    for eg in examples:
        gold = max(eg.reference.cats, key=eg.reference.cats.get)
        pred = max(eg.predicted.cats, key=eg.predicted.cats.get) if eg.predicted.cats else None
        correct += gold == pred
    return correct / max(len(examples), 1)


def evaluate(model: Path, data: Path) -> Dict:
    """Load ``model`` once and score it on every language's test set."""
    import spacy
    from spacy.scorer import Scorer
    from spacy.training import Corpus

    nlp = spacy.load(model)
    scorer = Scorer(nlp=nlp)
    scores = {}
    for lang in LANGUAGES:
        examples = list(Corpus(data / lang / "test.spacy", gold_preproc=False)(nlp))
        # As Language.evaluate (which scores copies, so the predictions are
        # lost to us): run the pipeline, then spaCy's Scorer.
        start = time.perf_counter()
        docs = nlp.pipe((eg.predicted for eg in examples), batch_size=nlp.batch_size)
        for eg, doc in zip(examples, docs):
            eg.predicted = doc
        wall = time.perf_counter() - start
        metrics = scorer.score(examples)
        metrics["speed"] = sum(len(eg.predicted) for eg in examples) / wall
        scores[lang] = {
            "docs": len(examples),
            "accuracy": _accuracy(examples),
            "eval_s": wall,
            **{k: metrics.get(k) for k in (
                "cats_score", "cats_macro_f", "cats_micro_f", "cats_macro_p",
                "cats_macro_r", "cats_macro_auc", "cats_f_per_type", "speed",
            )},
        }
    return scores


def _mean(values: List[float]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def run_system(key: str, setting: str, data: Path, out: Path, checkpoint: Path, args) -> Dict:
    system = SYSTEMS[key]
    run_dir = out / setting / key
    run_dir.mkdir(parents=True, exist_ok=True)
    train_log = run_dir / "steps.json"
    paths = corpus_paths(setting, data)
    train_cmd = train_command(
        system.config, run_dir / "training", paths["train"], paths["dev"], checkpoint,
        train_log, args,
    )
    load_before = os.getloadavg()[0]
    train_wall = run_logged(train_cmd, run_dir / "train.log", args.threads)
    load_after = os.getloadavg()[0]
    steps = json.loads(train_log.read_text(encoding="utf8"))
    start = time.perf_counter()
    test = evaluate(run_dir / "training" / "model-last", data)
    eval_wall = time.perf_counter() - start
    stats = step_stats(steps)
    timed = stats["timed_steps"]
    train_docs = n_docs(paths["train"])
    return {
        "system": key,
        "label": system.label,
        "description": system.description,
        "config": str(system.config.relative_to(REPO)),
        "train_command": train_cmd,
        "train_wall_s": train_wall,
        "loadavg_1min_before_after": [load_before, load_after],
        "eval_wall_s": eval_wall,
        "train_docs": train_docs,
        "epochs": len(steps) * args.batch_size / train_docs,
        "test": test,
        "mean": {
            "cats_macro_f": _mean([test[lang]["cats_macro_f"] for lang in LANGUAGES]),
            "accuracy": _mean([test[lang]["accuracy"] for lang in LANGUAGES]),
            "cats_macro_f_non_en": _mean(
                [test[lang]["cats_macro_f"] for lang in LANGUAGES if lang != "en"]
            ),
            "accuracy_non_en": _mean(
                [test[lang]["accuracy"] for lang in LANGUAGES if lang != "en"]
            ),
        },
        "training": {
            **stats,
            "ms_per_update": 1000 * stats["timed_update_s"] / timed if timed else None,
        },
    }


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def markdown_table(results: Dict) -> str:
    head = "| setting | system | " + " | ".join(LANGUAGES) + " | mean | mean excl. en |"
    rule = "|---|---|" + "---:|" * (len(LANGUAGES) + 2)
    base = results.get("majority_baseline")
    out = []
    for metric, title in (("cats_macro_f", "Macro-F1 (`cats_macro_f`, %)"),
                          ("accuracy", "Accuracy (%)")):
        out += [f"**{title}**", "", head, rule]
        for setting, entry in results["settings"].items():
            for key, r in entry["systems"].items():
                cells = [pct(r["test"][lang][metric]) for lang in LANGUAGES]
                out.append(
                    f"| {entry['label']} | {key}. {r['label']} | " + " | ".join(cells)
                    + f" | **{pct(r['mean'][metric])}** | {pct(r['mean'][metric + '_non_en'])} |"
                )
        if base:
            cell = pct(base[metric])
            out.append(
                f"| – | majority class ({base['label']}) | "
                + " | ".join([cell] * len(LANGUAGES)) + f" | {cell} | {cell} |"
            )
        out.append("")
    out += [
        "**Training**",
        "",
        "| setting | system | train docs | updates | ≈ epochs | batch fingerprint "
        "| train wall (s) | ms/update | train words/s | test words/s | eval wall (s) |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for setting, entry in results["settings"].items():
        for key, r in entry["systems"].items():
            t = r["training"]
            test_words = sum(
                r["test"][lang]["speed"] * r["test"][lang]["eval_s"] for lang in LANGUAGES
            )
            test_s = sum(r["test"][lang]["eval_s"] for lang in LANGUAGES)
            out.append(
                f"| {entry['label']} | {key}. {r['label']} | {r['train_docs']} | {t['steps']} | "
                f"{r['epochs']:.1f} | `{t['batch_words_fingerprint']}` | {r['train_wall_s']:.0f} | "
                f"{t['ms_per_update']:.1f} | {t['words_per_s']:.0f} | {test_words / test_s:.0f} | "
                f"{r['eval_wall_s']:.0f} |"
            )
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                        help="all: train on all languages; en: train on English only")
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS,
                        help="update steps per training (the fixed budget)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="docs per update")
    add_common_arguments(parser, "textcat_sib200", "letters of A, B")
    args = parser.parse_args()

    start = time.perf_counter()
    out, checkpoint = prepare_run(args)

    labels = sib200_labels(args.data_dir)
    data = out / "data"
    print("== converting data", flush=True)
    data_stats = convert_sib200(args.data_dir.resolve(), data, LANGUAGES, labels)
    results = {
        **header(args, checkpoint=str(checkpoint)),
        "labels": labels,
        "budget": budget(args, "batch_size_docs"),
        "data": data_stats,
        "majority_baseline": majority_baseline(data, labels),
        "settings": {},
    }
    for setting in args.settings:
        entry = {"label": SETTINGS[setting][0], "train_languages": SETTINGS[setting][1],
                 "systems": {}}
        results["settings"][setting] = entry
        for key in args.systems:
            print(f"== {setting}: system {key} ({SYSTEMS[key].label})", flush=True)
            r = run_system(key, setting, data, out, checkpoint, args)
            entry["systems"][key] = r
            print(
                f"   macro_f mean={pct(r['mean']['cats_macro_f'])} "
                f"(en {pct(r['test']['en']['cats_macro_f'])}) "
                f"acc mean={pct(r['mean']['accuracy'])} train_wall={r['train_wall_s']:.0f}s "
                f"ms/update={r['training']['ms_per_update']:.1f}",
                flush=True,
            )
            save(results, out)
    finish(results, out, start, markdown_table)


if __name__ == "__main__":
    main()
