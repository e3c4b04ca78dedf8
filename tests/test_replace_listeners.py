"""nlp.replace_listeners: a component gets its own copy of the encoder,
predicts what it predicted before, trains on its own, saves, loads and is
sourced without the encoder component."""
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.training import Example

from spacy_xlmr.convert import read_iob2
from spacy_xlmr.encoder.listener import encoder_of
from spacy_xlmr.encoder.own_encoder import TOK2VEC_ENCODER

from .util import make_nlp

DATA = Path(__file__).parents[1] / "data" / "ner" / "uner-pt"
LISTENER = {
    "@architectures": "spacy-xlmr.TransformerListener.v1",
    "grad_factor": 1.0,
    "pooling": {"@layers": "reduce_mean.v1"},
}
NER_MODEL = {
    "@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner",
    "extra_state_tokens": False, "hidden_width": 16, "maxout_pieces": 2,
    "use_upper": False, "tok2vec": LISTENER,
}
# xlmr_ner, and spaCy's own ner listening to the encoder.
COMPONENTS = ("xlmr_ner", "spacy_ner")


@pytest.fixture(scope="module")
def examples():
    nlp = spacy.blank("xx")
    docs = list(read_iob2(DATA / "train.iob2", nlp.vocab, limit=32))
    return [Example(nlp.make_doc(doc.text), doc) for doc in docs]


def _trained(tiny_checkpoint, examples):
    spacy.util.fix_random_seed(0)
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="xlmr_ner")
    nlp.add_pipe("ner", name="spacy_ner", config={"model": NER_MODEL})
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(3):
        for start in range(0, len(examples), 16):
            nlp.update(examples[start : start + 16], sgd=optimizer)
    return nlp


def _docs(nlp, texts):
    """The texts as the encoder component leaves them, if there is one."""
    docs = [nlp.make_doc(text) for text in texts]
    if "transformer" in nlp.pipe_names:
        docs = list(nlp.get_pipe("transformer").pipe(docs))
    return docs


def _predictions(nlp, texts):
    """Each component's entities, alone after the encoder."""
    return {
        name: [
            [(e.start_char, e.end_char, e.label_) for e in nlp.get_pipe(name)(doc).ents]
            for doc in _docs(nlp, texts)
        ]
        for name in COMPONENTS
    }


def _hidden(nlp, name, texts):
    """The token vectors a component's model reads."""
    return nlp.get_pipe(name).model.get_ref("tok2vec").predict(_docs(nlp, texts))


@pytest.fixture(scope="module")
def replaced(tiny_checkpoint, examples):
    """A trained pipeline, its predictions and token vectors before the
    listeners were replaced, and the pipeline after."""
    nlp = _trained(tiny_checkpoint, examples)
    texts = [eg.text for eg in examples[:12]] + ["", "Lisboa " * 40]
    before = _predictions(nlp, texts)
    hidden = {name: _hidden(nlp, name, texts) for name in COMPONENTS}
    for name in COMPONENTS:
        nlp.replace_listeners("transformer", name, ["model.tok2vec"])
    return nlp, texts, before, hidden


def test_replaced_components_predict_what_they_predicted(replaced):
    nlp, texts, before, hidden = replaced
    assert nlp.get_pipe("transformer").listening_components == []
    assert any(before["xlmr_ner"]) and any(before["spacy_ner"])  # not trivially equal
    for name in COMPONENTS:
        config = nlp.config["components"][name]["model"]["tok2vec"]
        assert config["@architectures"] == TOK2VEC_ENCODER
        assert config["encoder"]["name"] == nlp.config["components"]["transformer"]["model"]["name"]
        for a, b in zip(hidden[name], _hidden(nlp, name, texts)):
            numpy.testing.assert_allclose(a, b, atol=1e-6)
    assert _predictions(nlp, texts) == before


def test_replaced_components_round_trip_without_the_encoder(replaced, tmp_path):
    nlp, texts, before, _ = replaced
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline", exclude=["transformer"])
    assert loaded.pipe_names == list(COMPONENTS)
    assert _predictions(loaded, texts) == before
    from_bytes = spacy.blank("xx").from_config(nlp.config)
    from_bytes.from_bytes(nlp.to_bytes())
    assert _predictions(from_bytes, texts) == before
    # No file outside the pipeline is read: the copy is in the component.
    saved = (tmp_path / "pipeline" / "xlmr_ner" / "model").read_bytes()
    assert b"model.safetensors" in saved


def test_sourced_component_keeps_its_predictions(replaced, tmp_path):
    nlp, texts, before, _ = replaced
    target = spacy.blank("xx")
    for name in COMPONENTS:
        target.add_pipe(name, source=nlp)
    assert _predictions(target, texts) == before


def test_replaced_component_trains_its_own_copy(tiny_checkpoint, examples):
    nlp = _trained(tiny_checkpoint, examples)
    shared = nlp.get_pipe("transformer").encoder.torch_module
    shared_before = shared.embeddings.word_embeddings.weight.detach().clone()
    nlp.replace_listeners("transformer", "xlmr_ner", ["model.tok2vec"])
    own = encoder_of(nlp.get_pipe("xlmr_ner").model.get_ref("tok2vec"))
    assert own.model is not nlp.get_pipe("transformer").model
    optimizer = nlp.resume_training()
    own_weight = own.word_embeddings
    own_before = own_weight.detach().clone()
    nlp.update(examples[:16], sgd=optimizer, exclude=["transformer", "spacy_ner"])
    assert not numpy.allclose(own_before.numpy(), own_weight.detach().numpy())
    numpy.testing.assert_array_equal(
        shared_before.numpy(), shared.embeddings.word_embeddings.weight.detach().numpy()
    )


def test_source_with_replace_listeners_in_a_config(replaced, tiny_checkpoint, tmp_path):
    """[components.ner] source = ... with replace_listeners, from a pipeline
    whose component still listens to the encoder."""
    _, texts, _, _ = replaced
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="xlmr_ner")
    nlp.get_pipe("xlmr_ner").add_label("LOC")
    nlp.initialize()
    nlp.to_disk(tmp_path / "source")
    expected = [[(e.start_char, e.end_char, e.label_) for e in nlp(t).ents] for t in texts]
    config = spacy.blank("xx").config
    config["nlp"]["pipeline"] = ["xlmr_ner"]
    config["components"]["xlmr_ner"] = {
        "source": str(tmp_path / "source"), "replace_listeners": ["model.tok2vec"],
    }
    target = spacy.util.load_model_from_config(config, auto_fill=True)
    assert target.pipe_names == ["xlmr_ner"]
    got = [[(e.start_char, e.end_char, e.label_) for e in target(t).ents] for t in texts]
    assert got == expected


HEAD_TEXTS = ["Maria mora em <mask>.", "O Porto é bonito.", "", "Lisboa " * 40]


def _head_outputs(nlp, name):
    proc = nlp.get_pipe(name)
    outputs = []
    for doc in _docs(nlp, HEAD_TEXTS):
        if name == "qa":
            doc = proc.ask(doc, "Quem mora em Lisboa?")
            outputs.append(doc._.qa_answers)
        else:
            doc = proc(doc)
            outputs.append(
                doc._.fill_mask if name == "fill_mask"
                else {label: round(score, 5) for label, score in doc.cats.items()}
            )
    return outputs


@pytest.mark.parametrize("factory,name", [
    ("xlmr_textcat", "textcat"), ("xlmr_fill_mask", "fill_mask"), ("xlmr_qa", "qa"),
])
def test_every_head_gets_its_own_encoder(tiny_checkpoint, tmp_path, factory, name):
    spacy.util.fix_random_seed(0)
    nlp = make_nlp(tiny_checkpoint)
    head = nlp.add_pipe(factory, name=name)
    if factory == "xlmr_textcat":
        head.add_label("A")
        head.add_label("B")
    nlp.initialize()
    before = _head_outputs(nlp, name)
    assert before[0]  # something to compare
    nlp.replace_listeners("transformer", name, ["model.tok2vec"])
    assert nlp.get_pipe("transformer").listening_components == []
    tok2vec = nlp.config["components"][name]["model"]["tok2vec"]
    assert tok2vec["@architectures"] == "spacy-xlmr.OwnEncoder.v1"
    assert _head_outputs(nlp, name) == before
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline", exclude=["transformer"])
    assert _head_outputs(loaded, name) == before
    from_bytes = spacy.blank("xx").from_config(nlp.config)
    from_bytes.from_bytes(nlp.to_bytes())
    assert _head_outputs(from_bytes, name) == before


def test_sourcing_a_listening_component_alone_names_the_fixes(replaced, tiny_checkpoint):
    """A head sourced without its encoder, into a pipeline with another
    encoder, refuses to run instead of running on the other encoder's weights."""
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="xlmr_ner")
    nlp.get_pipe("xlmr_ner").add_label("LOC")
    nlp.initialize()
    target = make_nlp(tiny_checkpoint)
    target.initialize()
    target.add_pipe("xlmr_ner", source=nlp)
    with pytest.raises(ValueError) as err:
        target("Maria mora em Lisboa.")
    message = str(err.value)
    assert message.startswith("[xlmr_ner] This component listens to the encoder of the pipeline")
    assert 'nlp.add_pipe("transformer", source=other_nlp)' in message
    assert 'replace_listeners("transformer", "xlmr_ner", ["model.tok2vec"])' in message
    # Sourcing the encoder with it works.
    target = spacy.blank("xx")
    target.add_pipe("transformer", source=nlp)
    target.add_pipe("xlmr_ner", source=nlp)
    assert target.get_pipe("transformer").listening_components == ["xlmr_ner"]


PACKAGED_PREDICT = """
import json, sys, spacy
nlp = spacy.load("xx_xlmr_replaced_test")
print(json.dumps([
    [(e.start_char, e.end_char, e.label_) for e in doc.ents]
    for doc in nlp.pipe(json.loads(sys.stdin.read()))
]))
"""


@pytest.mark.slow
def test_packaged_without_the_encoder_predicts_the_same(replaced, tmp_path):
    """spacy package of the replaced components alone (the encoder
    component left out): the wheel's pipeline predicts the same."""
    import json
    import os
    import subprocess
    import sys

    from .test_package import _package_and_install

    nlp, texts, _, _ = replaced
    nlp.to_disk(tmp_path / "full")
    alone = spacy.load(tmp_path / "full", exclude=["transformer"])
    alone.to_disk(tmp_path / "pipeline")
    expected = [
        [[e.start_char, e.end_char, e.label_] for e in doc.ents] for doc in alone.pipe(texts)
    ]
    assert any(expected)
    target = _package_and_install(tmp_path / "pipeline", tmp_path, "xlmr_replaced_test")
    result = subprocess.run(
        [sys.executable, "-c", PACKAGED_PREDICT], input=json.dumps(texts),
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(target)},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected


def test_a_pickle_planted_in_a_components_own_encoder_is_not_run(replaced, tmp_path):
    """The copy's files inside the component's model file are safetensors and
    JSON: weights swapped for a pickle are refused, never unpickled."""
    import pickle

    import srsly

    from spacy_xlmr.errors import DamagedPipelineError

    from .test_safe_loading import _Exploit

    nlp, _, _, _ = replaced
    nlp.to_disk(tmp_path / "pipeline")
    model_file = tmp_path / "pipeline" / "xlmr_ner" / "model"
    msg = srsly.msgpack_loads(model_file.read_bytes())
    planted = 0
    for shims in msg["shims"]:
        for i, shim_bytes in enumerate(shims):
            shim = srsly.msgpack_loads(shim_bytes)
            # The heads' own torch layers save torch zips ("PK..."), the
            # encoder copy a msgpack dict of its files.
            files = None if shim["state"].startswith(b"PK") else srsly.msgpack_loads(shim["state"])
            if isinstance(files, dict) and "model.safetensors" in files:
                del files["model.safetensors"]
                files["pytorch_model.bin"] = pickle.dumps(_Exploit(tmp_path / "pwned"))
                shim["state"] = srsly.msgpack_dumps(files)
                shims[i] = srsly.msgpack_dumps(shim)
                planted += 1
    assert planted == 1
    model_file.write_bytes(srsly.msgpack_dumps(msg))
    with pytest.raises(DamagedPipelineError, match="xlmr_ner"):
        spacy.load(tmp_path / "pipeline", exclude=["transformer"])
    assert not (tmp_path / "pwned").exists()


def test_a_head_sourced_into_a_pipeline_without_encoder_names_the_fixes(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="xlmr_ner")
    nlp.get_pipe("xlmr_ner").add_label("LOC")
    nlp.initialize()
    target = spacy.blank("xx")
    target.add_pipe("xlmr_ner", source=nlp)
    with pytest.raises(ValueError, match="needs that pipeline's encoder: source it too.*"
                       "replace_listeners"):
        target("Maria mora em Lisboa.")
    # Following the hint for untrained components instead is refused too.
    target.add_pipe("xlmr_transformer", name="transformer", first=True,
                    config={"model": {"name": str(tiny_checkpoint)}})
    target.get_pipe("transformer").initialize(lambda: [], nlp=target)
    with pytest.raises(ValueError, match="listens to the encoder of the pipeline it comes from"):
        target("Maria mora em Lisboa.")


def test_replace_listeners_before_initialize(tiny_checkpoint, examples):
    """As with spacy-transformers: the copy has no weights until
    nlp.initialize() loads them from the encoder's name."""
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="xlmr_ner")
    nlp.add_pipe("ner", name="spacy_ner", config={"model": NER_MODEL})
    for name in COMPONENTS:
        nlp.replace_listeners("transformer", name, ["model.tok2vec"])
    nlp.remove_pipe("transformer")
    optimizer = nlp.initialize(lambda: examples)
    losses = nlp.update(examples[:8], sgd=optimizer)
    assert losses["xlmr_ner"] > 0 and losses["spacy_ner"] > 0
    assert len(nlp(examples[0].text)) > 0


@pytest.mark.parametrize("factory,name", [
    ("xlmr_textcat", "textcat"), ("xlmr_fill_mask", "fill_mask"), ("xlmr_qa", "qa"),
])
def test_every_head_replaced_before_initialize(tiny_checkpoint, factory, name):
    nlp = make_nlp(tiny_checkpoint)
    head = nlp.add_pipe(factory, name=name)
    if factory == "xlmr_textcat":
        head.add_label("A")
    nlp.replace_listeners("transformer", name, ["model.tok2vec"])
    nlp.remove_pipe("transformer")
    nlp.initialize()
    assert _head_outputs(nlp, name)[0]
