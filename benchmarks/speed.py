#!/usr/bin/env python
"""Inference speed and peak memory: spacy_xlmr vs Hugging Face pipelines vs
spacy-transformers vs the raw encoder forward (issue 7).

Every system runs on the same texts, each in its own subprocess (so the peak
RSS is per system), with the same number of torch threads; a system is timed
over ``--runs`` passes over all texts (median) after one warm-up pass.

Systems (``--systems``, default all):

  limit           raw ``XLMRobertaModel`` forward in ``torch.inference_mode()``:
                  pre-tokenised texts (outside the timer), windows of 510 pieces
                  (+ <s>, </s>) without overlap, sorted by length, batches of 8,
                  no post-processing. The reference of every ratio.
  limit_unpadded  ``limit`` with one window per forward call (no padding).
  limit_bf16      the same under ``torch.autocast("cpu", dtype=torch.bfloat16)``.
  limit_int8      the same after ``quantize_dynamic(model, {nn.Linear}, qint8)``.
  limit_masked    ``limit`` on the fill-mask texts (the reference of the
                  fill-mask ratios).
  spacy_trf_ner   spacy-transformers ``transformer`` (TransformerModel.v3, fast
                  tokenizer, default strided spans 128/96) + spaCy ``ner``
                  (TransformerListener.v1, reduce_mean), ``nlp.pipe``.
  hf_ner          HF ``pipeline("token-classification",
                  aggregation_strategy="simple", stride=128)``.
  xlmr_ner        ``from_huggingface(..., "token-classification")``, ``nlp.pipe``.
  hf_textcat      HF ``pipeline("text-classification", top_k=None,
                  truncation=True)``.
  xlmr_textcat    ``from_huggingface(..., "text-classification")``, ``nlp.pipe``.
  hf_fill_mask    HF ``pipeline("fill-mask", top_k=5)`` on texts with 1-2 <mask>.
  xlmr_fill_mask  ``from_huggingface(..., "fill-mask")`` (top_k 5), ``nlp.pipe``.
  xlmr_ner_bf16   ``xlmr_ner`` with the encoder's ``inference_precision = "bf16"``.
  xlmr_ner_int8   ``xlmr_ner`` with ``inference_precision = "int8"``.
  limit_qa        ``limit`` on the question answering inputs: the pair windows
                  HF's pipeline makes (fast tokenizer, ``only_second``
                  truncation, 384 positions, stride 128), sorted, batches of 8.
  hf_qa           HF ``pipeline("question-answering")``, the pairs as two lists
                  (``question=``, ``context=``), batch_size 1 (the default).
  xlmr_qa         ``from_huggingface(..., "question-answering")``: one Doc per
                  context with its questions in ``doc._.qa_questions``,
                  ``nlp.pipe`` (the ``transformer`` component runs too).
  xlmr_qa_ask     the same pipeline, ``qa.ask(context, questions)`` per context
                  (only the QA component runs).

QA options, the same on both sides (HF's defaults): top_k 1, doc_stride 128,
max_seq_len 384, max_question_len 64, max_answer_len 15,
handle_impossible_answer False. The QA inputs are (question, context) pairs
from the samples in data/qa: **short**, the paragraphs as they are (XQuAD en,
es, zh, ar, hi; SQuAD 2.0 en; SQuAD-es dev; not XQuAD th, see QA_SOURCES),
questions taken round robin over the 7 sources and over each source's
paragraphs; **long**, one context per source made of consecutive paragraphs
joined with a newline (XQuAD: its 3 paragraphs, from 3 articles; SQuAD 2.0:
the 6 "Normans" paragraphs; SQuAD-es: "Fresno, California" cut into contexts
of at least 1000 words), questions round robin over the sources and contexts.
Questions of the same context are asked together. The workers write their answers
(``runs/<set>-<system>.outputs.json``) and the driver compares each xlmr_qa
system with hf_qa: identical = same answer text, start and end, and scores
within 1e-4.

Reduced precision: the driver gives the speed-up of xlmr_ner_bf16/int8 over
xlmr_ner of the same run (added to the run when missing) and their fidelity:
the workers of the three write, after the timed passes, the NER head's logits
of every token and the entities (``runs/<set>-<system>.outputs.json``) of
three models, each in the worker's precision:

  benchmark_head  the random head of the benchmark checkpoint (HF-imported).
  probe_head      the benchmark encoder with a *probe head*: a linear
                  classifier trained (class-balanced logistic regression) on
                  the frozen fp32 hidden states of the same random encoder for
                  the gold tags of data/ner (UNER pt + zh train), saved as an
                  XLMRobertaForTokenClassification and imported like the other
                  (``<checkpoints>/token-classification-probe``; ``probe.json``
                  has its accuracy).
  trained_tiny    a tiny xlmr_ner trained end to end by the NER project's
                  recipe (configs/ner-tiny.cfg, 300 steps on UNER pt; 2 layers,
                  width 64), ``spacy.load`` with the precision as a config
                  override (``<checkpoints>/ner-tiny-trained``, ``trained.json``).

A random head's logits are small and its argmax close to a tie, so its entity
agreement mostly measures ties; the probe's and the tiny model's decisions come
from training (but the probe sits on a random encoder, and the trained model is
tiny). Reported per model: the share of the fp32 entities (start_char,
end_char, label) also predicted (and the reverse, and the F-score of the two
sets), token argmax agreement, the largest and mean absolute logit deviation,
the largest probability deviation, and the fp32 logits' scale.

The checkpoints (built once under ``--output``): an xlm-roberta-base-sized
XLM-R with random weights and a tokenizer trained on data/text
(``spacy_xlmr.checkpoints.build_checkpoint(size="base")``), its embedding
matrix resized to xlm-roberta-base's 250002 rows (the extra rows are never
produced by the tokenizer, but they are in fill-mask's output layer and in
memory), saved as a bare encoder and as XLMRobertaForTokenClassification (9 BIO
labels), XLMRobertaForSequenceClassification (7 labels),
XLMRobertaForMaskedLM and XLMRobertaForQuestionAnswering, all with the same
encoder weights. A head missing from an existing checkpoint directory is added
with the encoder weights found there (the others are left as they are).

Words: whitespace-separated words; in zh and ja, where words are not
separated by spaces, every non-space character counts as a word. The same
count is used for every system. A QA pair counts the words of its question and
of its context (a context asked 5 questions counts 5 times); QA systems also
report questions/s.

Reported per system: words/s (wall time) and words per CPU-second of the
process (with one torch thread the better measure on a shared machine), both
also as a ratio to ``limit`` from the same run; peak RSS (VmHWM; the peak of
the whole process, after loading and of the inference alone); the positions
the XLMRobertaModel computed (a forward pre-hook counts rows x padded length
and the attention-mask zeros), as padding share and relative to what the texts
need (their pieces plus <s> and </s> once per doc; for QA, the question's and the
context's pieces plus 4 special tokens once per question), which shows window
overlap.
Results: ``<output>/results.json`` and ``results.md``; per system
``<output>/runs/<set>-<system>.{json,log}``.

Usage (from the repository root):

    python benchmarks/speed.py                     # everything
    python benchmarks/speed.py --quick             # smoke test, ~3 min
    python benchmarks/speed.py --systems limit xlmr_ner --sets short
    python benchmarks/speed.py --systems xlmr_ner --profile
    python benchmarks/speed.py --systems limit_qa hf_qa xlmr_qa xlmr_qa_ask \
        --qa-short-questions 40 --qa-long-questions 7
    python benchmarks/speed.py --systems xlmr_ner xlmr_ner_bf16 xlmr_ner_int8
    # the recorded run (shared machine: one thread, wait for idle CPUs):
    python benchmarks/speed.py --xlmr-rev HEAD --threads 1 --wait-idle 30

To measure a fixed commit of spacy_xlmr while the working tree changes:

    python benchmarks/speed.py --xlmr-rev HEAD
The parts live in ``benchmarks/lib``: ``speed_texts`` (text sets),
``speed_systems`` (what each system runs), ``timing`` (the timed passes),
``checkpoints`` and ``fidelity`` (models), ``speed_report`` (tables).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

from lib.checkpoints import HEADS, build_task_checkpoints
from lib.env import REPO, export_library, library_state, machine, thread_env, versions
from lib.fidelity import PROBE_HEAD, TRAINED_TINY, build_probe, build_trained_tiny
from lib.memory import memory_mb, reset_peak_rss, ru_maxrss_mb
from lib.results import fmt
from lib.speed_report import compare, markdown_table, precision_table, qa_table, summarize
from lib.speed_systems import (
    HF_STRIDE, TOP_K, setup_hf, setup_hf_qa, setup_limit, setup_spacy_trf, setup_xlmr,
    setup_xlmr_qa,
)
from lib.speed_texts import QA_OPTIONS, prepare_texts, text_stats
from lib.systems import System
from lib.timing import PositionCounter, find_encoder, timed_passes

PRECISIONS = {"xlmr_ner_bf16": "bf16", "xlmr_ner_int8": "int8"}
# system -> the system of the same run it is compared with (speed and outputs)
COMPARE = {"xlmr_qa": "hf_qa", "xlmr_qa_ask": "hf_qa",
           "xlmr_ner_bf16": "xlmr_ner", "xlmr_ner_int8": "xlmr_ner"}
NER = {"task": "token-classification"}
TEXTCAT = {"task": "text-classification"}
FILL_MASK = {"task": "fill-mask"}

# key: label, description, the texts it reads, the reference system of its
# ratio, and how it is built (lib/speed_systems.py)
SYSTEMS: Dict[str, System] = {
    "limit": System(
        "raw forward, fp32",
        "XLMRobertaModel in inference_mode, pre-tokenised, 510-piece windows, "
        "batches of 8 sorted by length",
        texts="plain", reference="limit", setup=setup_limit),
    "limit_unpadded": System(
        "raw forward, fp32, one window per call", "limit with batches of 1 window: no padding",
        texts="plain", reference="limit", setup=setup_limit, options={"batch_size": 1}),
    "limit_bf16": System(
        "raw forward, bf16 autocast", "limit under torch.autocast('cpu', dtype=torch.bfloat16)",
        texts="plain", reference="limit", setup=setup_limit, options={"variant": "bf16"}),
    "limit_int8": System(
        "raw forward, int8 dynamic",
        "limit after torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, qint8)",
        texts="plain", reference="limit", setup=setup_limit, options={"variant": "int8"}),
    "spacy_trf_ner": System(
        "spacy-transformers + ner",
        "transformer (TransformerModel.v3, strided_spans 128/96, use_fast) + "
        "ner (TransitionBasedParser.v2, TransformerListener.v1 reduce_mean); nlp.pipe",
        texts="plain", reference="limit", setup=setup_spacy_trf),
    "hf_ner": System(
        "HF token-classification",
        "pipeline('token-classification', aggregation_strategy='simple', "
        f"stride={HF_STRIDE}), batch_size 1",
        texts="plain", reference="limit", setup=setup_hf, options=NER),
    "xlmr_ner": System(
        "xlmr_ner", "from_huggingface(..., 'token-classification'); nlp.pipe",
        texts="plain", reference="limit", setup=setup_xlmr, options=NER),
    "hf_textcat": System(
        "HF text-classification",
        "pipeline('text-classification', top_k=None, truncation=True), batch_size 1",
        texts="plain", reference="limit", setup=setup_hf, options=TEXTCAT),
    "xlmr_textcat": System(
        "xlmr_textcat", "from_huggingface(..., 'text-classification'); nlp.pipe",
        texts="plain", reference="limit", setup=setup_xlmr, options=TEXTCAT),
    "limit_masked": System(
        "raw forward, fp32 (mask texts)", "limit on the fill-mask texts",
        texts="masked", reference="limit_masked", setup=setup_limit),
    "hf_fill_mask": System(
        "HF fill-mask", f"pipeline('fill-mask', top_k={TOP_K}), batch_size 1",
        texts="masked", reference="limit_masked", setup=setup_hf, options=FILL_MASK),
    "xlmr_fill_mask": System(
        "xlmr_fill_mask", f"from_huggingface(..., 'fill-mask'), top_k {TOP_K}; nlp.pipe",
        texts="masked", reference="limit_masked", setup=setup_xlmr, options=FILL_MASK),
    # The worker puts the precision in encoder_config (PRECISIONS).
    "xlmr_ner_bf16": System(
        "xlmr_ner, bf16", "xlmr_ner with encoder_config inference_precision='bf16'; nlp.pipe",
        texts="plain", reference="limit", setup=setup_xlmr, options=NER),
    "xlmr_ner_int8": System(
        "xlmr_ner, int8", "xlmr_ner with encoder_config inference_precision='int8'; nlp.pipe",
        texts="plain", reference="limit", setup=setup_xlmr, options=NER),
    "limit_qa": System(
        "raw forward, fp32 (QA pair windows)",
        "limit on HF's question/context windows (384 positions, stride 128), "
        "batches of 8 sorted by length",
        texts="qa", reference="limit_qa", setup=setup_limit, options={"qa": True}),
    "hf_qa": System(
        "HF question-answering",
        "pipeline('question-answering'), the pairs as lists, HF's default options, batch_size 1",
        texts="qa", reference="limit_qa", setup=setup_hf_qa),
    "xlmr_qa": System(
        "xlmr_qa, nlp.pipe",
        "from_huggingface(..., 'question-answering'); Docs with doc._.qa_questions; nlp.pipe",
        texts="qa", reference="limit_qa", setup=setup_xlmr_qa, options={"mode": "pipe"}),
    "xlmr_qa_ask": System(
        "xlmr_qa, qa.ask",
        "from_huggingface(..., 'question-answering'); qa.ask(context, questions) per context",
        texts="qa", reference="limit_qa", setup=setup_xlmr_qa, options={"mode": "ask"}),
}
REFERENCES = ("limit", "limit_masked", "limit_qa")
# HF's fill-mask pipeline neither windows nor truncates: a doc of more than 512
# pieces fails ("The expanded size of the tensor (1715) must match the existing
# size (514)", transformers 4.53). So no fill-mask on long docs.
SKIP = {("long", "limit_masked"), ("long", "hf_fill_mask"), ("long", "xlmr_fill_mask")}


# ---------------------------------------------------------------------------
# Worker: one system on one text set, in its own process
# ---------------------------------------------------------------------------


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    system, set_name = args.worker
    out = args.output.resolve()
    root = args.checkpoints or out / f"checkpoint-{args.size}"
    dirs = {head: root / head for head in (*HEADS, PROBE_HEAD)}
    dirs[TRAINED_TINY] = root / TRAINED_TINY / "train" / "model-best"
    texts = json.loads((out / "texts.json").read_text(encoding="utf8"))
    spec = SYSTEMS[system]
    docs = texts[set_name][spec.texts]
    import spacy_xlmr

    result: Dict = {"system": system, "set": set_name, "threads": torch.get_num_threads(),
                    "spacy_xlmr": str(Path(spacy_xlmr.__file__).parent),
                    "loadavg_start": os.getloadavg()[0]}
    start = time.perf_counter()
    encoder_config = json.loads(args.xlmr_encoder_config) if args.xlmr_encoder_config else None
    if system in PRECISIONS:
        encoder_config = {**(encoder_config or {}), "inference_precision": PRECISIONS[system]}
    result["xlmr_encoder_config"] = encoder_config
    run, root = spec.setup(dirs, docs, encoder_config, **spec.options)
    result["setup_s"] = time.perf_counter() - start
    counter = PositionCounter()
    find_encoder(root).register_forward_pre_hook(counter, with_kwargs=True)
    # Peak RSS from VmHWM: ru_maxrss would also count the RSS the driver
    # process had when it forked this one (the kernel keeps the larger).
    memory = memory_mb()
    result["rss_after_setup_mb"] = memory.get("VmRSS")
    result["peak_rss_setup_mb"] = memory.get("VmHWM")
    result["peak_reset"] = reset_peak_rss()
    # Warm-up, then the timed runs; the positions are counted per run.
    result.update(timed_passes(run, counter, args.runs, args.wait_idle, args.threads))
    result["loadavg_end"] = os.getloadavg()[0]
    # Peak RSS of the inference (since the reset; setup included when the reset failed).
    result["peak_rss_inference_mb"] = memory_mb().get("VmHWM")
    result["ru_maxrss_mb"] = ru_maxrss_mb()
    result["peak_rss_mb"] = max(result["peak_rss_setup_mb"], result["peak_rss_inference_mb"])
    if args.profile:
        result["profile"] = profile(run, out / "profiles" / f"{set_name}-{system}")
    # Outputs for the driver's comparisons, after the memory was measured (the
    # fidelity pass loads a second pipeline).
    write_outputs = getattr(run, "write_outputs", None)
    outputs = write_outputs(args.fidelity) if write_outputs else None
    if outputs is not None:
        path = Path(args.worker_result).with_suffix(".outputs.json")
        path.write_text(json.dumps(outputs, ensure_ascii=False), encoding="utf8")
        result["outputs"] = str(path)
    Path(args.worker_result).write_text(json.dumps(result, indent=2), encoding="utf8")


def profile(run, stem: Path) -> str:
    """One more ``run()`` under cProfile: ``stem.prof`` and the top 40
    functions by own and cumulative time in ``stem.txt``."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stem.parent.mkdir(exist_ok=True)
    profiler.dump_stats(str(stem) + ".prof")
    text = io.StringIO()
    for key in ("tottime", "cumulative"):
        pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(40)
    Path(str(stem) + ".txt").write_text(text.getvalue(), encoding="utf8")
    return str(stem) + ".txt"


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def run_worker(system: str, set_name: str, args, out: Path) -> Dict:
    runs_dir = out / "runs"
    runs_dir.mkdir(exist_ok=True)
    result_path = runs_dir / f"{set_name}-{system}.json"
    log_path = runs_dir / f"{set_name}-{system}.log"
    result_path.unlink(missing_ok=True)
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--worker", system, set_name,
        "--worker-result", str(result_path), "--output", str(out),
        "--runs", str(args.runs), "--threads", str(args.threads), "--size", args.size,
        "--wait-idle", str(args.wait_idle),
    ]
    if args.checkpoints:
        cmd += ["--checkpoints", str(args.checkpoints)]
    if args.xlmr_encoder_config:
        cmd += ["--xlmr-encoder-config", args.xlmr_encoder_config]
    if args.profile:
        cmd.append("--profile")
    if args.fidelity:
        cmd.append("--fidelity")
    env = thread_env(args.threads, tokenizers_parallelism=False, xlmr_src=args.xlmr_src)
    start = time.perf_counter()
    with log_path.open("w", encoding="utf8") as log:
        proc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(encoding="utf8")[-3000:]
        return {"system": system, "set": set_name, "error": f"exit {proc.returncode}",
                "log_tail": tail, "process_wall_s": wall}
    result = json.loads(result_path.read_text(encoding="utf8"))
    result["process_wall_s"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS),
                        help=f"systems to run, of: {' '.join(SYSTEMS)}")
    parser.add_argument("--sets", nargs="+", default=["short", "long"], choices=["short", "long"])
    parser.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up run")
    parser.add_argument("--threads", type=int, default=2, help="torch/OpenMP threads per system")
    parser.add_argument("--short-docs", type=int, default=None,
                        help="default 40, 5 per language (--quick: 8)")
    parser.add_argument("--long-docs", type=int, default=None,
                        help="default 4: en, zh, ru, hi (--quick: 2)")
    parser.add_argument("--qa-short-questions", type=int, default=None,
                        help="QA questions in the short set (default 40; --quick: 16)")
    parser.add_argument("--qa-long-questions", type=int, default=None,
                        help="QA questions in the long set (default 7, one per source; --quick: 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None,
                        help="default benchmarks/output/speed "
                             "(--quick: benchmarks/output/speed_quick)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny checkpoint (2 layers, width 64, still 250002 rows), "
                             "8 short and 2 long docs, 16 short and 8 long QA questions")
    parser.add_argument("--xlmr-src", type=Path, default=None,
                        help="directory holding the spacy_xlmr package to measure (put first "
                             "on the workers' PYTHONPATH), e.g. a `git archive` export of a "
                             "commit; default: the installed one")
    parser.add_argument("--xlmr-encoder-config", default=None,
                        help="JSON settings for the encoder of the xlmr_* systems "
                             "(from_huggingface's encoder_config), "
                             """e.g. '{"max_batch_pieces": 1024}'""")
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="directory with the checkpoints (default: <output>/checkpoint-<size>, "
                             "built there if missing)")
    parser.add_argument("--xlmr-rev", default=None,
                        help="measure spacy_xlmr at this git revision (e.g. HEAD): exported "
                             "with its entry points under --output and used as --xlmr-src")
    parser.add_argument("--wait-idle", type=float, default=0.0,
                        help="before the warm-up and each timed run, wait up to this many "
                             "seconds for the machine's CPUs to be idle enough "
                             "(busy < max(15%%, 1 - threads/cores - 10%%) over 2 s); "
                             "0: don't wait")
    parser.add_argument("--profile", action="store_true",
                        help="after the timed runs, one more run under cProfile: "
                             "<output>/profiles/")
    # Internal: run one system in this process.
    parser.add_argument("--worker", nargs=2, metavar=("SYSTEM", "SET"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-result", help=argparse.SUPPRESS)
    parser.add_argument("--fidelity", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.output is None:
        name = "speed_quick" if args.quick else "speed"
        args.output = REPO / "benchmarks" / "output" / name
    if args.size is None:
        args.size = "tiny" if args.quick else "base"
    if args.worker:
        worker(args)
        return
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {list(SYSTEMS)}")
    n_short = args.short_docs or (8 if args.quick else 40)
    n_long = args.long_docs or (2 if args.quick else 4)
    qa_questions = {
        # Base-sized QA is slow here (~450 positions/s on one thread): 40 short
        # questions are 117 windows, 7 long ones 70 (~100 and ~60 s a pass).
        "short": args.qa_short_questions or (16 if args.quick else 40),
        "long": args.qa_long_questions or (8 if args.quick else 7),
    }
    # The reduced-precision rows are compared with xlmr_ner of the same run.
    args.fidelity = any(s in PRECISIONS for s in args.systems)
    if args.fidelity and "xlmr_ner" not in args.systems:
        print("Adding xlmr_ner: the reference of the reduced-precision rows", flush=True)
        args.systems.append("xlmr_ner")

    start = time.perf_counter()
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.xlmr_rev:
        args.xlmr_src = export_library(args.xlmr_rev, out)
    if args.checkpoints:
        args.checkpoints = args.checkpoints.resolve()
    root = args.checkpoints or out / f"checkpoint-{args.size}"
    dirs = build_task_checkpoints(root, args.size, args.seed)
    fidelity_models = None
    if args.fidelity:
        dirs[PROBE_HEAD] = build_probe(root, dirs, args.seed, args.threads)
        dirs[TRAINED_TINY] = build_trained_tiny(root, args.seed, args.threads, args.xlmr_src)
        fidelity_models = {
            "probe_head": json.loads((dirs[PROBE_HEAD] / "probe.json").read_text(encoding="utf8")),
            "trained_tiny": json.loads(
                (root / TRAINED_TINY / "trained.json").read_text(encoding="utf8")
            ),
        }
    texts = prepare_texts(out, dirs, n_short, n_long, args.seed, qa_questions)
    results: Dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": {k: str(v) for k, v in vars(args).items() if not k.startswith("worker")},
        "checkpoints": {k: str(v) for k, v in dirs.items()},
        "machine": machine(),
        "spacy_xlmr": library_state(args.xlmr_src),
        "versions": versions(),
        "words": "whitespace-separated words; zh/ja: non-space characters",
        "systems": {k: {"label": v.label, "texts": v.texts, "reference": v.reference,
                        "description": v.description} for k, v in SYSTEMS.items()},
        "qa_options": QA_OPTIONS,
        "fidelity_models": fidelity_models,
        "sets": {},
    }
    results["machine"]["torch_threads"] = str(args.threads)
    # The references run first, so every ratio has its reference in this run.
    order = sorted(args.systems, key=lambda s: (s not in REFERENCES, list(SYSTEMS).index(s)))
    for set_name in args.sets:
        entry = {
            "texts": {kind: text_stats(docs) for kind, docs in texts[set_name].items()},
            "systems": {},
            "skipped": [],
        }
        results["sets"][set_name] = entry
        for system in order:
            if (set_name, system) in SKIP:
                entry["skipped"].append(system)
                continue
            print(f"== {set_name}: {system}", flush=True)
            r = run_worker(system, set_name, args, out)
            docs = texts[set_name][SYSTEMS[system].texts]
            summarize(r, docs, entry["systems"].get(SYSTEMS[system].reference), SYSTEMS)
            compare(r, entry["systems"], docs, COMPARE)
            entry["systems"][system] = r
            if "error" in r:
                print(f"   FAILED ({r['error']}):\n{r['log_tail']}", flush=True)
            else:
                print(
                    f"   {r['words_per_s']:.0f} words/s, "
                    f"x{r.get('ratio_to_limit', float('nan')):.2f}, "
                    f"runs {['%.2f' % w for w in r['runs_s']]} s, "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB, "
                    f"padding {100 * r['positions']['padding_share']:.1f}%, "
                    f"CPU/wall {r['cpu_per_wall']:.2f}, "
                    f"others' CPU {100 * r['other_cpu_share']:.0f}%",
                    flush=True,
                )
                if "questions_per_s" in r:
                    print(f"   {r['questions_per_s']:.2f} questions/s, "
                          f"{r['questions_per_cpu_s']:.2f} questions/CPU-s", flush=True)
                if "speedup" in r:
                    print(f"   x{r['speedup']:.2f} (CPU x{r['cpu_speedup']:.2f}) "
                          f"of {r['compared_with']}", flush=True)
                cmp = r.get("answers_vs_hf")
                if cmp:
                    print(f"   answers identical to hf_qa: {cmp['identical']}/{cmp['questions']}, "
                          f"same span {cmp['same_span']}/{cmp['questions']}", flush=True)
                for head, f in (r.get("fidelity") or {}).items():
                    print(f"   {head}: fp32 entities kept {f['both']}/{f['fp32_entities']}, "
                          f"entity F {fmt(f['entity_f'], '.3f')}, "
                          f"max abs logit dev {fmt(f['max_abs_logit_dev'], '.2e')}", flush=True)
            (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf8")
    results["total_wall_s"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf8")
    table = markdown_table(results, SYSTEMS)
    if any(SYSTEMS[k].texts == "qa" for e in results["sets"].values() for k in e["systems"]):
        table += "\n\nQuestion answering:\n\n" + qa_table(results, SYSTEMS)
    if args.fidelity:
        table += "\n\nReduced precision (xlmr_ner):\n\n" + precision_table(results, PRECISIONS)
    (out / "results.md").write_text(table + "\n", encoding="utf8")
    print()
    print(table)
    print(f"\nTotal wall time: {results['total_wall_s']:.0f} s; results in {out / 'results.json'}")


if __name__ == "__main__":
    main()
