#!/usr/bin/env python
"""Extractive QA on SQuAD-es 2.0: a tiny XLM-R trained from scratch with
`xlmr_qa`, evaluated on held-out articles.

SQuAD-es 2.0 dev (35 articles, 7134 questions, 3256 unanswerable; from
`../shared/data/qa/squad-es-v2`) is split by article: every fifth article
(sorted by title) is held out for testing, the rest is for training, so no
test paragraph's article was seen in training. The script converts both
halves with `spacy_xlmr.convert.convert_squad`, builds the tiny random
checkpoint (`build_checkpoint(..., size="tiny")`), trains
`configs/qa-tiny.cfg` (`handle_impossible_answer = true`) with `spacy train`
and scores `model-best` on the held-out articles with
`spacy-xlmr evaluate` (SQuAD-official EM/F1, HasAns/NoAns). The "abstain"
row is the score of answering nothing to every question.

    python benchmarks/qa_squad_es.py --max-steps 2000
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lib.checkpoints import tiny_checkpoint
from lib.corpora import split_squad_by_article
from lib.env import OUTPUT_DIR, REPO, SHARED_DATA_DIR, machine, versions

SOURCE = SHARED_DATA_DIR / "qa" / "squad-es-v2" / "es" / "dev-v2.0-es_small.json"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--test-every", type=int, default=5, help="Hold out every n-th article")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR / "qa_squad_es")
    args = parser.parse_args()

    from spacy_xlmr.convert import convert_squad, read_squad
    from spacy_xlmr.qa.metrics import score_squad

    out = args.output
    split = split_squad_by_article(args.source, out / "data", args.test_every)
    stats = {}
    for name in ("train", "test"):
        stats[name] = convert_squad(out / "data" / f"{name}.json", out / "data" / f"{name}.spacy")
        print(f"{name}:\n{stats[name].summary()}")
    checkpoint = tiny_checkpoint(out / "checkpoint-tiny", seed=0, verbose=False)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(REPO / "configs" / "qa-tiny.cfg"),
         "--output", str(out / "training"), "--paths.train", str(out / "data" / "train.spacy"),
         "--paths.dev", str(out / "data" / "test.spacy"), "--paths.encoder", str(checkpoint),
         "--training.max_steps", str(args.max_steps),
         # The schedule's length too (the configs' max_steps refers to it).
         "--training.optimizer.learn_rate.total_steps", str(args.max_steps),
         "--training.eval_frequency", str(max(args.max_steps // 4, 1))],
        check=True, env=env,
    )
    train_seconds = time.perf_counter() - start
    subprocess.run(
        [sys.executable, "-m", "spacy_xlmr", "evaluate", str(out / "training" / "model-best"),
         str(out / "data" / "test.spacy"), "--output", str(out / "scores.json")],
        check=True, env=env,
    )
    scores = json.loads((out / "scores.json").read_text())
    import spacy

    test_docs = read_squad(out / "data" / "test.json", spacy.blank("xx"))
    questions = [q for doc in test_docs for q in doc._.qa_questions]
    abstain = score_squad({}, questions)
    results = {
        "machine": machine(), "versions": versions(), "split": split,
        "train_questions": stats["train"].questions, "test_questions": stats["test"].questions,
        "max_steps": args.max_steps, "train_seconds": train_seconds,
        "xlmr_qa": scores, "abstain": abstain,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print("| system | EM | F1 | HasAns EM | HasAns F1 | NoAns EM |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = [
        ("xlmr_qa, tiny from scratch",
         {k[3:]: v for k, v in scores.items() if k.startswith("qa_")}),
        ("abstain (answer nothing)", abstain),
    ]
    for name, row in rows:
        print(
            f"| {name} | {100 * row['exact']:.1f} | {100 * row['f1']:.1f} | "
            f"{100 * row.get('HasAns_exact', 0):.1f} | {100 * row.get('HasAns_f1', 0):.1f} | "
            f"{100 * row.get('NoAns_exact', 0):.1f} |"
        )


if __name__ == "__main__":
    main()
