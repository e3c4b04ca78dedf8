"""Fidelity of reduced-precision NER (speed.py's xlmr_ner_bf16/int8): the
models whose outputs are compared with fp32 (a probe head on the benchmark
encoder, a tiny xlmr_ner trained end to end) and the comparison itself."""
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .checkpoints import NER_TAGS
from .corpora import iob2_char_spans
from .env import REPO, TEXT_DIR, thread_env

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
    # xlmr_src: the spacy_xlmr the workers import
    env = thread_env(threads, tokenizers_parallelism=False, xlmr_src=xlmr_src)
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
        sentences = [s for name in files for s in iob2_char_spans(NER_DIR / name)]
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
