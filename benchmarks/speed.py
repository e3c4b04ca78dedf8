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

The checkpoints (built once under ``--output``): an xlm-roberta-base-sized
XLM-R with random weights and a tokenizer trained on data/text
(``spacy_xlmr.checkpoints.build_checkpoint(size="base")``), its embedding
matrix resized to xlm-roberta-base's 250002 rows (the extra rows are never
produced by the tokenizer, but they are in fill-mask's output layer and in
memory), saved as a bare encoder and as XLMRobertaForTokenClassification (9 BIO
labels), XLMRobertaForSequenceClassification (7 labels) and
XLMRobertaForMaskedLM, all with the same encoder weights.

Words: whitespace-separated words; in zh and ja, where words are not separated
by spaces, every non-space character counts as a word. The same count is used
for every system.

Reported per system: words/s (wall time) and words per CPU-second of the
process (with one torch thread the better measure on a shared machine), both
also as a ratio to ``limit`` from the same run; peak RSS (VmHWM; the peak of
the whole process, after loading and of the inference alone); the positions
the XLMRobertaModel computed (a forward pre-hook counts rows x padded length
and the attention-mask zeros), as padding share and relative to what the texts
need (their pieces plus <s> and </s> once per doc), which shows window overlap.
Results: ``<output>/results.json`` and ``results.md``; per system
``<output>/runs/<set>-<system>.{json,log}``.

Usage (from the repository root):

    /work/venv/bin/python benchmarks/speed.py                     # everything
    /work/venv/bin/python benchmarks/speed.py --quick             # smoke test, ~3 min
    /work/venv/bin/python benchmarks/speed.py --systems limit xlmr_ner --sets short
    /work/venv/bin/python benchmarks/speed.py --systems xlmr_ner --profile
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

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from ner_uner import REPO, machine, versions  # noqa: E402

TEXT_DIR = REPO / "data" / "text"
VOCAB_SIZE = 250002  # xlm-roberta-base
NER_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
TEXTCAT_LABELS = [  # the SIB-200 topics
    "science/technology", "travel", "politics", "sports", "health",
    "entertainment", "geography",
]
HEADS = ("encoder", "token-classification", "text-classification", "fill-mask")
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

# key: (label, texts it reads, reference system of its ratio, description)
SYSTEMS: Dict[str, Tuple[str, str, str, str]] = {
    "limit": ("raw forward, fp32", "plain", "limit",
              "XLMRobertaModel in inference_mode, pre-tokenised, 510-piece windows, batches of 8 sorted by length"),
    "limit_unpadded": ("raw forward, fp32, one window per call", "plain", "limit",
                       "limit with batches of 1 window: no padding"),
    "limit_bf16": ("raw forward, bf16 autocast", "plain", "limit",
                   "limit under torch.autocast('cpu', dtype=torch.bfloat16)"),
    "limit_int8": ("raw forward, int8 dynamic", "plain", "limit",
                   "limit after torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, qint8)"),
    "spacy_trf_ner": ("spacy-transformers + ner", "plain", "limit",
                      "transformer (TransformerModel.v3, strided_spans 128/96, use_fast) + ner (TransitionBasedParser.v2, TransformerListener.v1 reduce_mean); nlp.pipe"),
    "hf_ner": ("HF token-classification", "plain", "limit",
               f"pipeline('token-classification', aggregation_strategy='simple', stride={HF_STRIDE}), batch_size 1"),
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
}
# HF's fill-mask pipeline neither windows nor truncates: a doc of more than 512
# pieces fails ("The expanded size of the tensor (1715) must match the existing
# size (514)", transformers 4.53). So no fill-mask on long docs.
SKIP = {("long", "limit_masked"), ("long", "hf_fill_mask"), ("long", "xlmr_fill_mask")}


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------


def build_checkpoints(root: Path, size: str, seed: int) -> Dict[str, Path]:
    """The bare encoder and the three HF task models, sharing encoder weights,
    under ``root/<head>``; built once."""
    import shutil

    dirs = {head: root / head for head in HEADS}
    if all((d / "config.json").exists() for d in dirs.values()):
        return dirs
    import torch
    from transformers import (
        XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaForSequenceClassification,
        XLMRobertaForTokenClassification, XLMRobertaModel, XLMRobertaTokenizerFast,
    )

    from spacy_xlmr.checkpoints import build_checkpoint, shipped_texts

    print(f"Building the {size} checkpoints in {root}", flush=True)
    start = time.perf_counter()
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
    state = encoder.state_dict()
    base = encoder.config.to_dict()
    for k in ("architectures", "id2label", "label2id", "num_labels", "problem_type"):
        base.pop(k, None)
    heads = {
        "token-classification": (XLMRobertaForTokenClassification, NER_TAGS, None),
        "text-classification": (
            XLMRobertaForSequenceClassification, TEXTCAT_LABELS, "single_label_classification",
        ),
        "fill-mask": (XLMRobertaForMaskedLM, None, None),
    }
    for i, (head, (cls, labels, problem_type)) in enumerate(heads.items()):
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
    shutil.rmtree(small_vocab)
    (root / "build.json").write_text(json.dumps({
        "size": size, "seed": seed, "tokenizer_pieces": n_pieces,
        "vocab_size": VOCAB_SIZE, "build_s": time.perf_counter() - start,
    }, indent=2), encoding="utf8")
    return dirs


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


def add_piece_counts(docs: List[Dict], tokenizer) -> None:
    """``pieces``: the doc's pieces without special tokens (what the text needs)."""
    ids = tokenizer([d["text"] for d in docs], add_special_tokens=False)["input_ids"]
    for doc, doc_ids in zip(docs, ids):
        doc["pieces"] = len(doc_ids)


def prepare_texts(out: Path, dirs: Dict[str, Path], n_short: int, n_long: int, seed: int) -> Dict:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(dirs["encoder"]), use_fast=True)
    docs = make_docs(n_short, n_long, seed)
    rng = random.Random(f"{seed}-masks")
    texts = {}
    for name, plain in docs.items():
        masked = [mask_doc(doc, rng) for doc in plain]
        add_piece_counts(plain, tokenizer)
        add_piece_counts(masked, tokenizer)
        texts[name] = {"plain": plain, "masked": masked}
    (out / "texts.json").write_text(json.dumps(texts, ensure_ascii=False, indent=1), encoding="utf8")
    return texts


def text_stats(docs: List[Dict]) -> Dict:
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


def setup_limit(dirs, docs, variant: str, batch_size: int = LIMIT_BATCH):
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
    for ids in tokenizer([d["text"] for d in docs], add_special_tokens=False)["input_ids"]:
        for start in range(0, max(len(ids), 1), LIMIT_WINDOW):
            windows.append(
                [tokenizer.cls_token_id, *ids[start:start + LIMIT_WINDOW], tokenizer.sep_token_id]
            )
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


def setup_xlmr(dirs, docs, task: str, encoder_config: Optional[Dict] = None):
    from spacy_xlmr.encoder.model import get_transformer
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

    return run, get_transformer(nlp.get_pipe("transformer").model)


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

    trf = nlp.get_pipe("transformer").model
    torch_models = [shim._model for node in trf.walk() for shim in node.shims]
    return run, torch_models[0]


def setup_system(system: str, dirs, docs, encoder_config: Optional[Dict] = None):
    if system == "limit" or system == "limit_masked":
        return setup_limit(dirs, docs, "fp32")
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
    dirs = {head: root / head for head in HEADS}
    texts = json.loads((out / "texts.json").read_text(encoding="utf8"))
    docs = texts[set_name][SYSTEMS[system][1]]
    import spacy_xlmr

    result: Dict = {"system": system, "set": set_name, "threads": torch.get_num_threads(),
                    "spacy_xlmr": str(Path(spacy_xlmr.__file__).parent),
                    "loadavg_start": os.getloadavg()[0]}
    start = time.perf_counter()
    encoder_config = json.loads(args.xlmr_encoder_config) if args.xlmr_encoder_config else None
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
        others.append(max(0.0, (busy_end - busy_start) - cpus[-1]) / max(total_end - total_start, 1e-9))
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
        return {"system": system, "set": set_name, "error": f"exit {proc.returncode}", "log_tail": tail,
                "process_wall_s": wall}
    result = json.loads(result_path.read_text(encoding="utf8"))
    result["process_wall_s"] = wall
    return result


def summarize(result: Dict, docs: List[Dict], reference: Optional[Dict]) -> None:
    """Add words/s, the ratio to the reference and the piece accounting."""
    if "error" in result:
        return
    words = sum(d["words"] for d in docs)
    needed = sum(d["pieces"] for d in docs)
    result["words"] = words
    result["words_per_s"] = words / result["median_s"]
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
    # What the text needs: its pieces plus one <s> and </s> per doc.
    result["needed_positions"] = needed + 2 * len(docs)
    result["computed_over_needed"] = pos["positions"] / result["needed_positions"]
    result["real_over_needed"] = pos["real_positions"] / result["needed_positions"]


def export_library(rev: str, out: Path) -> Path:
    """Export spacy_xlmr at git revision ``rev`` to ``out/spacy_xlmr-<sha>``,
    with a ``.dist-info`` holding that revision's entry points (spaCy finds
    factories through them; the first distribution on the path wins), so the
    workers measure that commit whatever the working tree or the editable
    install hold."""
    import io
    import tarfile
    import tomllib

    sha = subprocess.run(["git", "rev-parse", rev], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    dest = out / f"spacy_xlmr-{sha[:12]}"
    if (dest / "spacy_xlmr" / "__init__.py").exists():
        return dest
    archive = subprocess.run(["git", "archive", sha, "spacy_xlmr", "pyproject.toml"], cwd=REPO,
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
        "working_tree_changes_in_spacy_xlmr": git("status", "--porcelain", "spacy_xlmr").splitlines(),
    }


def fmt(x, spec: str = ".0f", scale: float = 1.0) -> str:
    return "–" if x is None else format(x * scale, spec)


def markdown_table(results: Dict) -> str:
    lines = [
        "| set | system | words/s | × limit | words/CPU-s | × limit (CPU) | peak RSS (MB) | RSS after load (MB) | inference peak (MB) "
        "| padding % | computed / needed positions | non-pad / needed | forward calls | median run (s) | CPU/wall | others' CPU % |",
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
                f"{fmt(pos['padding_share'], '.1f', 100)} | {fmt(r['computed_over_needed'], '.2f')} | "
                f"{fmt(r['real_over_needed'], '.2f')} | {pos['forward_calls']} | "
                f"{fmt(r['median_s'], '.1f')} | {fmt(r['cpu_per_wall'], '.2f')} | "
                f"{fmt(r['other_cpu_share'], '.0f', 100)} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS),
                        help=f"systems to run, of: {' '.join(SYSTEMS)}")
    parser.add_argument("--sets", nargs="+", default=["short", "long"], choices=["short", "long"])
    parser.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up run")
    parser.add_argument("--threads", type=int, default=2, help="torch/OpenMP threads per system")
    parser.add_argument("--short-docs", type=int, default=None, help="default 40, 5 per language (--quick: 8)")
    parser.add_argument("--long-docs", type=int, default=None, help="default 4: en, zh, ru, hi (--quick: 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None,
                        help="default benchmarks/output/speed (--quick: benchmarks/output/speed_quick)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny checkpoint (2 layers, width 64, still 250002 rows), 8 short and 2 long docs")
    parser.add_argument("--xlmr-src", type=Path, default=None,
                        help="directory holding the spacy_xlmr package to measure (put first on the "
                             "workers' PYTHONPATH), e.g. a `git archive` export of a commit; "
                             "default: the installed one")
    parser.add_argument("--xlmr-encoder-config", default=None,
                        help='JSON settings for the encoder of the xlmr_* systems (from_huggingface\'s '
                             'encoder_config), e.g. \'{"max_batch_pieces": 1024}\'')
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="directory with the checkpoints (default: <output>/checkpoint-<size>, "
                             "built there if missing)")
    parser.add_argument("--xlmr-rev", default=None,
                        help="measure spacy_xlmr at this git revision (e.g. HEAD): exported with its "
                             "entry points under --output and used as --xlmr-src")
    parser.add_argument("--wait-idle", type=float, default=0.0,
                        help="before the warm-up and each timed run, wait up to this many seconds "
                             "for the machine's CPUs to be idle enough (busy < max(15%%, 1 - threads/cores - 10%%) "
                             "over 2 s); 0: don't wait")
    parser.add_argument("--profile", action="store_true",
                        help="after the timed runs, one more run under cProfile: <output>/profiles/")
    # Internal: run one system in this process.
    parser.add_argument("--worker", nargs=2, metavar=("SYSTEM", "SET"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-result", help=argparse.SUPPRESS)
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

    start = time.perf_counter()
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.xlmr_rev:
        args.xlmr_src = export_library(args.xlmr_rev, out)
    if args.checkpoints:
        args.checkpoints = args.checkpoints.resolve()
    dirs = build_checkpoints(args.checkpoints or out / f"checkpoint-{args.size}", args.size, args.seed)
    texts = prepare_texts(out, dirs, n_short, n_long, args.seed)
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
        "sets": {},
    }
    results["machine"]["torch_threads"] = str(args.threads)
    # The references run first, so every ratio has its reference in this run.
    order = sorted(args.systems, key=lambda s: (s not in ("limit", "limit_masked"), list(SYSTEMS).index(s)))
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
            entry["systems"][system] = r
            if "error" in r:
                print(f"   FAILED ({r['error']}):\n{r['log_tail']}", flush=True)
            else:
                print(
                    f"   {r['words_per_s']:.0f} words/s, x{r.get('ratio_to_limit', float('nan')):.2f}, "
                    f"runs {['%.2f' % w for w in r['runs_s']]} s, peak RSS {r['peak_rss_mb']:.0f} MB, "
                    f"padding {100 * r['positions']['padding_share']:.1f}%, "
                    f"CPU/wall {r['cpu_per_wall']:.2f}, others' CPU {100 * r['other_cpu_share']:.0f}%",
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
