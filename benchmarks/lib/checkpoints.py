"""The benchmarks' random XLM-R checkpoints, built once and reused.

All come from ``spacy_xlmr.checkpoints.build_checkpoint`` (random weights, a
SentencePiece vocabulary of about 8k pieces trained on ``data/text``).
"""
import json
import shutil
import time
from pathlib import Path
from typing import Dict, List

VOCAB_SIZE = 250002  # xlm-roberta-base's embedding rows
NER_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
TEXTCAT_LABELS = [  # the SIB-200 topics
    "science/technology", "travel", "politics", "sports", "health",
    "entertainment", "geography",
]
HEADS = ("encoder", "token-classification", "text-classification", "fill-mask",
         "question-answering")


def tiny_checkpoint(path: Path, seed: int = 0, verbose: bool = True) -> Path:
    """``build_checkpoint(path, shipped_texts(), size="tiny", seed=seed)``
    unless ``path`` already holds a checkpoint."""
    if not (path / "config.json").exists():
        from spacy_xlmr.checkpoints import build_checkpoint, shipped_texts

        if verbose:
            print(f"Building tiny checkpoint in {path}", flush=True)
        build_checkpoint(path, shipped_texts(), size="tiny", seed=seed)
    return path


def build_checkpoints(out: Path, sizes: List[str], seed: int, full_vocab: bool) -> Dict[str, Path]:
    """``out/checkpoint-<size>`` (``-fullvocab`` with the embeddings resized to
    xlm-roberta-base's rows) for each size, built once."""
    from spacy_xlmr.checkpoints import build_checkpoint, shipped_texts

    dirs = {}
    for size in sizes:
        path = out / (f"checkpoint-{size}" + ("-fullvocab" if full_vocab else ""))
        if not (path / "config.json").exists():
            print(f"Building the {size} checkpoint in {path}", flush=True)
            start = time.perf_counter()
            build_checkpoint(path, shipped_texts(), size=size, seed=seed)
            if full_vocab:
                import torch
                from transformers import XLMRobertaModel

                model = XLMRobertaModel.from_pretrained(str(path), add_pooling_layer=False)
                torch.manual_seed(seed)
                # Rows the tokenizer never produces: only their memory (and
                # the optimizer's work on them) matters.
                model.resize_token_embeddings(VOCAB_SIZE, mean_resizing=False)
                model.save_pretrained(str(path))
            print(f"  {time.perf_counter() - start:.0f} s", flush=True)
        dirs[size] = path.resolve()
    return dirs


def build_task_checkpoints(root: Path, size: str, seed: int) -> Dict[str, Path]:
    """The bare encoder (embeddings resized to ``VOCAB_SIZE`` rows) and the
    four HF task models, sharing encoder weights, under ``root/<head>``;
    built once. Heads missing from an existing directory are added with the
    saved encoder's weights."""
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
