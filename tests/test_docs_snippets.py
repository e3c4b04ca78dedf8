"""docs/adding-heads.md: every config snippet builds, initializes and runs
on a tiny encoder, and every Python snippet runs, doing what the page says.

Config snippets (```ini blocks): the first is the encoder; each head snippet
is merged into it (pipeline = transformer + the head). Python snippets
(```python blocks): the first builds the encoder; each head snippet runs
after it with ``get_examples`` defined. "xlm-roberta-base" and the trained
pipeline's path are replaced by local ones.

docs/architecture.md has no runnable snippets: its tests check that it has
none and that the files, functions and registered names it mentions exist."""
import re
from pathlib import Path
from typing import Dict, List

import numpy
import pytest
import spacy
from spacy.training import Example
from spacy.util import load_config, load_model_from_config
from thinc.api import Config

from spacy_xlmr.convert import convert_textcat, read_iob2, read_labels, read_squad, read_textcat
from spacy_xlmr.pipeline.transformer import LISTENER_CLASSES

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "adding-heads.md"
DATA = ROOT / "data"
SIB200 = DATA / "textcat" / "sib200-pt"
TRAINED = "training/ner-tiny/model-best"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def _blocks(lang: str) -> List[str]:
    return [m.group(2) for m in FENCE.finditer(DOC.read_text()) if m.group(1) == lang]


INI = _blocks("ini")
PYTHON = _blocks("python")
BASE_INI, BASE_PY = INI[0], PYTHON[0]
HEAD_INI = [block for block in INI[1:] if "source =" not in block]
(SOURCE_INI,) = [block for block in INI if "source =" in block]
HEAD_PY = [block for block in PYTHON[1:] if TRAINED not in block]
(TRAINED_PY,) = [block for block in PYTHON if TRAINED in block]
# Every head the page documents, by factory.
FACTORIES = ["xlmr_ner", "xlmr_textcat", "xlmr_qa", "xlmr_fill_mask", "ner", "textcat"]


def _factory(snippet: str) -> str:
    (factory,) = re.findall(r'^factory = "(\w+)"', snippet, re.M)
    return factory


def _add_pipe_factory(snippet: str) -> str:
    (factory,) = re.findall(r'add_pipe\("(\w+)"', snippet)
    return factory


def test_the_page_has_a_config_and_a_python_snippet_per_head():
    assert "[components.transformer]" in BASE_INI and "xlmr_transformer" in BASE_PY
    assert sorted(map(_factory, HEAD_INI)) == sorted(FACTORIES)
    assert sorted(map(_add_pipe_factory, HEAD_PY)) == sorted(FACTORIES)
    for snippet in HEAD_INI:
        assert 'upstream = "transformer"' in snippet, snippet
    for snippet in HEAD_PY:
        assert '"upstream": "transformer"' in snippet, snippet


@pytest.fixture(scope="module")
def nlp_data():
    """Examples with entities, with cats, with questions (and their texts)."""
    nlp = spacy.blank("xx")
    ner = [Example(nlp.make_doc(d.text), d)
           for d in read_iob2(DATA / "ner" / "uner-pt" / "train.iob2", nlp.vocab, limit=8)]
    cats = [Example(nlp.make_doc(d.text), d)
            for d in read_textcat(SIB200 / "train.tsv", nlp, limit=8,
                                  labels=read_labels(SIB200 / "labels.txt"))]
    qa = [Example(nlp.make_doc(d.text), d)
          for d in read_squad(DATA / "qa" / "squad-es-v2" / "train.json", nlp, limit=1)]
    return {"ner": ner, "cats": cats, "qa": qa}


def _examples_for(factory: str, data: Dict[str, List[Example]]) -> List[Example]:
    if factory in ("xlmr_ner", "ner"):
        return data["ner"]
    if factory in ("xlmr_textcat", "textcat"):
        return data["cats"]
    return data["qa"]


def _upstreams(nlp, name: str) -> List[str]:
    return [node.upstream_name for node in nlp.get_pipe(name).model.walk()
            if isinstance(node, LISTENER_CLASSES)]


def _check_outputs(nlp, name: str, factory: str) -> None:
    """The head writes what the page says it writes."""
    if factory == "xlmr_qa":
        doc = nlp.make_doc("Lisboa é a capital de Portugal.")
        doc._.qa_questions = [{"id": "capital", "question": "Qual é a capital?"}]
        doc = nlp(doc)
        answers = doc._.qa_answers["capital"]
        assert len(answers) == nlp.get_pipe(name).top_k
        assert all(set(answer) == {"answer", "start", "end", "score"} for answer in answers)
        assert {span.label_ for span in doc.spans["qa"]} <= {"capital"}
        if not nlp.get_pipe(name).handle_impossible_answer:  # every answer is a span
            assert len(doc.spans["qa"]) == len(answers)
    elif factory == "xlmr_fill_mask":
        doc = nlp("Lisboa é a <mask> de Portugal.")
        (predictions,) = doc._.fill_mask
        assert len(predictions) == nlp.get_pipe(name).top_k
        assert set(predictions[0]) == {"score", "token", "token_str", "sequence"}
        assert doc[3].text == "<mask>" and doc[3]._.fill_mask == predictions
    elif factory in ("xlmr_ner", "ner"):
        doc = nlp("Maria mora em Lisboa.")
        assert doc.has_annotation("ENT_IOB")
        assert {ent.label_ for ent in doc.ents} <= set(nlp.get_pipe(name).labels)
        if factory == "xlmr_ner":
            assert all(0.0 < ent._.ent_score <= 1.0 for ent in doc.ents)
    else:
        doc = nlp("A equipa ganhou o campeonato.")
        assert set(doc.cats) == set(read_labels(SIB200 / "labels.txt"))


@pytest.mark.parametrize("snippet", HEAD_INI, ids=_factory)
def test_config_snippet_builds_initializes_and_runs(snippet, tiny_checkpoint, nlp_data):
    factory = _factory(snippet)
    (name,) = re.findall(r"^\[components\.(\w+)\]", snippet, re.M)
    config = Config().from_str(f"{BASE_INI}\n[initialize]\n\n[initialize.components]\n\n{snippet}")
    config["nlp"]["pipeline"] = ["transformer", name]
    config["components"]["transformer"]["model"]["name"] = str(tiny_checkpoint)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.get_pipe_meta(name).factory == factory
    assert _upstreams(nlp, name) == ["transformer"]
    examples = _examples_for(factory, nlp_data)
    nlp.initialize(lambda: examples)
    assert nlp.get_pipe("transformer").listening_components == [name]
    losses = nlp.update(examples)
    assert losses[name] > 0
    _check_outputs(nlp, name, factory)


def _run_python(snippet: str, tiny_checkpoint: Path, **namespace) -> dict:
    setup = BASE_PY.replace('"xlm-roberta-base"', repr(str(tiny_checkpoint)))
    assert setup != BASE_PY
    exec(setup + snippet, namespace)
    return namespace


@pytest.mark.parametrize("snippet", HEAD_PY, ids=_add_pipe_factory)
def test_python_snippet_runs(snippet, tiny_checkpoint, nlp_data):
    factory = _add_pipe_factory(snippet)
    examples = _examples_for(factory, nlp_data)
    namespace = _run_python(snippet, tiny_checkpoint, get_examples=lambda: examples)
    nlp = namespace["nlp"]
    name = nlp.pipe_names[-1]
    assert nlp.pipe_names == ["transformer", name]
    assert nlp.get_pipe_meta(name).factory == factory
    assert _upstreams(nlp, name) == ["transformer"]
    assert nlp.get_pipe("transformer").listening_components == [name]
    _check_outputs(nlp, name, factory)


@pytest.fixture(scope="module")
def trained_ner(tiny_checkpoint, nlp_data, tmp_path_factory) -> Path:
    """A small trained xlmr_ner pipeline on disk (stands in for TRAINED)."""
    from .util import make_nlp

    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="ner")
    optimizer = nlp.initialize(lambda: nlp_data["ner"])
    for _ in range(2):
        nlp.update(nlp_data["ner"], sgd=optimizer)
    path = tmp_path_factory.mktemp("trained-ner")
    nlp.to_disk(path)
    return path


def _ner_logits(nlp, texts: List[str]) -> List[numpy.ndarray]:
    docs = [nlp.get_pipe("transformer")(nlp.make_doc(text)) for text in texts]
    return nlp.get_pipe("ner").predict(docs).logits


def test_adding_a_head_to_a_trained_pipeline_in_python(trained_ner, tiny_checkpoint, nlp_data):
    """The snippet trains the new head and leaves the trained NER's outputs
    exactly as they were (frozen encoder that still annotates)."""
    texts = [eg.text for eg in nlp_data["ner"]]
    before = _ner_logits(spacy.load(trained_ner), texts)
    examples = nlp_data["cats"]
    snippet = "import spacy\n" + TRAINED_PY.replace(TRAINED, str(trained_ner))
    namespace = {"get_examples": lambda: examples, "examples": examples}
    exec(snippet, namespace)
    nlp = namespace["nlp"]
    assert nlp.pipe_names == ["transformer", "ner", "textcat"]
    assert nlp.get_pipe("transformer").listening_components == ["ner", "textcat"]
    for old, new in zip(before, _ner_logits(nlp, texts)):
        numpy.testing.assert_array_equal(old, new)
    cats = nlp(texts[0]).cats
    assert set(cats) == set(read_labels(SIB200 / "labels.txt"))


def test_adding_a_head_to_a_trained_pipeline_with_spacy_train(trained_ner, nlp_data, tmp_path):
    """The config snippet, applied to configs/textcat-tiny.cfg as the page
    says, initializes only the new head, keeps the sourced weights and
    trains with `spacy train`'s loop while the NER stays as it was."""
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train

    for split in ("train", "dev"):
        convert_textcat(SIB200 / f"{split}.tsv", tmp_path / f"{split}.spacy", limit=16,
                        labels=read_labels(SIB200 / "labels.txt"))
    config = load_config(ROOT / "configs" / "textcat-tiny.cfg")
    snippet = Config().from_str(
        "[components]\n" + SOURCE_INI.replace(TRAINED, str(trained_ner))
    )
    config["nlp"]["pipeline"] = snippet["nlp"]["pipeline"]
    config["components"]["transformer"] = snippet["components"]["transformer"]
    config["components"]["ner"] = snippet["components"]["ner"]
    config["training"].update(snippet["training"])
    config["training"].update({"max_steps": 4, "eval_frequency": 4})
    config["paths"].update({"train": str(tmp_path / "train.spacy"),
                            "dev": str(tmp_path / "dev.spacy")})
    texts = [eg.text for eg in nlp_data["ner"]]
    before = _ner_logits(spacy.load(trained_ner), texts)

    nlp = init_nlp(config)
    assert nlp.pipe_names == ["transformer", "ner", "textcat"]
    assert nlp.get_pipe("textcat").labels == tuple(sorted(read_labels(SIB200 / "labels.txt")))
    train(nlp, None)
    for old, new in zip(before, _ner_logits(nlp, texts)):
        numpy.testing.assert_array_equal(old, new)
    assert set(nlp(texts[0]).cats) == set(read_labels(SIB200 / "labels.txt"))


# docs/architecture.md: prose and a tree, no runnable snippets; every file,
# function and registered name it mentions exists.
ARCHITECTURE = ROOT / "docs" / "architecture.md"
SOURCE_FILES = sorted((ROOT / "spacy_xlmr").rglob("*.py"))


def test_architecture_page_has_no_runnable_snippets():
    text = ARCHITECTURE.read_text()
    fences = re.findall(r"^```(\S*)$", text, re.M)
    assert fences and len(fences) % 2 == 0
    assert set(fences[0::2]) == {"text"}, fences[0::2]


def _mentioned_path(name: str) -> bool:
    """A path relative to the repository, the package, or docs/; a bare file
    name anywhere in the package."""
    name = name.rstrip("/")
    if any((base / name).exists() for base in (ROOT, ROOT / "spacy_xlmr", ROOT / "docs")):
        return True
    return "/" not in name and any(path.name == name for path in SOURCE_FILES)


def test_architecture_page_names_what_exists():
    text = ARCHITECTURE.read_text()
    paths = set(re.findall(r"[\w/-]+\.(?:py|md|toml)\b|\b\w+/(?=[`\s,)])", text))
    assert {"pipeline/qa.py", "encoder/own_encoder.py", "encoder/module.py"} <= paths
    missing = sorted(path for path in paths if not _mentioned_path(path))
    assert not missing, missing
    source = "\n".join(path.read_text() for path in SOURCE_FILES)
    source += (ROOT / "pyproject.toml").read_text()
    code = set(re.findall(r"`([^`\s]+)`", text))
    names = {c for c in code if re.fullmatch(r"[A-Za-z_]\w*", c) and ("_" in c or c[0].isupper())}
    assert {"backprop_pending", "listener_gradient_scales", "HeadPipe"} <= names
    missing = sorted(name for name in names if not re.search(rf"\b{name}\b", source))
    assert not missing, missing
    registered = {c for c in code if re.fullmatch(r"spacy-xlmr\.\w+\.v\d", c)}
    assert "spacy-xlmr.mlm_scorer.v1" in registered
    missing = sorted(name for name in registered if f'"{name}"' not in source)
    assert not missing, missing


def test_readme_links_the_architecture_page():
    assert "architecture.md" in (ROOT / "README.md").read_text()
