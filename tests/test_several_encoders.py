"""Several xlmr_transformer encoders in one pipeline: each listener reads the
encoder its ``upstream`` names ("*": the nearest one before its component),
in prediction, training and after a save/load round trip."""
import numpy
import pytest
import spacy
from spacy.training import Example

from spacy_xlmr.checkpoints import build_checkpoint, shipped_texts
from spacy_xlmr.encoder.data import SPACY_TRANSFORMERS, get_trf_data

TEXTS = ["Maria mora em Lisboa.", "O Benfica joga no Porto amanhã.", ""]


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory):
    """A second tiny encoder: other weights, other tokenizer vocabulary."""
    path = tmp_path_factory.mktemp("tiny-xlmr-other")
    return build_checkpoint(path, shipped_texts(), vocab_size=4000, seed=1)


def _add_encoder(nlp, checkpoint, name):
    nlp.add_pipe("xlmr_transformer", name=name, config={"model": {"name": str(checkpoint)}})


def _add_ner(nlp, name, upstream):
    config = {"model": {"tok2vec": {"upstream": upstream}}}
    ner = nlp.add_pipe("xlmr_ner", name=name, config=config)
    for label in ("PER", "LOC", "ORG"):
        ner.add_label(label)


def _add_textcat(nlp, name, upstream):
    config = {"model": {"tok2vec": {"upstream": upstream}}}
    textcat = nlp.add_pipe("xlmr_textcat", name=name, config=config)
    for label in ("A", "B"):
        textcat.add_label(label)


def _single(checkpoint, encoder, *, seed):
    """A one-encoder pipeline: ner names the encoder, textcat listens to "*"."""
    spacy.util.fix_random_seed(seed)
    nlp = spacy.blank("xx")
    _add_encoder(nlp, checkpoint, encoder)
    _add_ner(nlp, f"ner_{encoder}", encoder)
    _add_textcat(nlp, f"textcat_{encoder}", "*")
    nlp.initialize()
    return nlp


@pytest.fixture
def pipelines(tiny_checkpoint, other_checkpoint):
    """Two one-encoder pipelines and one with both encoders first and the
    heads of both after them (sourced, so with the same weights)."""
    nlp_a = _single(tiny_checkpoint, "a", seed=0)
    nlp_b = _single(other_checkpoint, "b", seed=1)
    nlp = spacy.blank("xx")
    for name, source in (("a", nlp_a), ("b", nlp_b), ("ner_a", nlp_a), ("ner_b", nlp_b),
                         ("textcat_b", nlp_b)):
        nlp.add_pipe(name, source=source)
    return nlp_a, nlp_b, nlp


def _head_outputs(nlp, names, texts=TEXTS):
    docs = list(nlp.pipe(texts))
    return {name: _logits(nlp.get_pipe(name).predict(docs)) for name in names}, docs


def _logits(scores):
    """The logits of a head's predict output (xlmr_ner's TagScores or textcat's array)."""
    return getattr(scores, "logits", scores)


def _assert_same(outputs, expected):
    for name, values in expected.items():
        if isinstance(values, list):
            for got, want in zip(outputs[name], values):
                numpy.testing.assert_allclose(got, want, atol=1e-6)
        else:
            numpy.testing.assert_allclose(outputs[name], values, atol=1e-6)


def test_each_head_reads_the_encoder_its_upstream_names(pipelines):
    nlp_a, nlp_b, nlp = pipelines
    assert nlp.get_pipe("a").listening_components == ["ner_a"]
    # textcat_b listens to "*": the nearest encoder before it.
    assert nlp.get_pipe("b").listening_components == ["ner_b", "textcat_b"]
    outputs, docs = _head_outputs(nlp, ["ner_a", "ner_b", "textcat_b"])
    expected_a, docs_a = _head_outputs(nlp_a, ["ner_a"])
    expected_b, docs_b = _head_outputs(nlp_b, ["ner_b", "textcat_b"])
    _assert_same(outputs, {**expected_a, **expected_b})
    assert [d.cats for d in docs] == [d.cats for d in docs_b]
    # doc._.trf_data: the last encoder's output; the other one's by name.
    for doc, doc_a, doc_b in zip(docs, docs_a, docs_b):
        if len(doc):
            numpy.testing.assert_allclose(doc._.trf_data.tensors[0], doc_b._.trf_data.tensors[0])
            a = get_trf_data(doc, "a")
            numpy.testing.assert_allclose(a.tensors[0], doc_a._.trf_data.tensors[0])
    assert get_trf_data(docs_a[0], "a") is docs_a[0]._.trf_data
    assert docs_a[0]._.xlmr_other_trf_data is None  # one encoder: nothing else stored


def test_star_listens_to_the_nearest_encoder_before_it(tiny_checkpoint, other_checkpoint):
    nlp = spacy.blank("xx")
    _add_encoder(nlp, tiny_checkpoint, "a")
    _add_ner(nlp, "ner_1", "*")
    _add_encoder(nlp, other_checkpoint, "b")
    _add_ner(nlp, "ner_2", "*")
    _add_ner(nlp, "ner_3", "a")
    assert nlp.get_pipe("a").listening_components == ["ner_1", "ner_3"]
    assert nlp.get_pipe("b").listening_components == ["ner_2"]
    # A new encoder in front takes no listener; one right before ner_2 takes it.
    _add_encoder(nlp, other_checkpoint, "c")
    nlp.add_pipe("xlmr_transformer", name="d", before="ner_2",
                 config={"model": {"name": str(other_checkpoint)}})
    assert nlp.get_pipe("c").listening_components == []
    assert nlp.get_pipe("b").listening_components == []
    assert nlp.get_pipe("d").listening_components == ["ner_2"]
    nlp.remove_pipe("d")
    assert nlp.get_pipe("b").listening_components == ["ner_2"]
    nlp.remove_pipe("c")
    nlp.initialize()
    docs = list(nlp.pipe(TEXTS))
    assert nlp.get_pipe("a").listening_components == ["ner_1", "ner_3"]
    assert all(doc.has_annotation("ENT_IOB") for doc in docs if len(doc))


def test_training_sends_each_encoder_only_its_listeners_gradients(pipelines):
    _, _, nlp = pipelines
    examples = [
        Example.from_dict(nlp.make_doc(TEXTS[0]), {"entities": [(0, 5, "PER"), (14, 20, "LOC")],
                                                   "cats": {"A": 1.0, "B": 0.0}}),
        Example.from_dict(nlp.make_doc(TEXTS[1]), {"entities": [(2, 9, "ORG")],
                                                   "cats": {"A": 0.0, "B": 1.0}}),
    ]
    for name in ("a", "b"):
        nlp.get_pipe(name).encoder.torch_module.zero_grad()
    losses = nlp.update(examples, sgd=False, exclude=["ner_b", "textcat_b"])
    nlp.get_pipe("b").backprop_pending()

    def has_gradient(name):
        params = nlp.get_pipe(name).encoder.torch_module.parameters()
        return any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params)

    assert has_gradient("a") and not has_gradient("b")
    assert losses["a"] > 0 and losses["b"] == 0
    # All heads train together: each encoder gets its own listeners' gradients.
    losses = nlp.update(examples, sgd=False)
    assert has_gradient("b") and losses["b"] > 0
    optimizer = nlp.resume_training()
    before = {n: nlp.get_pipe(n).encoder.torch_module.state_dict() for n in ("a", "b")}
    before = {n: {k: v.clone() for k, v in state.items()} for n, state in before.items()}
    nlp.update(examples, sgd=optimizer, exclude=["b", "ner_b", "textcat_b"])
    after = {n: nlp.get_pipe(n).encoder.torch_module.state_dict() for n in ("a", "b")}
    changed = {n: any(not (after[n][k] == v).all() for k, v in before[n].items()) for n in before}
    assert changed == {"a": True, "b": False}


def test_save_and_load_keep_the_links(pipelines, tmp_path):
    _, _, nlp = pipelines
    expected, _ = _head_outputs(nlp, ["ner_a", "ner_b", "textcat_b"])
    nlp.to_disk(tmp_path / "pipe")
    for loaded in (spacy.load(tmp_path / "pipe"), spacy.blank("xx").from_config(nlp.config)
                   .from_bytes(nlp.to_bytes())):
        assert loaded.get_pipe("a").listening_components == ["ner_a"]
        assert loaded.get_pipe("b").listening_components == ["ner_b", "textcat_b"]
        outputs, _ = _head_outputs(loaded, ["ner_a", "ner_b", "textcat_b"])
        _assert_same(outputs, expected)


def test_unknown_upstream_names_the_encoders(tiny_checkpoint, other_checkpoint):
    nlp = spacy.blank("xx")
    _add_encoder(nlp, tiny_checkpoint, "a")
    _add_encoder(nlp, other_checkpoint, "b")
    _add_ner(nlp, "ner", "transformer")
    with pytest.raises(ValueError) as err:
        nlp.initialize()
    assert str(err.value).startswith("[ner] Its listener's upstream is 'transformer'")
    assert "(encoders: ['a', 'b'])" in str(err.value)


def test_upstream_after_the_component_is_an_error(tiny_checkpoint, other_checkpoint):
    nlp = spacy.blank("xx")
    _add_encoder(nlp, tiny_checkpoint, "a")
    _add_ner(nlp, "ner", "b")
    _add_encoder(nlp, other_checkpoint, "b")
    with pytest.raises(ValueError, match=r"\[ner\] Its listener's upstream, 'b', comes after it"):
        nlp.initialize()


def test_a_head_whose_encoder_did_not_run_names_it(pipelines):
    _, _, nlp = pipelines
    with nlp.select_pipes(disable=["a"]):
        with pytest.raises(ValueError, match=r"encoder 'a' got a doc without its output "
                                             r"\(only encoders \['b'\] ran on it\)"):
            nlp("Maria mora em Lisboa.")


@pytest.mark.skipif(not SPACY_TRANSFORMERS, reason="needs spacy-transformers")
def test_spacy_transformers_listener_must_listen_to_the_nearest_encoder(
    tiny_checkpoint, other_checkpoint
):
    """Its listener reads doc._.trf_data: the nearest encoder's output."""
    nlp = spacy.blank("xx")
    _add_encoder(nlp, tiny_checkpoint, "a")
    _add_encoder(nlp, other_checkpoint, "b")
    tok2vec = {
        "@architectures": "spacy-transformers.TransformerListener.v1",
        "upstream": "a",
        "pooling": {"@layers": "reduce_mean.v1"},
    }
    tagger = nlp.add_pipe("tagger", config={"model": {"tok2vec": tok2vec}})
    tagger.add_label("X")
    with pytest.raises(ValueError, match=r"\[tagger\] spacy-transformers' listener reads"):
        nlp.initialize()
