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
wrapper and step timer come from ``ner_uner.py`` (imported, not copied).

Usage (from the repository root):

    /work/venv/bin/python benchmarks/textcat_sib200.py                 # both settings, defaults
    /work/venv/bin/python benchmarks/textcat_sib200.py --settings en --max-steps 100

This file is also passed to ``spacy train --code``: importing it registers the
batcher wrapper (``spacy-xlmr-bench.timed_batches.v1``, from ner_uner.py) and
the logger ``spacy-xlmr-bench.cats_step_timer.v1``.
"""
import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Optional

from spacy.util import registry

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import ner_uner  # noqa: E402,F401  (registers spacy-xlmr-bench.timed_batches.v1 / step_timer.v1)
from ner_uner import (  # noqa: E402
    REPO, add_common_arguments, machine, pct, prepare_run, run_logged, step_stats,
    step_timer, versions,
)

CONFIG_DIR = HERE / "configs"
LANGUAGES = ["en", "es", "pt", "sv", "ru", "zh", "ja", "ar", "hi"]
SETTINGS = {
    # key: (label, training languages)
    "all": ("all", LANGUAGES),
    "en": ("en→x", ["en"]),
}
SYSTEMS = {
    # key: (label, config, description)
    "A": (
        "spacy_xlmr",
        CONFIG_DIR / "textcat_xlmr.cfg",
        "xlmr_transformer + xlmr_textcat (exclusive, cls pooling)",
    ),
    "B": (
        "spacy-transformers",
        CONFIG_DIR / "textcat_spacy_trf.cfg",
        "transformer (TransformerModel.v3) + textcat (TextCatReduce.v1 mean, "
        "TransformerListener.v1 reduce_mean)",
    ),
}
DEFAULT_MAX_STEPS = 4000
DEFAULT_BATCH_SIZE = 16  # docs (sentences) per update (spacy.batch_by_sequence.v1)
DEV_KEYS = ("cats_score", "cats_macro_f", "cats_micro_f", "cats_macro_auc", "speed")


# ---------------------------------------------------------------------------
# Registered functions used by the configs (loaded with `spacy train --code`).
# ---------------------------------------------------------------------------


@registry.loggers("spacy-xlmr-bench.cats_step_timer.v1")
def cats_step_timer(path: Optional[str] = None) -> Callable:
    """ner_uner's ``step_timer`` (console log + one JSON record per update
    step), with the textcat dev scores stored in the evaluated steps' "dev"
    (``step_timer`` stores the NER ones)."""
    inner = step_timer(path)

    def setup(nlp, stdout=sys.stdout, stderr=sys.stderr):
        log_step, finalize = inner(nlp, stdout, stderr)
        dev_scores: List[Dict] = []

        def log(info: Optional[Dict]) -> None:
            if info is not None:
                other = info.get("other_scores") or {}
                dev_scores.append({k: other.get(k) for k in DEV_KEYS})
            log_step(info)

        def finish() -> None:
            finalize()
            if path and Path(path).exists():
                steps = json.loads(Path(path).read_text(encoding="utf8"))
                evaluated = [s for s in steps if s["evaluated"]]
                for record, dev in zip(evaluated, dev_scores):
                    record["dev"] = dev
                Path(path).write_text(json.dumps(steps), encoding="utf8")

        return log, finish

    return setup


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def read_labels(data_dir: Path) -> List[str]:
    path = data_dir / "textcat" / "sib200" / "en" / "labels.txt"
    return [line.strip() for line in path.read_text(encoding="utf8").splitlines() if line.strip()]


def convert_data(data_dir: Path, out_dir: Path, labels: List[str]) -> Dict:
    """Convert every language's train/dev/test TSV to .spacy (``lang="xx"``,
    the tokenizer of both pipelines) and write the union of the train and of
    the dev sets under ``all/``. Returns doc counts and label counts."""
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    from spacy_xlmr.convert.textcat import convert_textcat

    stats: Dict = {}
    for lang in LANGUAGES:
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
        for lang in LANGUAGES:
            for doc in DocBin().from_disk(out_dir / lang / f"{split}.spacy").get_docs(vocab):
                union.add(doc)
        union.to_disk(out_dir / "all" / f"{split}.spacy")
        stats.setdefault("all", {})[split] = {"docs": len(union)}
    return stats


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
    label, config, description = SYSTEMS[key]
    run_dir = out / setting / key
    run_dir.mkdir(parents=True, exist_ok=True)
    train_log = run_dir / "steps.json"
    paths = corpus_paths(setting, data)
    warmup = max(1, args.max_steps // 10)
    train_cmd = [
        sys.executable, "-m", "spacy", "train", str(config),
        "--output", str(run_dir / "training"),
        "--code", str(Path(__file__).resolve()),
        "--gpu-id", "-1",
        "--paths.train", str(paths["train"]),
        "--paths.dev", str(paths["dev"]),
        "--paths.checkpoint", str(checkpoint),
        "--paths.train_log", str(train_log),
        "--system.seed", str(args.seed),
        "--training.max_steps", str(args.max_steps),
        "--training.eval_frequency", str(args.max_steps),
        "--training.batcher.batcher.size", str(args.batch_size),
        "--training.optimizer.learn_rate.initial_rate", str(args.learn_rate),
        "--training.optimizer.learn_rate.warmup_steps", str(warmup),
        "--training.optimizer.learn_rate.total_steps", str(args.max_steps),
    ]
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
    result = {
        "system": key,
        "label": label,
        "description": description,
        "config": str(config.relative_to(REPO)),
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
    return result


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

    labels = read_labels(args.data_dir)
    data = out / "data"
    print("== converting data", flush=True)
    data_stats = convert_data(args.data_dir.resolve(), data, labels)
    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": {k: str(v) for k, v in vars(args).items()},
        "checkpoint": str(checkpoint),
        "machine": machine(),
        "versions": versions(),
        "labels": labels,
        "budget": {
            "max_steps": args.max_steps,
            "update_steps": args.max_steps + 1,  # spaCy's loop runs steps 0..max_steps
            "batch_size_docs": args.batch_size,
            "optimizer": "Adam.v1 (L2 0.01 decoupled, grad_clip 1.0)",
            "learn_rate": f"warmup_linear: {args.learn_rate} peak, "
                          f"{max(1, args.max_steps // 10)} warmup steps, {args.max_steps} total",
            "dropout": 0.1,
            "seed": args.seed,
            "threads_per_process": args.threads,
        },
        "data": data_stats,
        "majority_baseline": majority_baseline(data, labels),
        "settings": {},
    }
    for setting in args.settings:
        entry = {"label": SETTINGS[setting][0], "train_languages": SETTINGS[setting][1],
                 "systems": {}}
        results["settings"][setting] = entry
        for key in args.systems:
            print(f"== {setting}: system {key} ({SYSTEMS[key][0]})", flush=True)
            r = run_system(key, setting, data, out, checkpoint, args)
            entry["systems"][key] = r
            print(
                f"   macro_f mean={pct(r['mean']['cats_macro_f'])} "
                f"(en {pct(r['test']['en']['cats_macro_f'])}) "
                f"acc mean={pct(r['mean']['accuracy'])} train_wall={r['train_wall_s']:.0f}s "
                f"ms/update={r['training']['ms_per_update']:.1f}",
                flush=True,
            )
            (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf8")
    results["total_wall_s"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf8")
    table = markdown_table(results)
    (out / "results.md").write_text(table + "\n", encoding="utf8")
    print()
    print(table)
    print(f"\nTotal wall time: {results['total_wall_s']:.0f} s; results in {out / 'results.json'}")


if __name__ == "__main__":
    main()
