"""Helpers of the scale-out tests: pipelines saved to disk."""
from pathlib import Path

import spacy

DATA = Path(__file__).parents[2] / "data" / "text"


def save_ner_pipeline(checkpoint: Path, path: Path) -> Path:
    from spacy_xlmr.load import from_huggingface

    from_huggingface(str(checkpoint), "token-classification").to_disk(path)
    return path


def save_multi_head_pipeline(checkpoint: Path, path: Path) -> Path:
    """Encoder + xlmr_ner (imported head) + xlmr_textcat + xlmr_qa +
    xlmr_fill_mask (random heads) on one encoder."""
    nlp = spacy.blank("xx")
    encoder = {"model": {"name": str(checkpoint)}}
    nlp.add_pipe("xlmr_transformer", name="transformer", config=encoder)
    nlp.add_pipe("xlmr_ner", name="ner")
    textcat = nlp.add_pipe("xlmr_textcat", name="textcat")
    for label in ("news", "sports", "science"):
        textcat.add_label(label)
    nlp.add_pipe("xlmr_qa", name="qa", config={"top_k": 2})
    nlp.add_pipe("xlmr_fill_mask", name="fill_mask", config={"top_k": 2})
    nlp.config["initialize"]["components"]["ner"] = {"hf_checkpoint": str(checkpoint)}
    nlp.initialize()
    nlp.to_disk(path)
    return path


def save_tagger_spancat_pipeline(checkpoint: Path, path: Path) -> Path:
    """Encoder + spaCy's own ``tagger`` (listening to the encoder) and
    ``spancat`` (its own tok2vec), trained for 20 steps on 16 shipped
    English, Portuguese, German and Spanish sentences to tag capitalised
    words, punctuation and the rest, and to find capitalised words after
    the first as NAME spans."""
    from spacy.tokens import Span
    from spacy.training import Example

    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("xx")
    nlp.add_pipe("xlmr_transformer", name="transformer",
                 config={"model": {"name": str(checkpoint)}})
    listener = {"@architectures": "spacy-transformers.TransformerListener.v1",
                "grad_factor": 1.0, "upstream": "transformer",
                "pooling": {"@layers": "reduce_mean.v1"}}
    nlp.add_pipe("tagger", config={"model": {
        "@architectures": "spacy.Tagger.v2", "nO": None, "normalize": False,
        "tok2vec": listener,
    }})
    nlp.add_pipe("spancat", config={"spans_key": "sc", "threshold": 0.5})
    examples, texts = [], []
    for name in ("eng", "por", "deu", "spa"):
        lines = (DATA / f"ntrex128-{name}.txt").read_text(encoding="utf8").splitlines()
        texts += [line for line in lines if line.strip()][:4]
    for text in texts:
        doc = nlp.make_doc(text)
        tags = ["CAP" if t.text[:1].isupper() else "PUNCT" if t.is_punct else "X" for t in doc]
        example = Example.from_dict(doc, {"tags": tags})
        example.reference.spans["sc"] = [Span(example.reference, t.i, t.i + 1, label="NAME")
                                         for t in example.reference
                                         if t.i > 0 and t.text[:1].isupper()]
        examples.append(example)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(20):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(path)
    return path
