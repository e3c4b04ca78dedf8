"""What each of speed.py's systems runs: ``setup_*(dirs, docs,
encoder_config, **options)`` loads the system and returns ``(run, module)``:
``run()`` does one pass over the docs and returns a check value (the same
every pass), ``module`` holds the XLMRobertaModel whose positions are
counted. ``encoder_config`` (from_huggingface's) applies to the spacy_xlmr
systems only. A ``run.write_outputs(fidelity)`` gives the outputs the
driver compares between systems."""
import json
from contextlib import nullcontext
from typing import Dict, List, Optional

from .checkpoints import NER_TAGS
from .fidelity import PROBE_HEAD, TRAINED_TINY
from .speed_texts import QA_OPTIONS, qa_windows

LIMIT_WINDOW = 510  # pieces per window without <s> and </s>
LIMIT_BATCH = 8  # windows per forward pass in `limit`
HF_STRIDE = 128  # overlap (pieces) of HF token-classification's chunks
TOP_K = 5


def setup_limit(dirs, docs, encoder_config=None, *, variant: str = "fp32",
                batch_size: int = LIMIT_BATCH, qa: bool = False):
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


def setup_xlmr(dirs, docs, encoder_config: Optional[Dict] = None, *, task: str):
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


def setup_xlmr_qa(dirs, items, encoder_config: Optional[Dict] = None, *, mode: str):
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


def setup_hf_qa(dirs, items, encoder_config=None):
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


def setup_hf(dirs, docs, encoder_config=None, *, task: str):
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


def setup_spacy_trf(dirs, docs, encoder_config=None):
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
