"""What the scale-out tests share: pipelines saved once per test module, a
local Ray cluster on 127.0.0.1 shut down by its fixture, a time limit."""
import os
import signal
from pathlib import Path
from typing import Iterator

import pytest
import spacy

RAY_TIMEOUT_S = 240
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


@pytest.fixture(scope="module")
def tagger_spancat_pipeline(tiny_checkpoint, tmp_path_factory) -> Path:
    return save_tagger_spancat_pipeline(tiny_checkpoint, tmp_path_factory.mktemp("tag-span"))


@pytest.fixture(scope="module")
def ner_pipeline(token_classification_checkpoint, tmp_path_factory) -> Path:
    return save_ner_pipeline(token_classification_checkpoint, tmp_path_factory.mktemp("ner"))


@pytest.fixture(scope="module")
def multi_head_pipeline(token_classification_checkpoint, tmp_path_factory) -> Path:
    return save_multi_head_pipeline(
        token_classification_checkpoint, tmp_path_factory.mktemp("multi")
    )


@pytest.fixture
def time_limit() -> Iterator[None]:
    """Fail (instead of hanging CI) if a test takes more than RAY_TIMEOUT_S."""
    def expire(signum, frame):
        raise TimeoutError(f"the test took more than {RAY_TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(RAY_TIMEOUT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local Ray cluster with 2 CPUs on 127.0.0.1 (no dashboard or usage
    stats), shut down after the module's tests."""
    # Read when Ray is imported (see init_ray).
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray = pytest.importorskip("ray", reason="needs the ray extra: pip install spacy-xlmr[ray]")
    from spacy_xlmr.scale.apply import init_ray

    address = os.environ.pop("RAY_ADDRESS", None)
    assert init_ray(num_cpus=2)
    assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
    yield
    ray.shutdown()
    if address is not None:
        os.environ["RAY_ADDRESS"] = address
