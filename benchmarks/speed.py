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

    /work/venv/bin/python benchmarks/speed.py                     # everything
    /work/venv/bin/python benchmarks/speed.py --quick             # smoke test, ~3 min
    /work/venv/bin/python benchmarks/speed.py --systems limit xlmr_ner --sets short
    /work/venv/bin/python benchmarks/speed.py --systems xlmr_ner --profile
    /work/venv/bin/python benchmarks/speed.py --systems limit_qa hf_qa xlmr_qa xlmr_qa_ask \
        --qa-short-questions 40 --qa-long-questions 7
    /work/venv/bin/python benchmarks/speed.py --systems xlmr_ner xlmr_ner_bf16 xlmr_ner_int8
    # the recorded run (shared machine: one thread, wait for idle CPUs):
    /work/venv/bin/python benchmarks/speed.py --xlmr-rev HEAD --threads 1 --wait-idle 30

To measure a fixed commit of spacy_xlmr while the working tree changes:

    /work/venv/bin/python benchmarks/speed.py --xlmr-rev HEAD
"""
import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from lib.env import REPO, machine, versions

TEXT_DIR = REPO / "data" / "text"
VOCAB_SIZE = 250002  # xlm-roberta-base
NER_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
TEXTCAT_LABELS = [  # the SIB-200 topics
    "science/technology", "travel", "politics", "sports", "health",
    "entertainment", "geography",
]
HEADS = ("encoder", "token-classification", "text-classification", "fill-mask",
         "question-answering")
# A token-classification head trained on the frozen random encoder (fidelity of
# reduced precision with decisive logits); built only for the precision systems.
PROBE_HEAD = "token-classification-probe"
NER_DIR = REPO / "data" / "ner"
PROBE_TRAIN = ["uner-pt/train.iob2", "uner-zh/train.iob2"]
PROBE_DEV = ["uner-pt/dev.iob2", "uner-zh/dev.iob2"]
PROBE_STEPS = 500
# A tiny xlmr_ner trained end to end (configs/ner-tiny.cfg on UNER pt), built
# once under <checkpoints>/ner-tiny-trained for the precision systems' fidelity.
TRAINED_TINY = "ner-tiny-trained"
TRAINED_TINY_STEPS = 300
# language code -> NTREX-128 file name part
LANGUAGES = {
    "en": "eng", "es": "spa", "pt": "por", "ru": "rus",
    "ar": "arb", "hi": "hin", "zh": "zho-CN", "ja": "jpn",
}
LONG_LANGUAGES = ["en", "zh", "ru", "hi", "es", "ar"]
NO_SPACES = {"zh", "ja"}
SHORT_WORDS = (40, 120)
LONG_WORDS = 1000
LIMIT_WINDOW = 510  # pieces per window without <s> and </s>
LIMIT_BATCH = 8  # windows per forward pass in `limit`
HF_STRIDE = 128  # overlap (pieces) of HF token-classification's chunks
TOP_K = 5
# Question answering: HF's pipeline defaults, passed explicitly to both sides.
QA_OPTIONS = {
    "top_k": 1, "doc_stride": 128, "max_seq_len": 384, "max_question_len": 64,
    "max_answer_len": 15, "handle_impossible_answer": False,
}
QA_DIR = REPO / "data" / "qa"
# source -> (file under data/qa, language, article title or None for all).
# Not XQuAD th: the checkpoint's tokenizer (trained on data/text, 2 Thai lines)
# cuts Thai into about one piece per character (2773 pieces for the 2781
# non-space characters of the European_Union_law paragraph), far more than
# xlm-roberta-base's tokenizer, so Thai contexts would weigh more than they should.
QA_SOURCES = {
    "xquad-en": ("xquad/xquad.en.json", "en", None),
    "xquad-es": ("xquad/xquad.es.json", "es", None),
    "xquad-zh": ("xquad/xquad.zh.json", "zh", None),
    "xquad-ar": ("xquad/xquad.ar.json", "ar", None),
    "xquad-hi": ("xquad/xquad.hi.json", "hi", None),
    "squad2-en": ("squad-v2-en/sample.json", "en", None),
    "squad-es": ("squad-es-v2/dev.json", "es", None),
}
QA_SCORE_TOLERANCE = 1e-4
PRECISIONS = {"xlmr_ner_bf16": "bf16", "xlmr_ner_int8": "int8"}
# system -> the system of the same run it is compared with (speed and outputs)
COMPARE = {"xlmr_qa": "hf_qa", "xlmr_qa_ask": "hf_qa",
           "xlmr_ner_bf16": "xlmr_ner", "xlmr_ner_int8": "xlmr_ner"}

# key: (label, texts it reads, reference system of its ratio, description)
SYSTEMS: Dict[str, Tuple[str, str, str, str]] = {
    "limit": ("raw forward, fp32", "plain", "limit",
              "XLMRobertaModel in inference_mode, pre-tokenised, 510-piece windows, "
              "batches of 8 sorted by length"),
    "limit_unpadded": ("raw forward, fp32, one window per call", "plain", "limit",
                       "limit with batches of 1 window: no padding"),
    "limit_bf16": ("raw forward, bf16 autocast", "plain", "limit",
                   "limit under torch.autocast('cpu', dtype=torch.bfloat16)"),
    "limit_int8": ("raw forward, int8 dynamic", "plain", "limit",
                   "limit after torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, qint8)"),
    "spacy_trf_ner": ("spacy-transformers + ner", "plain", "limit",
                      "transformer (TransformerModel.v3, strided_spans 128/96, use_fast) + "
                      "ner (TransitionBasedParser.v2, TransformerListener.v1 reduce_mean); "
                      "nlp.pipe"),
    "hf_ner": ("HF token-classification", "plain", "limit",
               "pipeline('token-classification', aggregation_strategy='simple', "
               f"stride={HF_STRIDE}), batch_size 1"),
    "xlmr_ner": ("xlmr_ner", "plain", "limit",
                 "from_huggingface(..., 'token-classification'); nlp.pipe"),
    "hf_textcat": ("HF text-classification", "plain", "limit",
                   "pipeline('text-classification', top_k=None, truncation=True), batch_size 1"),
    "xlmr_textcat": ("xlmr_textcat", "plain", "limit",
                     "from_huggingface(..., 'text-classification'); nlp.pipe"),
    "limit_masked": ("raw forward, fp32 (mask texts)", "masked", "limit_masked",
                     "limit on the fill-mask texts"),
    "hf_fill_mask": ("HF fill-mask", "masked", "limit_masked",
                     f"pipeline('fill-mask', top_k={TOP_K}), batch_size 1"),
    "xlmr_fill_mask": ("xlmr_fill_mask", "masked", "limit_masked",
                       f"from_huggingface(..., 'fill-mask'), top_k {TOP_K}; nlp.pipe"),
    "xlmr_ner_bf16": ("xlmr_ner, bf16", "plain", "limit",
                      "xlmr_ner with encoder_config inference_precision='bf16'; nlp.pipe"),
    "xlmr_ner_int8": ("xlmr_ner, int8", "plain", "limit",
                      "xlmr_ner with encoder_config inference_precision='int8'; nlp.pipe"),
    "limit_qa": ("raw forward, fp32 (QA pair windows)", "qa", "limit_qa",
                 "limit on HF's question/context windows (384 positions, stride 128), "
                 "batches of 8 sorted by length"),
    "hf_qa": ("HF question-answering", "qa", "limit_qa",
              "pipeline('question-answering'), the pairs as lists, HF's default options, "
              "batch_size 1"),
    "xlmr_qa": ("xlmr_qa, nlp.pipe", "qa", "limit_qa",
                "from_huggingface(..., 'question-answering'); Docs with doc._.qa_questions; "
                "nlp.pipe"),
    "xlmr_qa_ask": ("xlmr_qa, qa.ask", "qa", "limit_qa",
                    "from_huggingface(..., 'question-answering'); "
                    "qa.ask(context, questions) per context"),
}
REFERENCES = ("limit", "limit_masked", "limit_qa")
# HF's fill-mask pipeline neither windows nor truncates: a doc of more than 512
# pieces fails ("The expanded size of the tensor (1715) must match the existing
# size (514)", transformers 4.53). So no fill-mask on long docs.
SKIP = {("long", "limit_masked"), ("long", "hf_fill_mask"), ("long", "xlmr_fill_mask")}


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------


def build_checkpoints(root: Path, size: str, seed: int) -> Dict[str, Path]:
    """The bare encoder and the four HF task models, sharing encoder weights,
    under ``root/<head>``; built once. Heads missing from an existing
    directory are added with the saved encoder's weights."""
    import shutil

    dirs = {head: root / head for head in HEADS}
    missing = [head for head in HEADS if not (dirs[head] / "config.json").exists()]
    if not missing:
        return dirs
    import torch
    from transformers import (
        XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaForQuestionAnswering,
        XLMRobertaForSequenceClassification, XLMRobertaForTokenClassification,
        XLMRobertaModel, XLMRobertaTokenizerFast,
    )

    from spacy_xlmr.checkpoints import build_checkpoint, shipped_texts

    start = time.perf_counter()
    if "encoder" in missing:
        print(f"Building the {size} checkpoints in {root}", flush=True)
        missing = list(HEADS)  # a new encoder: every head gets its weights
        small_vocab = root / "_small-vocab"
        build_checkpoint(small_vocab, shipped_texts(), size=size, seed=seed)
        tokenizer = XLMRobertaTokenizerFast.from_pretrained(str(small_vocab))
        encoder = XLMRobertaModel.from_pretrained(str(small_vocab), add_pooling_layer=False)
        n_pieces = encoder.config.vocab_size
        torch.manual_seed(seed)
        # New rows: the model's own init (normal, std 0.02), like the trained ones'.
        encoder.resize_token_embeddings(VOCAB_SIZE, mean_resizing=False)
        assert encoder.config.vocab_size == VOCAB_SIZE
        encoder.save_pretrained(str(dirs["encoder"]))
        tokenizer.save_pretrained(str(dirs["encoder"]))
        shutil.rmtree(small_vocab)
        build_info = {"size": size, "seed": seed, "tokenizer_pieces": n_pieces,
                      "vocab_size": VOCAB_SIZE}
    else:
        print(f"Adding {', '.join(missing)} to the checkpoints in {root}", flush=True)
        tokenizer = XLMRobertaTokenizerFast.from_pretrained(str(dirs["encoder"]))
        encoder = XLMRobertaModel.from_pretrained(str(dirs["encoder"]), add_pooling_layer=False)
        info_path = root / "build.json"
        build_info = json.loads(info_path.read_text(encoding="utf8")) if info_path.exists() else {}
    state = encoder.state_dict()
    base = encoder.config.to_dict()
    for k in ("architectures", "id2label", "label2id", "num_labels", "problem_type"):
        base.pop(k, None)
    heads = {  # the order fixes each head's seed
        "token-classification": (XLMRobertaForTokenClassification, NER_TAGS, None),
        "text-classification": (
            XLMRobertaForSequenceClassification, TEXTCAT_LABELS, "single_label_classification",
        ),
        "fill-mask": (XLMRobertaForMaskedLM, None, None),
        "question-answering": (XLMRobertaForQuestionAnswering, None, None),
    }
    for i, (head, (cls, labels, problem_type)) in enumerate(heads.items()):
        if head not in missing:
            continue
        extra = {}
        if labels:
            extra = {
                "id2label": dict(enumerate(labels)),
                "label2id": {label: j for j, label in enumerate(labels)},
            }
        if problem_type:
            extra["problem_type"] = problem_type
        config = XLMRobertaConfig(**{**base, **extra})
        torch.manual_seed(seed + 1 + i)
        model = cls(config)
        model.roberta.load_state_dict(state, strict=True)
        if head == "fill-mask":  # the decoder is tied to the (loaded) embeddings
            assert model.lm_head.decoder.weight.data_ptr() == (
                model.roberta.embeddings.word_embeddings.weight.data_ptr()
            )
        model.save_pretrained(str(dirs[head]))
        tokenizer.save_pretrained(str(dirs[head]))
        del model
    key = "build_s" if "encoder" in missing else f"added_{'+'.join(missing)}_s"
    build_info[key] = time.perf_counter() - start
    (root / "build.json").write_text(json.dumps(build_info, indent=2), encoding="utf8")
    return dirs


def read_iob2(path: Path) -> List[Tuple[str, List[Tuple[int, int, str]]]]:
    """(text, [(start_char, end_char, tag)]) per sentence of a UNER .iob2
    file; the tokens are found in order in the ``# text`` line."""
    sentences = []
    text, tokens = None, []
    for line in path.read_text(encoding="utf8").splitlines():
        if line.startswith("# text = "):
            text = line[len("# text = "):]
        elif line.startswith("#"):
            continue
        elif not line.strip():
            if tokens and text is not None:
                sentences.append((text, tokens))
            text, tokens = None, []
        else:
            cols = line.split("\t")
            tokens.append((cols[1], cols[2]))
    if tokens and text is not None:
        sentences.append((text, tokens))
    out = []
    for text, toks in sentences:
        cursor, spans = 0, []
        for tok, tag in toks:
            start = text.find(tok, cursor)
            if start < 0:
                break
            cursor = start + len(tok)
            spans.append((start, cursor, tag))
        else:
            out.append((text, spans))
    return out


def bio_spans(tags: List[str]) -> set:
    """(start, end, label) token spans of a BIO sequence; an I- that doesn't
    continue an entity of its type starts one."""
    spans, start, label = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        if tag == "O" or tag.startswith("B-") or (tag.startswith("I-") and tag[2:] != label):
            if start is not None:
                spans.add((start, i, label))
            start, label = (i, tag[2:]) if tag != "O" else (None, None)
    return spans


def build_trained_tiny(
    root: Path, seed: int, threads: int, xlmr_src: Optional[Path] = None
) -> Path:
    """``root/ner-tiny-trained/model-best``: the NER project's recipe
    (projects/ner): a tiny XLM-R built from scratch (``build-checkpoint``,
    tokenizer trained on data/text), ``configs/ner-tiny.cfg`` trained for
    ``TRAINED_TINY_STEPS`` steps on data/ner/uner-pt (train; dev for
    model-best), in subprocesses with ``threads`` threads. Built once;
    ``trained.json`` holds its dev scores."""
    dest = root / TRAINED_TINY
    best = dest / "train" / "model-best"
    if (dest / "trained.json").exists():
        return best
    print(f"Training a tiny xlmr_ner in {dest}", flush=True)
    start = time.perf_counter()
    dest.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    if xlmr_src:  # the spacy_xlmr the workers import
        env["PYTHONPATH"] = os.pathsep.join(
            [str(xlmr_src.resolve()), *filter(None, [env.get("PYTHONPATH")])]
        )
    data = NER_DIR / "uner-pt"
    # The config of the measured revision (--xlmr-rev), else the working tree's.
    revision = xlmr_src / "REVISION" if xlmr_src else None
    config_source = "configs/ner-tiny.cfg (working tree)"
    config_text = (REPO / "configs" / "ner-tiny.cfg").read_text(encoding="utf8")
    if revision and revision.exists():
        sha = revision.read_text().strip()
        config_source = f"configs/ner-tiny.cfg at {sha}"
        config_text = subprocess.run(["git", "show", f"{sha}:configs/ner-tiny.cfg"], cwd=REPO,
                                     capture_output=True, text=True, check=True).stdout
    (dest / "ner-tiny.cfg").write_text(config_text, encoding="utf8")
    commands = [
        ["-m", "spacy_xlmr", "build-checkpoint", str(dest / "encoder"), "--size", "tiny",
         "--text-dir", str(TEXT_DIR), "--seed", str(seed)],
        ["-m", "spacy_xlmr", "convert-iob2", str(data / "train.iob2"), str(dest / "train.spacy")],
        ["-m", "spacy_xlmr", "convert-iob2", str(data / "dev.iob2"), str(dest / "dev.spacy")],
        ["-m", "spacy", "train", str(dest / "ner-tiny.cfg"), "--output", str(dest / "train"),
         "--paths.train", str(dest / "train.spacy"), "--paths.dev", str(dest / "dev.spacy"),
         "--paths.encoder", str(dest / "encoder"), "--training.max_steps", str(TRAINED_TINY_STEPS),
         # The schedule's length too (newer configs' max_steps refers to it).
         "--training.optimizer.learn_rate.total_steps", str(TRAINED_TINY_STEPS),
         "--system.seed", str(seed)],
    ]
    with (dest / "build.log").open("w", encoding="utf8") as log:
        for cmd in commands:
            # Not from REPO: `python -m` puts the working directory first on
            # sys.path, ahead of the --xlmr-rev export on PYTHONPATH.
            subprocess.run([sys.executable, *cmd], cwd=dest, env=env, stdout=log,
                           stderr=subprocess.STDOUT, check=True)
    meta = json.loads((best / "meta.json").read_text(encoding="utf8"))
    info = {"config": config_source, "steps": TRAINED_TINY_STEPS,
            "train": "data/ner/uner-pt/train.iob2", "dev": "data/ner/uner-pt/dev.iob2",
            "dev_scores": meta.get("performance"), "build_s": time.perf_counter() - start}
    (dest / "trained.json").write_text(json.dumps(info, indent=2), encoding="utf8")
    print(f"   trained tiny xlmr_ner: {json.dumps(info)}", flush=True)
    return best


def build_probe(root: Path, dirs: Dict[str, Path], seed: int, threads: int) -> Path:
    """``root/token-classification-probe``: the encoder of ``dirs["encoder"]``
    with a token-classification head trained on its frozen fp32 hidden states
    (first piece of each token, as xlmr_ner and HF read them) for the gold BIO
    tags of data/ner (UNER pt and zh train; multinomial logistic regression,
    full batch, Adam). Built once; ``probe.json`` holds its accuracy."""
    dest = root / PROBE_HEAD
    if (dest / "config.json").exists():
        return dest
    import torch
    from transformers import (
        XLMRobertaConfig, XLMRobertaForTokenClassification, XLMRobertaModel,
        XLMRobertaTokenizerFast,
    )

    print(f"Training the probe head in {dest}", flush=True)
    start = time.perf_counter()
    torch.set_num_threads(threads)
    tokenizer = XLMRobertaTokenizerFast.from_pretrained(str(dirs["encoder"]))
    encoder = XLMRobertaModel.from_pretrained(
        str(dirs["encoder"]), add_pooling_layer=False, attn_implementation="sdpa"
    ).eval()
    tag_ids = {tag: i for i, tag in enumerate(NER_TAGS)}

    def features(files: List[str]):
        sentences = [s for name in files for s in read_iob2(NER_DIR / name)]
        feats, gold, lengths = [], [], []
        order = sorted(range(len(sentences)), key=lambda k: len(sentences[k][0]))
        rows: Dict[int, Tuple] = {}
        for i in range(0, len(order), 16):
            batch = [sentences[k] for k in order[i:i + 16]]
            enc = tokenizer([text for text, _ in batch], return_offsets_mapping=True,
                            truncation=True, max_length=512, padding=True, return_tensors="pt")
            with torch.inference_mode():
                hidden = encoder(input_ids=enc["input_ids"],
                                 attention_mask=enc["attention_mask"]).last_hidden_state
            for j, (k, (_, spans)) in enumerate(zip(order[i:i + 16], batch)):
                offsets = enc["offset_mapping"][j].tolist()
                real = enc["attention_mask"][j].tolist()
                picked, tags = [], []
                for tok_start, tok_end, tag in spans:
                    for p, (a, b) in enumerate(offsets):  # specials and padding: (0, 0)
                        if real[p] and b > a and b > tok_start and a < tok_end:
                            picked.append(p)
                            tags.append(tag_ids[tag])
                            break
                rows[k] = (hidden[j, picked].clone(), tags)
        for k in range(len(sentences)):
            feats.append(rows[k][0])
            gold.extend(rows[k][1])
            lengths.append(len(rows[k][1]))
        return torch.cat(feats), torch.tensor(gold), lengths

    x_train, y_train, _ = features(PROBE_TRAIN)
    x_dev, y_dev, dev_lengths = features(PROBE_DEV)
    torch.manual_seed(seed)
    width = x_train.shape[1]
    clf = torch.nn.Linear(width, len(NER_TAGS))
    optimizer = torch.optim.Adam(clf.parameters(), lr=1e-2)
    # Class-balanced: unweighted, the probe predicts O nearly everywhere (the
    # random encoder's last hidden states carry little of the tokens' identity),
    # which leaves almost no entities to compare.
    counts = torch.bincount(y_train, minlength=len(NER_TAGS)).float()
    weights = torch.where(
        counts > 0, counts.sum() / (counts * (counts > 0).sum()).clamp(min=1), 1.0
    )
    for _ in range(PROBE_STEPS):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(clf(x_train), y_train, weight=weights)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        train_pred = clf(x_train).argmax(-1)
        dev_logits = clf(x_dev)
    dev_pred = dev_logits.argmax(-1).tolist()
    gold_spans, pred_spans, offset = set(), set(), 0
    for n, length in enumerate(dev_lengths):
        for span in bio_spans([NER_TAGS[t] for t in y_dev[offset:offset + length].tolist()]):
            gold_spans.add((n, *span))
        for span in bio_spans([NER_TAGS[t] for t in dev_pred[offset:offset + length]]):
            pred_spans.add((n, *span))
        offset += length
    top2 = dev_logits.topk(2, dim=-1).values
    hits = len(gold_spans & pred_spans)
    info = {
        "train_files": PROBE_TRAIN, "dev_files": PROBE_DEV, "steps": PROBE_STEPS,
        "class_weights": dict(zip(NER_TAGS, weights.tolist())),
        "train_tokens": len(y_train), "dev_tokens": len(y_dev),
        "train_loss": float(loss.detach()),
        "train_token_accuracy": float((train_pred == y_train).float().mean()),
        "dev_token_accuracy": float((dev_logits.argmax(-1) == y_dev).float().mean()),
        "dev_entity_p": hits / max(len(pred_spans), 1),
        "dev_entity_r": hits / max(len(gold_spans), 1),
        "dev_entity_f": 2 * hits / max(len(pred_spans) + len(gold_spans), 1),
        "dev_median_top2_margin": float((top2[:, 0] - top2[:, 1]).median()),
        "dev_max_abs_logit": float(dev_logits.abs().max()),
    }
    config = XLMRobertaConfig(**{
        **{k: v for k, v in encoder.config.to_dict().items()
           if k not in ("architectures", "id2label", "label2id", "num_labels", "problem_type")},
        "id2label": dict(enumerate(NER_TAGS)),
        "label2id": {label: j for j, label in enumerate(NER_TAGS)},
    })
    model = XLMRobertaForTokenClassification(config)
    model.roberta.load_state_dict(encoder.state_dict(), strict=True)
    with torch.no_grad():
        model.classifier.weight.copy_(clf.weight)
        model.classifier.bias.copy_(clf.bias)
    model.save_pretrained(str(dest))
    tokenizer.save_pretrained(str(dest))
    info["build_s"] = time.perf_counter() - start
    (dest / "probe.json").write_text(json.dumps(info, indent=2), encoding="utf8")
    print(f"   probe: {json.dumps(info)}", flush=True)
    return dest


# ---------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------


def count_words(text: str, lang: str) -> int:
    """Whitespace-separated words; in zh/ja, non-space characters."""
    if lang in NO_SPACES:
        return sum(1 for char in text if not char.isspace())
    return len(text.split())


def _join(lines: List[str], lang: str) -> str:
    return ("" if lang in NO_SPACES else " ").join(lines)


def read_lines(lang: str) -> List[str]:
    path = TEXT_DIR / f"ntrex128-{LANGUAGES[lang]}.txt"
    return [line.strip() for line in path.read_text(encoding="utf8").splitlines() if line.strip()]


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
    path, _, title = QA_SOURCES[source]
    data = json.loads((QA_DIR / path).read_text(encoding="utf8"))["data"]
    return [
        {"context": par["context"],
         "questions": [{"id": f"{source}/{qa['id']}", "question": qa["question"]}
                       for qa in par["qas"]]}
        for article in data if title is None or article["title"] == title
        for par in article["paragraphs"]
    ]


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
    for source, (path, lang, _) in QA_SOURCES.items():
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


# ---------------------------------------------------------------------------
# Worker: one system on one text set, in its own process
# ---------------------------------------------------------------------------


class PositionCounter:
    """A forward pre-hook for an ``XLMRobertaModel``: counts the positions
    (rows × padded length) it computes and how many of them are padding."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.rows = 0
        self.positions = 0
        self.real = 0
        self.max_len = 0

    def __call__(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids")
        if ids is None and args:
            ids = args[0]
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1:
            mask = args[1]
        self.calls += 1
        self.rows += int(ids.shape[0])
        self.positions += int(ids.numel())
        self.real += int(mask.sum()) if mask is not None else int(ids.numel())
        self.max_len = max(self.max_len, int(ids.shape[1]))

    def summary(self) -> Dict:
        return {
            "forward_calls": self.calls,
            "rows": self.rows,
            "positions": self.positions,
            "real_positions": self.real,
            "padding_share": 1 - self.real / self.positions if self.positions else None,
            "max_len": self.max_len,
        }


def find_encoder(root):
    """The ``XLMRobertaModel`` inside a torch module (or the module itself)."""
    from transformers import XLMRobertaModel

    for module in root.modules():
        if isinstance(module, XLMRobertaModel):
            return module
    raise ValueError(f"No XLMRobertaModel in {type(root).__name__}")


def memory_mb() -> Dict[str, float]:
    status = {}
    with open("/proc/self/status") as file_:
        for line in file_:
            if line.startswith(("VmRSS:", "VmHWM:")):
                status[line.split(":")[0]] = int(line.split()[1]) / 1024
    return status


def cpu_times() -> Tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot (/proc/stat)."""
    with open("/proc/stat") as file_:
        fields = [int(x) for x in file_.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # up to steal; guest time is already in user
    return (total - idle) / tick, total / tick


def wait_for_idle(max_wait: float, busy_below: float = 0.15, sample: float = 2.0) -> float:
    """Wait (at most ``max_wait`` seconds) until the machine's CPUs are less
    than ``busy_below`` busy over ``sample`` seconds, so that a timed run
    doesn't start while other jobs hold the CPUs it needs. Returns the time waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_wait:
        busy_start, total_start = cpu_times()
        time.sleep(sample)
        busy_end, total_end = cpu_times()
        if (busy_end - busy_start) / max(total_end - total_start, 1e-9) < busy_below:
            break
    return time.perf_counter() - start


def reset_peak_rss() -> bool:
    """Reset the peak RSS (VmHWM, ru_maxrss) to the current RSS (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as file_:
            file_.write("5")
        return True
    except OSError:
        return False


def setup_limit(dirs, docs, variant: str, batch_size: int = LIMIT_BATCH, qa: bool = False):
    import torch
    from transformers import AutoTokenizer, XLMRobertaModel

    model = XLMRobertaModel.from_pretrained(
        str(dirs["encoder"]), add_pooling_layer=False, attn_implementation="sdpa"
    ).eval()
    if variant == "int8":
        model = torch.ao.quantization.quantize_dynamic(
            model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
        )
    tokenizer = AutoTokenizer.from_pretrained(str(dirs["encoder"]), use_fast=True)
    windows = []
    if qa:  # the pair windows of HF's question-answering pipeline
        for item in docs:
            questions = [q["question"] for q in item["questions"]]
            for question_windows in qa_windows(tokenizer, questions, item["context"]):
                windows.extend(question_windows)
    else:
        for ids in tokenizer([d["text"] for d in docs], add_special_tokens=False)["input_ids"]:
            for start in range(0, max(len(ids), 1), LIMIT_WINDOW):
                windows.append([
                    tokenizer.cls_token_id, *ids[start:start + LIMIT_WINDOW],
                    tokenizer.sep_token_id,
                ])
    windows.sort(key=len)
    batches = []
    for i in range(0, len(windows), batch_size):
        rows = windows[i:i + batch_size]
        length = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for j, row in enumerate(rows):
            input_ids[j, :len(row)] = torch.tensor(row)
            mask[j, :len(row)] = 1
        batches.append((input_ids, mask))
    autocast = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if variant == "bf16" else nullcontext
    )

    def run():
        with torch.inference_mode(), autocast():
            for input_ids, mask in batches:
                model(input_ids=input_ids, attention_mask=mask)
        return {"windows": len(windows), "batches": len(batches)}

    return run, model


def ner_outputs(nlp, texts: List[str]) -> Dict:
    """The NER head's logits for every token and the entities, through the
    components' own ``pipe`` / ``predict`` / ``set_annotations`` (the
    entities are those ``nlp.pipe`` gives)."""
    ner = nlp.get_pipe("ner")
    docs = [nlp.make_doc(text) for text in texts]
    for name, proc in nlp.pipeline:
        if name == "ner":
            break
        docs = list(proc.pipe(docs))
    logits = ner.predict(docs)
    ner.set_annotations(docs, logits)
    return {
        "tags": list(ner.tags),
        "entities": [[[e.start_char, e.end_char, e.label_] for e in doc.ents] for doc in docs],
        "logits": [ner.model.ops.to_numpy(x).tolist() for x in logits],
    }


def setup_xlmr(dirs, docs, task: str, encoder_config: Optional[Dict] = None):
    from spacy_xlmr.load import from_huggingface

    head = {"token-classification": "token-classification",
            "text-classification": "text-classification", "fill-mask": "fill-mask"}[task]
    nlp = from_huggingface(
        str(dirs[head]), task, config={"top_k": TOP_K} if task == "fill-mask" else None,
        encoder_config=encoder_config,
    )
    texts = [d["text"] for d in docs]

    def run():
        out = list(nlp.pipe(texts))
        if task == "token-classification":
            return {"entities": sum(len(doc.ents) for doc in out)}
        if task == "text-classification":
            return {"docs_with_cats": sum(bool(doc.cats) for doc in out)}
        return {"masks_predicted": sum(len(doc._.fill_mask) for doc in out)}

    if task == "token-classification":
        def write_outputs(fidelity: bool) -> Optional[Dict]:
            """The random head's outputs, and with ``fidelity`` the probe
            head's (a second pipeline, same encoder settings)."""
            if not fidelity:
                return None
            outputs = {"benchmark_head": ner_outputs(nlp, texts)}
            if (dirs[PROBE_HEAD] / "config.json").exists():
                probe = from_huggingface(str(dirs[PROBE_HEAD]), task, encoder_config=encoder_config)
                outputs["probe_head"] = ner_outputs(probe, texts)
                del probe
            if (dirs[TRAINED_TINY] / "config.cfg").exists():
                import spacy

                overrides = {f"components.transformer.model.{k}": v
                             for k, v in (encoder_config or {}).items()}
                trained = spacy.load(dirs[TRAINED_TINY], config=overrides)
                outputs["trained_tiny"] = ner_outputs(trained, texts)
            return outputs

        run.write_outputs = write_outputs
    return run, nlp.get_pipe("transformer").encoder.torch_module


def qa_answer(answer: Dict) -> Dict:
    """An answer dict with plain Python values."""
    return {"answer": str(answer["answer"]), "start": int(answer["start"]),
            "end": int(answer["end"]), "score": float(answer["score"])}


def answers_digest(answers: Dict[str, Dict]) -> str:
    """A digest of the answers' text and offsets (not scores), to check that
    every pass gives the same answers."""
    import hashlib

    key = json.dumps(
        [[qid, a["answer"], a["start"], a["end"]] for qid, a in sorted(answers.items())],
        ensure_ascii=False,
    )
    return hashlib.sha1(key.encode("utf8")).hexdigest()[:16]


def setup_xlmr_qa(dirs, items, mode: str, encoder_config: Optional[Dict] = None):
    from spacy_xlmr.load import from_huggingface

    nlp = from_huggingface(
        str(dirs["question-answering"]), "question-answering", config=dict(QA_OPTIONS),
        encoder_config=encoder_config,
    )
    qa = nlp.get_pipe("qa")
    last: Dict[str, Dict] = {}

    def run():
        answers = {}
        if mode == "pipe":
            docs = []
            for item in items:
                doc = nlp.make_doc(item["context"])
                doc._.qa_questions = [dict(q) for q in item["questions"]]
                docs.append(doc)
            out = list(nlp.pipe(docs))
        else:
            out = [qa.ask(item["context"], [dict(q) for q in item["questions"]]) for item in items]
        for doc in out:
            for qid, ranked in doc._.qa_answers.items():
                answers[qid] = qa_answer(ranked[0])
        last.clear()
        last.update(answers)
        return {"answers": len(answers), "digest": answers_digest(answers)}

    run.write_outputs = lambda fidelity: {"answers": dict(last)}
    return run, nlp.get_pipe("transformer").encoder.torch_module


def setup_hf_qa(dirs, items):
    import torch
    from transformers import pipeline

    path = str(dirs["question-answering"])
    pipe = pipeline("question-answering", model=path, tokenizer=path, framework="pt", device=-1)
    ids = [q["id"] for item in items for q in item["questions"]]
    questions = [q["question"] for item in items for q in item["questions"]]
    contexts = [item["context"] for item in items for _ in item["questions"]]
    last: Dict[str, Dict] = {}

    def run():
        with torch.inference_mode():
            out = pipe(question=questions, context=contexts, **QA_OPTIONS)
        if isinstance(out, dict):  # one pair
            out = [out]
        # top_k 1: one dict per question (a list of them with top_k > 1)
        answers = {qid: qa_answer(a[0] if isinstance(a, list) else a) for qid, a in zip(ids, out)}
        last.clear()
        last.update(answers)
        return {"answers": len(answers), "digest": answers_digest(answers)}

    run.write_outputs = lambda fidelity: {"answers": dict(last)}
    return run, pipe.model


def setup_hf(dirs, docs, task: str):
    import torch
    from transformers import pipeline

    kwargs: Dict = {}
    if task == "token-classification":
        kwargs = {"aggregation_strategy": "simple", "stride": HF_STRIDE}
    elif task == "text-classification":
        kwargs = {"top_k": None, "truncation": True}
    elif task == "fill-mask":
        kwargs = {"top_k": TOP_K}
    path = str(dirs[task])
    pipe = pipeline(task, model=path, tokenizer=path, framework="pt", device=-1, **kwargs)
    texts = [d["text"] for d in docs]

    def run():
        with torch.inference_mode():
            out = pipe(texts)
        if task == "token-classification":
            return {"entities": sum(len(x) for x in out)}
        if task == "text-classification":
            return {"docs_with_cats": sum(bool(x) for x in out)}
        return {"masks_predicted": sum(
            len(x) if x and isinstance(x[0], list) else 1 for x in out
        )}

    return run, pipe.model


SPACY_TRF_CONFIG = """
[nlp]
lang = "xx"
pipeline = ["transformer","ner"]

[components]

[components.transformer]
factory = "transformer"
max_batch_items = 4096
set_extra_annotations = {"@annotation_setters":"spacy-transformers.null_annotation_setter.v1"}

[components.transformer.model]
@architectures = "spacy-transformers.TransformerModel.v3"
name = null
mixed_precision = false

[components.transformer.model.get_spans]
@span_getters = "spacy-transformers.strided_spans.v1"
window = 128
stride = 96

[components.transformer.model.grad_scaler_config]

[components.transformer.model.tokenizer_config]
use_fast = true

[components.transformer.model.transformer_config]

[components.ner]
factory = "ner"

[components.ner.model]
@architectures = "spacy.TransitionBasedParser.v2"
state_type = "ner"
extra_state_tokens = false
hidden_width = 64
maxout_pieces = 2
use_upper = false
nO = null

[components.ner.model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[components.ner.model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""


def setup_spacy_trf(dirs, docs):
    from spacy.training import Example
    from spacy.util import fix_random_seed, load_model_from_config
    from thinc.api import Config

    fix_random_seed(0)
    config = Config().from_str(SPACY_TRF_CONFIG)
    config["components"]["transformer"]["model"]["name"] = str(dirs["encoder"])
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    ner = nlp.get_pipe("ner")
    for label in sorted({tag[2:] for tag in NER_TAGS if tag != "O"}):
        ner.add_label(label)
    sample = [nlp.make_doc(d["text"]) for d in docs[:2]]
    nlp.initialize(lambda: [Example(doc, doc.copy()) for doc in sample])
    texts = [d["text"] for d in docs]

    def run():
        out = list(nlp.pipe(texts))
        return {"entities": sum(len(doc.ents) for doc in out)}

    return run, nlp.get_pipe("transformer").model.transformer  # spacy-transformers' model


def setup_system(system: str, dirs, docs, encoder_config: Optional[Dict] = None):
    if system == "limit" or system == "limit_masked":
        return setup_limit(dirs, docs, "fp32")
    if system == "limit_qa":
        return setup_limit(dirs, docs, "fp32", qa=True)
    if system == "hf_qa":
        return setup_hf_qa(dirs, docs)
    if system in ("xlmr_qa", "xlmr_qa_ask"):
        return setup_xlmr_qa(dirs, docs, "pipe" if system == "xlmr_qa" else "ask", encoder_config)
    if system in PRECISIONS:  # the worker put the precision in encoder_config
        return setup_xlmr(dirs, docs, "token-classification", encoder_config)
    if system == "limit_unpadded":
        return setup_limit(dirs, docs, "fp32", batch_size=1)
    if system == "limit_bf16":
        return setup_limit(dirs, docs, "bf16")
    if system == "limit_int8":
        return setup_limit(dirs, docs, "int8")
    if system == "spacy_trf_ner":
        return setup_spacy_trf(dirs, docs)
    task = {"ner": "token-classification", "textcat": "text-classification",
            "fill_mask": "fill-mask"}[system.split("_", 1)[1]]
    if system.startswith("hf_"):
        return setup_hf(dirs, docs, task)
    return setup_xlmr(dirs, docs, task, encoder_config)


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    system, set_name = args.worker
    out = args.output.resolve()
    root = args.checkpoints or out / f"checkpoint-{args.size}"
    dirs = {head: root / head for head in (*HEADS, PROBE_HEAD)}
    dirs[TRAINED_TINY] = root / TRAINED_TINY / "train" / "model-best"
    texts = json.loads((out / "texts.json").read_text(encoding="utf8"))
    docs = texts[set_name][SYSTEMS[system][1]]
    import spacy_xlmr

    result: Dict = {"system": system, "set": set_name, "threads": torch.get_num_threads(),
                    "spacy_xlmr": str(Path(spacy_xlmr.__file__).parent),
                    "loadavg_start": os.getloadavg()[0]}
    start = time.perf_counter()
    encoder_config = json.loads(args.xlmr_encoder_config) if args.xlmr_encoder_config else None
    if system in PRECISIONS:
        encoder_config = {**(encoder_config or {}), "inference_precision": PRECISIONS[system]}
    result["xlmr_encoder_config"] = encoder_config
    run, root = setup_system(system, dirs, docs, encoder_config)
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
    # Idle enough: the other jobs leave this process's threads their cores.
    busy_below = max(0.15, 1 - args.threads / (os.cpu_count() or 1) - 0.1)
    waits = [wait_for_idle(args.wait_idle, busy_below)] if args.wait_idle else []
    start = time.perf_counter()
    result["check"] = run()
    result["warmup_s"] = time.perf_counter() - start
    walls, cpus, others = [], [], []
    for _ in range(args.runs):
        if args.wait_idle:
            waits.append(wait_for_idle(args.wait_idle, busy_below))
        counter.reset()
        busy_start, total_start = cpu_times()
        start, cpu_start = time.perf_counter(), time.process_time()
        check = run()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu_start)
        busy_end, total_end = cpu_times()
        # Machine CPU time used by other processes, as a share of all CPU time.
        others_busy = max(0.0, (busy_end - busy_start) - cpus[-1])
        others.append(others_busy / max(total_end - total_start, 1e-9))
    assert check == result["check"], (check, result["check"])
    result["positions"] = counter.summary()
    result["runs_s"] = walls
    result["cpu_s"] = cpus
    result["other_processes_cpu_share"] = others
    result["idle_waits_s"] = waits
    result["median_s"] = statistics.median(walls)
    result["loadavg_end"] = os.getloadavg()[0]
    # Peak RSS of the inference (since the reset; setup included when the reset failed).
    result["peak_rss_inference_mb"] = memory_mb().get("VmHWM")
    result["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_rss_mb"] = max(result["peak_rss_setup_mb"], result["peak_rss_inference_mb"])
    if args.profile:
        import cProfile
        import io
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        run()
        profiler.disable()
        profile_dir = out / "profiles"
        profile_dir.mkdir(exist_ok=True)
        stem = profile_dir / f"{set_name}-{system}"
        profiler.dump_stats(str(stem) + ".prof")
        text = io.StringIO()
        for key in ("tottime", "cumulative"):
            pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(40)
        Path(str(stem) + ".txt").write_text(text.getvalue(), encoding="utf8")
        result["profile"] = str(stem) + ".txt"
    # Outputs for the driver's comparisons, after the memory was measured (the
    # fidelity pass loads a second pipeline).
    write_outputs = getattr(run, "write_outputs", None)
    outputs = write_outputs(args.fidelity) if write_outputs else None
    if outputs is not None:
        path = Path(args.worker_result).with_suffix(".outputs.json")
        path.write_text(json.dumps(outputs, ensure_ascii=False), encoding="utf8")
        result["outputs"] = str(path)
    Path(args.worker_result).write_text(json.dumps(result, indent=2), encoding="utf8")


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
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(args.threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    if args.xlmr_src:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(args.xlmr_src.resolve()), *filter(None, [env.get("PYTHONPATH")])]
        )
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


def summarize(result: Dict, docs: List[Dict], reference: Optional[Dict]) -> None:
    """Add words/s, the ratio to the reference and the piece accounting."""
    if "error" in result:
        return
    words = sum(d["words"] for d in docs)
    needed = sum(d["pieces"] + d.get("specials", 2) for d in docs)
    result["words"] = words
    result["words_per_s"] = words / result["median_s"]
    if docs and "questions" in docs[0]:
        questions = sum(len(d["questions"]) for d in docs)
        result["questions"] = questions
        result["questions_per_s"] = questions / result["median_s"]
        result["questions_per_cpu_s"] = questions / statistics.median(result["cpu_s"])
    result["cpu_per_wall"] = statistics.median(
        c / w for c, w in zip(result["cpu_s"], result["runs_s"])
    )
    result["other_cpu_share"] = statistics.median(result["other_processes_cpu_share"])
    # Throughput per CPU-second of this process: less sensitive to other jobs
    # than wall time when torch runs one thread (with more, waiting threads
    # spin and count as CPU time).
    result["words_per_cpu_s"] = words / statistics.median(result["cpu_s"])
    if SYSTEMS[result["system"]][2] == result["system"]:
        result["ratio_to_limit"] = 1.0
        result["cpu_ratio_to_limit"] = 1.0
    elif reference and "error" not in reference and "words_per_s" in reference:
        result["ratio_to_limit"] = result["words_per_s"] / reference["words_per_s"]
        result["cpu_ratio_to_limit"] = result["words_per_cpu_s"] / reference["words_per_cpu_s"]
    pos = result["positions"]
    # What the text needs: its pieces plus one <s> and </s> per doc (QA: the
    # pieces of each pair plus its 4 special tokens).
    result["needed_positions"] = needed
    result["computed_over_needed"] = pos["positions"] / result["needed_positions"]
    result["real_over_needed"] = pos["real_positions"] / result["needed_positions"]


def compare_answers(
    reference: Dict[str, Dict], answers: Dict[str, Dict], items: List[Dict]
) -> Dict:
    """Per question: the same top answer (text, start, end) and scores within
    ``QA_SCORE_TOLERANCE``; the questions that differ."""
    n = same_span = identical = 0
    score_diffs, rel_diffs, differing = [], [], []
    for item in items:
        for question, windows in zip(item["questions"], item["windows"]):
            qid = question["id"]
            ref, ans = reference.get(qid), answers.get(qid)
            n += 1
            if ref is None or ans is None:
                differing.append({"id": qid, "missing": ref is None and "reference" or "answer"})
                continue
            span = all(ref[k] == ans[k] for k in ("answer", "start", "end"))
            diff = abs(ref["score"] - ans["score"])
            if span:
                same_span += 1
                score_diffs.append(diff)
                rel_diffs.append(diff / max(abs(ref["score"]), abs(ans["score"]), 1e-30))
            if span and diff <= QA_SCORE_TOLERANCE:
                identical += 1
            else:
                differing.append({
                    "id": qid, "lang": item["lang"], "source": item["source"],
                    "question": question["question"], "windows": windows,
                    "context_pieces": item["context_pieces"], "reference": ref, "answer": ans,
                })
    return {
        "questions": n, "identical": identical, "identical_share": identical / max(n, 1),
        "same_span": same_span, "same_span_share": same_span / max(n, 1),
        "score_tolerance": QA_SCORE_TOLERANCE,
        "max_score_abs_diff_same_span": max(score_diffs, default=None),
        "max_score_rel_diff_same_span": max(rel_diffs, default=None),
        "differing": differing,
    }


def ner_fidelity(ref: Dict, red: Dict) -> Dict:
    """Agreement of reduced-precision NER outputs with fp32 ones (same docs,
    same tokens): entities, token argmax, logits and probabilities."""
    import numpy

    assert ref["tags"] == red["tags"], (ref["tags"], red["tags"])
    ref_ents = {(i, *e) for i, ents in enumerate(ref["entities"]) for e in map(tuple, ents)}
    red_ents = {(i, *e) for i, ents in enumerate(red["entities"]) for e in map(tuple, ents)}
    both = len(ref_ents & red_ents)
    a = numpy.concatenate([numpy.asarray(x, dtype="float64").reshape(-1, len(ref["tags"]))
                           for x in ref["logits"]])
    b = numpy.concatenate([numpy.asarray(x, dtype="float64").reshape(-1, len(ref["tags"]))
                           for x in red["logits"]])
    assert a.shape == b.shape, (a.shape, b.shape)

    def softmax(x):
        e = numpy.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    top2 = numpy.sort(a, -1)[:, -2:] if len(a) else numpy.zeros((0, 2))
    return {
        "tokens": int(a.shape[0]),
        "fp32_entities": len(ref_ents), "entities": len(red_ents), "both": both,
        "fp32_entities_kept": both / len(ref_ents) if ref_ents else None,
        "entities_in_fp32": both / len(red_ents) if red_ents else None,
        "entity_f": 2 * both / (len(ref_ents) + len(red_ents)) if ref_ents or red_ents else None,
        "token_argmax_agreement": float((a.argmax(-1) == b.argmax(-1)).mean()) if len(a) else None,
        "max_abs_logit_dev": float(numpy.abs(a - b).max()) if len(a) else None,
        "mean_abs_logit_dev": float(numpy.abs(a - b).mean()) if len(a) else None,
        "max_abs_prob_dev": float(numpy.abs(softmax(a) - softmax(b)).max()) if len(a) else None,
        "fp32_max_abs_logit": float(numpy.abs(a).max()) if len(a) else None,
        "fp32_logit_std": float(a.std()) if len(a) else None,
        "fp32_median_top2_margin": float(numpy.median(top2[:, 1] - top2[:, 0])) if len(a) else None,
    }


def compare(result: Dict, systems: Dict[str, Dict], docs: List[Dict]) -> None:
    """Speed and outputs of ``result`` against the system it is compared
    with (``COMPARE``), when that ran in this set."""
    key = result["system"]
    ref_key = COMPARE.get(key)
    ref = systems.get(ref_key) if ref_key else None
    if "error" in result or not ref or "error" in ref:
        return
    result["compared_with"] = ref_key
    result["speedup"] = ref["median_s"] / result["median_s"]
    result["cpu_speedup"] = statistics.median(ref["cpu_s"]) / statistics.median(result["cpu_s"])
    if not result.get("outputs") or not ref.get("outputs"):
        return
    mine = json.loads(Path(result["outputs"]).read_text(encoding="utf8"))
    theirs = json.loads(Path(ref["outputs"]).read_text(encoding="utf8"))
    if "answers" in mine:
        result["answers_vs_hf"] = compare_answers(theirs["answers"], mine["answers"], docs)
    else:
        result["fidelity"] = {
            head: ner_fidelity(theirs[head], mine[head]) for head in mine if head in theirs
        }


def export_library(
    rev: str, out: Path, paths: Tuple[str, ...] = ("spacy_xlmr", "pyproject.toml")
) -> Path:
    """Export ``paths`` (spacy_xlmr, and e.g. configs) at git revision ``rev``
    to ``out/spacy_xlmr-<sha>``, with a ``.dist-info`` holding that
    revision's entry points (spaCy finds factories through them; the first
    distribution on the path wins), so the workers measure that commit
    whatever the working tree or the editable install hold."""
    import io
    import tarfile
    import tomllib

    sha = subprocess.run(["git", "rev-parse", rev], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    dest = out / f"spacy_xlmr-{sha[:12]}"
    if (dest / "REVISION").exists() and all((dest / path).exists() for path in paths):
        return dest
    archive = subprocess.run(["git", "archive", sha, *paths], cwd=REPO,
                             capture_output=True, check=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    project = tomllib.loads((dest / "pyproject.toml").read_text(encoding="utf8"))["project"]
    dist = dest / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
        encoding="utf8",
    )
    groups = dict(project.get("entry-points", {}))
    if project.get("scripts"):
        groups["console_scripts"] = project["scripts"]
    (dist / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in eps.items()) + "\n"
        for group, eps in groups.items()
    ), encoding="utf8")
    (dest / "REVISION").write_text(sha + "\n", encoding="utf8")
    return dest


def library_state(xlmr_src: Optional[Path]) -> Dict:
    """Which spacy_xlmr the workers import, and the repository's commit."""
    def git(*cmd: str) -> str:
        proc = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True)
        return proc.stdout.strip()

    revision = xlmr_src / "REVISION" if xlmr_src else None
    return {
        "source": str(xlmr_src.resolve()) if xlmr_src else "installed (editable: the working tree)",
        "source_revision": revision.read_text().strip() if revision and revision.exists() else None,
        "repo_head": git("rev-parse", "HEAD"),
        "working_tree_changes_in_spacy_xlmr": (
            git("status", "--porcelain", "spacy_xlmr").splitlines()
        ),
    }


def fmt(x, spec: str = ".0f", scale: float = 1.0) -> str:
    return "–" if x is None else format(x * scale, spec)


def markdown_table(results: Dict) -> str:
    lines = [
        "| set | system | words/s | × limit | words/CPU-s | × limit (CPU) | peak RSS (MB) "
        "| RSS after load (MB) | inference peak (MB) | padding % "
        "| computed / needed positions | non-pad / needed | forward calls | median run (s) "
        "| CPU/wall | others' CPU % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for set_name, entry in results["sets"].items():
        for key, r in entry["systems"].items():
            label = f"`{key}`"
            if key.startswith("xlmr_") and r.get("xlmr_encoder_config"):
                label += " " + json.dumps(r["xlmr_encoder_config"]).replace("|", "/")
            if "error" in r:
                lines.append(f"| {set_name} | {label} | failed: {r['error']} |" + " |" * 14)
                continue
            pos = r["positions"]
            ref = SYSTEMS[key][2]
            ratio = fmt(r.get("ratio_to_limit"), ".2f")
            cpu_ratio = fmt(r.get("cpu_ratio_to_limit"), ".2f")
            if ref != "limit" and key != ref:
                ratio += f" (of `{ref}`)"
                cpu_ratio += f" (of `{ref}`)"
            lines.append(
                f"| {set_name} | {label} | {fmt(r['words_per_s'])} | {ratio} | "
                f"{fmt(r['words_per_cpu_s'])} | {cpu_ratio} | "
                f"{fmt(r['peak_rss_mb'])} | {fmt(r['rss_after_setup_mb'])} | "
                f"{fmt(r['peak_rss_inference_mb'])} | "
                f"{fmt(pos['padding_share'], '.1f', 100)} | "
                f"{fmt(r['computed_over_needed'], '.2f')} | "
                f"{fmt(r['real_over_needed'], '.2f')} | {pos['forward_calls']} | "
                f"{fmt(r['median_s'], '.1f')} | {fmt(r['cpu_per_wall'], '.2f')} | "
                f"{fmt(r['other_cpu_share'], '.0f', 100)} |"
            )
    return "\n".join(lines)


def qa_table(results: Dict) -> str:
    lines = [
        "| set | system | questions/s | × hf_qa | questions/CPU-s | × hf_qa (CPU) "
        "| × limit_qa (CPU) | peak RSS (MB) | padding % | computed / needed | forward calls "
        "| identical answers | same span | max score diff (same span) "
        "| max relative score diff |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for set_name, entry in results["sets"].items():
        for key, r in entry["systems"].items():
            if SYSTEMS[key][1] != "qa":
                continue
            if "error" in r:
                lines.append(f"| {set_name} | `{key}` | failed: {r['error']} |" + " |" * 12)
                continue
            cmp = r.get("answers_vs_hf") or {}
            n = cmp.get("questions")
            lines.append(
                f"| {set_name} | `{key}` | {fmt(r['questions_per_s'], '.2f')} | "
                f"{fmt(r.get('speedup'), '.2f') if key != 'hf_qa' else '1.00'} | "
                f"{fmt(r['questions_per_cpu_s'], '.2f')} | "
                f"{fmt(r.get('cpu_speedup'), '.2f') if key != 'hf_qa' else '1.00'} | "
                f"{fmt(r.get('cpu_ratio_to_limit'), '.2f')} | {fmt(r['peak_rss_mb'])} | "
                f"{fmt(r['positions']['padding_share'], '.1f', 100)} | "
                f"{fmt(r['computed_over_needed'], '.2f')} | {r['positions']['forward_calls']} | "
                + (
                    f"{cmp['identical']}/{n} | {cmp['same_span']}/{n} | "
                    f"{fmt(cmp['max_score_abs_diff_same_span'], '.1e')} | "
                    f"{fmt(cmp['max_score_rel_diff_same_span'], '.1e')} |"
                    if n else "– | – | – | – |"
                )
            )
    return "\n".join(lines)


def precision_table(results: Dict) -> str:
    lines = [
        "| set | system | words/CPU-s | × xlmr_ner (wall) | × xlmr_ner (CPU) | peak RSS (MB) "
        "| head | fp32 entities kept | entities in fp32 | entity F | token argmax agreement "
        "| max abs logit dev | mean abs logit dev | max abs prob dev | fp32 max abs logit "
        "| fp32 median top-2 margin |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for set_name, entry in results["sets"].items():
        for key, r in entry["systems"].items():
            if key not in PRECISIONS and key != "xlmr_ner":
                continue
            if "error" in r:
                lines.append(f"| {set_name} | `{key}` | failed: {r['error']} |" + " |" * 13)
                continue
            speed = (f"| {set_name} | `{key}` | {fmt(r['words_per_cpu_s'])} | "
                     f"{fmt(r.get('speedup', 1.0 if key == 'xlmr_ner' else None), '.2f')} | "
                     f"{fmt(r.get('cpu_speedup', 1.0 if key == 'xlmr_ner' else None), '.2f')} | "
                     f"{fmt(r['peak_rss_mb'])} |")
            fidelity = r.get("fidelity") or {}
            if not fidelity:
                lines.append(speed + " – |" + " |" * 9)
            for head, f in fidelity.items():
                lines.append(
                    speed + f" {head.replace('_head', '')} | "
                    f"{fmt(f['fp32_entities_kept'], '.1f', 100)}% "
                    f"({f['both']}/{f['fp32_entities']}) | "
                    f"{fmt(f['entities_in_fp32'], '.1f', 100)}% | "
                    f"{fmt(f['entity_f'], '.1f', 100)}% | "
                    f"{fmt(f['token_argmax_agreement'], '.2f', 100)}% | "
                    f"{fmt(f['max_abs_logit_dev'], '.2e')} | "
                    f"{fmt(f['mean_abs_logit_dev'], '.1e')} | "
                    f"{fmt(f['max_abs_prob_dev'], '.1e')} | "
                    f"{fmt(f['fp32_max_abs_logit'], '.2f')} | "
                    f"{fmt(f['fp32_median_top2_margin'], '.3f')} |"
                )
    return "\n".join(lines)


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
    dirs = build_checkpoints(root, args.size, args.seed)
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
        "systems": {k: {"label": v[0], "texts": v[1], "reference": v[2], "description": v[3]}
                    for k, v in SYSTEMS.items()},
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
            docs = texts[set_name][SYSTEMS[system][1]]
            summarize(r, docs, entry["systems"].get(SYSTEMS[system][2]))
            compare(r, entry["systems"], docs)
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
    table = markdown_table(results)
    if any(SYSTEMS[k][1] == "qa" for e in results["sets"].values() for k in e["systems"]):
        table += "\n\nQuestion answering:\n\n" + qa_table(results)
    if args.fidelity:
        table += "\n\nReduced precision (xlmr_ner):\n\n" + precision_table(results)
    (out / "results.md").write_text(table + "\n", encoding="utf8")
    print()
    print(table)
    print(f"\nTotal wall time: {results['total_wall_s']:.0f} s; results in {out / 'results.json'}")


if __name__ == "__main__":
    main()
