#!/usr/bin/env python
"""NER on Universal NER: spacy_xlmr vs spacy-transformers, same encoder init.

Trains two pipelines per language with ``spacy train`` and scores them with
``spacy evaluate`` on the test set:

  A. ``xlmr_transformer`` + ``xlmr_ner``              (configs/ner_xlmr.cfg)
  B. spacy-transformers ``transformer`` + spaCy ``ner`` (configs/ner_spacy_trf.cfg)
  C. (ablation, ``--systems C``) ``xlmr_transformer`` + spaCy ``ner`` with
     B's listener (configs/ner_xlmr_spacy_ner.cfg)
  M. (ablation, ``--systems M``) A with mean pooling (configs/ner_xlmr_mean.cfg)

Both start from the same tiny, randomly initialised XLM-R checkpoint (built
once with ``spacy_xlmr.checkpoints.build_checkpoint``), use the same seed,
data, batcher, optimizer, learning-rate schedule and number of update steps.
The configs differ only in their [components] blocks; the batcher wrapper
(``lib/train_hooks.py``, passed to ``spacy train --code``) fixes the order of
the examples, so every system sees the same batches.

It also measures how each encoder aligns spaCy tokens to XLM-R pieces on the
test texts (see ``alignment_quality``).

Usage (from the repository root):

    python benchmarks/ner_uner.py                 # zh pt, defaults
    python benchmarks/ner_uner.py pt --max-steps 50 --train-limit 500
"""
import argparse
import json
import os
import sys
import time
import unicodedata
from pathlib import Path
from typing import Dict, Optional

from lib.corpora import convert_uner
from lib.env import CONFIG_DIR, REPO, run_logged
from lib.results import finish, header, pct, save
from lib.systems import System
from lib.training import add_common_arguments, budget, prepare_run, step_stats, train_command

SYSTEMS = {
    "A": System("spacy_xlmr", "xlmr_transformer + xlmr_ner", CONFIG_DIR / "ner_xlmr.cfg"),
    "B": System(
        "spacy-transformers",
        "transformer (TransformerModel.v3) + ner (TransformerListener.v1, reduce_mean)",
        CONFIG_DIR / "ner_spacy_trf.cfg",
    ),
    # Ablation, only with --systems ...C: A's encoder with B's head.
    "C": System(
        "xlmr encoder + spaCy ner",
        "xlmr_transformer + ner (TransformerListener.v1, reduce_mean)",
        CONFIG_DIR / "ner_xlmr_spacy_ner.cfg",
    ),
    # Ablation, only with --systems ...M: A with mean pooling over each
    # token's pieces instead of its first piece.
    "M": System(
        "spacy_xlmr, mean pooling",
        "xlmr_transformer + xlmr_ner (reduce_mean)",
        CONFIG_DIR / "ner_xlmr_mean.cfg",
    ),
}
DEFAULT_MAX_STEPS = 2000
DEFAULT_BATCH_SIZE = 16  # sentences per update (spacy.batch_by_sequence.v1)


# ---------------------------------------------------------------------------
# Alignment quality
# ---------------------------------------------------------------------------

SPECIALS = {"<s>", "</s>", "<pad>", "<mask>"}


def _normalized_text(text: str):
    """NFKC-normalise ``text`` character by character (as XLM-R's
    SentencePiece normaliser does), returning the normalised string and, for
    every original character offset (plus the end), its normalised offset."""
    pieces = []
    starts = []
    pos = 0
    for char in text:
        starts.append(pos)
        norm = unicodedata.normalize("NFKC", char)
        pieces.append(norm)
        pos += len(norm)
    starts.append(pos)
    return "".join(pieces), starts


def _overlaps(norm_text: str, piece: str, start: int, end: int) -> Optional[bool]:
    """Does ``piece`` occur in ``norm_text`` at a position overlapping
    ``[start, end)``? None if it occurs nowhere in the text."""
    if piece not in norm_text:
        return None
    lo = max(0, start - len(piece) + 1)
    pos = norm_text.find(piece, lo)
    while pos != -1 and pos < end:
        if pos + len(piece) > start:
            return True
        pos = norm_text.find(piece, pos + 1)
    return False


def alignment_quality(nlp, docs) -> Dict:
    """Run the pipeline's ``transformer`` component on ``docs`` and check
    every token's aligned pieces, read from ``doc._.trf_data``.

    ``align`` points each token at rows of the flattened
    ``(n_windows, seq_len)`` piece grid; the piece string at a row is
    ``wordpieces.strings[row // seq_len][row % seq_len]``. A piece *overlaps*
    the token if its text (with ``▁`` removed) occurs in the doc's text
    (NFKC-normalised per character) at a position that overlaps the token's
    characters. A token is *misaligned* if one of its pieces does not overlap
    it: a piece of another word, a lone ``▁`` (which covers only the space
    before a word), or a special token. ``<unk>`` pieces and pieces whose text
    occurs nowhere in the doc (normalisation mismatch) are not judged and are
    counted separately.
    """
    transformer = nlp.get_pipe("transformer")
    counts = {
        "tokens": 0,
        "misaligned_tokens": 0,
        "misaligned_tokens_visible": 0,  # only counting pieces with visible text
        "tokens_without_pieces": 0,
        "pieces": 0,
        "foreign_pieces": 0,
        "lone_space_pieces": 0,
        "special_pieces": 0,
        "unjudged_pieces": 0,
    }
    examples = []
    for doc in transformer.pipe(docs, batch_size=64):
        trf = doc._.trf_data
        strings = trf.wordpieces.strings
        seq_len = trf.wordpieces.input_ids.shape[1]
        lengths = [int(n) for n in trf.align.lengths]
        rows = [int(r) for r in trf.align.dataXd]
        norm_text, norm_starts = _normalized_text(doc.text)
        offset = 0
        for token, n in zip(doc, lengths):
            token_rows = rows[offset : offset + n]
            offset += n
            if token.is_space:
                continue
            counts["tokens"] += 1
            if n == 0:
                counts["tokens_without_pieces"] += 1
                continue
            start = norm_starts[token.idx]
            end = norm_starts[token.idx + len(token.text)]
            bad = bad_visible = False
            pieces = []
            for row in token_rows:
                piece = strings[row // seq_len][row % seq_len]
                pieces.append(piece)
                counts["pieces"] += 1
                text = piece.replace("▁", "")
                if piece in SPECIALS:
                    counts["special_pieces"] += 1
                    bad = bad_visible = True
                elif piece == "<unk>":
                    counts["unjudged_pieces"] += 1
                elif not text:
                    counts["lone_space_pieces"] += 1
                    bad = True
                else:
                    overlap = _overlaps(norm_text, text, start, end)
                    if overlap is None:
                        counts["unjudged_pieces"] += 1
                    elif not overlap:
                        counts["foreign_pieces"] += 1
                        bad = bad_visible = True
            counts["misaligned_tokens"] += bad
            counts["misaligned_tokens_visible"] += bad_visible
            if bad and len(examples) < 8:
                examples.append({"token": token.text, "pieces": pieces})
    n = max(counts["tokens"], 1)
    return {
        **counts,
        "misaligned_frac": counts["misaligned_tokens"] / n,
        "misaligned_visible_frac": counts["misaligned_tokens_visible"] / n,
        "without_pieces_frac": counts["tokens_without_pieces"] / n,
        "examples": examples,
    }


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def convert_data(data_dir: Path, lang: str, out_dir: Path, train_limit, dev_limit) -> Dict:
    src = data_dir / "ner" / "uner" / lang
    # The dev set is only scored by `spacy train` for its log (the model we
    # test is model-last, so dev is never used for selection).
    dev_src = "dev.iob2" if (src / "dev.iob2").exists() else "train.iob2"
    splits = {"train": ("train.iob2", train_limit), "test": ("test.iob2", None),
              "dev": (dev_src, dev_limit)}
    return convert_uner(src, out_dir, splits)


def run_system(key: str, lang: str, data: Path, out: Path, checkpoint: Path, args) -> Dict:
    system = SYSTEMS[key]
    run_dir = out / lang / key
    run_dir.mkdir(parents=True, exist_ok=True)
    train_log = run_dir / "steps.json"
    train_cmd = train_command(
        system.config, run_dir / "training", data / "train.spacy", data / "dev.spacy",
        checkpoint, train_log, args,
    )
    load_before = os.getloadavg()[0]
    train_wall = run_logged(train_cmd, run_dir / "train.log", args.threads)
    load_after = os.getloadavg()[0]
    model = run_dir / "training" / "model-last"
    metrics_path = run_dir / "test-metrics.json"
    eval_cmd = [
        sys.executable, "-m", "spacy", "evaluate", str(model), str(data / "test.spacy"),
        "--gold-preproc", "--gpu-id", "-1", "--output", str(metrics_path),
    ]
    eval_wall = run_logged(eval_cmd, run_dir / "evaluate.log", args.threads)
    metrics = json.loads(metrics_path.read_text(encoding="utf8"))
    steps = json.loads(train_log.read_text(encoding="utf8"))
    return {
        "system": key,
        "label": system.label,
        "description": system.description,
        "config": str(system.config.relative_to(REPO)),
        "train_command": train_cmd,
        "train_wall_s": train_wall,
        # 1-minute load average of the (shared) machine around the training.
        "loadavg_1min_before_after": [load_before, load_after],
        "eval_wall_s": eval_wall,
        "test": {
            k: metrics.get(k) for k in ("ents_p", "ents_r", "ents_f", "ents_per_type", "speed")
        },
        "training": step_stats(steps),
    }


def measure_alignment(model: Path, test_path: Path) -> Dict:
    import spacy
    from spacy.tokens import Doc, DocBin

    nlp = spacy.load(model)
    refs = DocBin().from_disk(test_path).get_docs(nlp.vocab)
    docs = [
        Doc(nlp.vocab, words=[t.text for t in ref], spaces=[bool(t.whitespace_) for t in ref])
        for ref in refs
    ]
    return alignment_quality(nlp, docs)


def markdown_table(results: Dict) -> str:
    lines = [
        "| lang | system | ents_p | ents_r | ents_f | train wall (s) | train words/s "
        "| test words/s | misaligned tokens % | misaligned, other words' pieces only % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lang, by_system in results["languages"].items():
        for key, r in by_system["systems"].items():
            t = r["test"]
            a = r.get("alignment", {})
            wps = r["training"]["words_per_s"]
            lines.append(
                f"| {lang} | {key}. {r['label']} | {pct(t['ents_p'])} | {pct(t['ents_r'])} | "
                f"{pct(t['ents_f'])} | {r['train_wall_s']:.0f} | "
                f"{wps:.0f} | {t['speed']:.0f} | "
                f"{pct(a.get('misaligned_frac'))} | {pct(a.get('misaligned_visible_frac'))} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("languages", nargs="*", default=["zh", "pt"])
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS,
                        help="update steps per training (the fixed budget)")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="use only the first N training sentences")
    parser.add_argument("--dev-limit", type=int, default=200,
                        help="dev sentences scored by spacy train (log only)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="sentences per update")
    add_common_arguments(parser, "ner_uner", "letters of A, B, C, M")
    args = parser.parse_args()

    start = time.perf_counter()
    out, checkpoint = prepare_run(args)
    results = {
        **header(args, checkpoint=str(checkpoint)),
        "budget": budget(args, "batch_size_sentences"),
        "languages": {},
    }
    for lang in args.languages:
        data = out / "data" / lang
        print(f"== {lang}: converting data", flush=True)
        data_stats = convert_data(args.data_dir, lang, data, args.train_limit, args.dev_limit)
        entry = {"data": data_stats, "systems": {}}
        results["languages"][lang] = entry
        for key in args.systems:
            print(f"== {lang}: system {key} ({SYSTEMS[key].label})", flush=True)
            r = run_system(key, lang, data, out, checkpoint, args)
            r["alignment"] = measure_alignment(
                out / lang / key / "training" / "model-last", data / "test.spacy"
            )
            entry["systems"][key] = r
            print(
                f"   ents_f={r['test']['ents_f']:.3f} train_wall={r['train_wall_s']:.0f}s "
                f"words/s={r['training']['words_per_s']:.0f} "
                f"misaligned={pct(r['alignment']['misaligned_frac'])}%",
                flush=True,
            )
            save(results, out)
    finish(results, out, start, markdown_table)


if __name__ == "__main__":
    main()
