"""Drop-in workflows of spacy-transformers' ``transformer``: loading with
components left out, empty docs, saving before ``initialize``."""
import pytest
import spacy

from .util import assert_encoded, make_nlp

# Head factory -> labels to initialize it with (None: it needs none).
HEADS = {
    "xlmr_ner": ["PER", "LOC"],
    "xlmr_textcat": ["A", "B"],
    "xlmr_fill_mask": None,
    "xlmr_qa": None,
}


def _pipeline(tiny_checkpoint, factory):
    nlp = make_nlp(tiny_checkpoint)
    head = nlp.add_pipe(factory, name="head")
    for label in HEADS[factory] or []:
        head.add_label(label)
    nlp.initialize()
    return nlp


@pytest.mark.parametrize("factory", sorted(HEADS))
def test_load_without_the_encoder_says_what_is_missing(tiny_checkpoint, tmp_path, factory):
    """spacy.load(path, exclude=["transformer"]) of a pipeline whose head
    listens to the encoder is an error naming the encoder and the fixes,
    instead of a pipeline with an empty encoder added for the head."""
    _pipeline(tiny_checkpoint, factory).to_disk(tmp_path / "pipe")
    with pytest.raises(ValueError) as err:
        spacy.load(tmp_path / "pipe", exclude=["transformer"])
    message = str(err.value)
    assert message.startswith("[head] This component listens to the XLM-R encoder")
    assert 'exclude=["transformer"]' in message
    assert "don't exclude 'transformer'" in message
    assert 'nlp.replace_listeners("transformer", "head"' in message


def test_from_bytes_without_the_encoder_says_what_is_missing(tiny_checkpoint):
    data = _pipeline(tiny_checkpoint, "xlmr_ner").to_bytes()
    nlp = spacy.blank("xx")
    nlp.add_pipe("xlmr_ner", name="head")  # adds an encoder for it
    with pytest.raises(ValueError, match=r"\[head\] This component listens to the XLM-R"):
        nlp.from_bytes(data, exclude=["transformer"])


def test_load_with_the_encoder_disabled_or_only_the_encoder(tiny_checkpoint, tmp_path):
    _pipeline(tiny_checkpoint, "xlmr_ner").to_disk(tmp_path / "pipe")
    nlp = spacy.load(tmp_path / "pipe", disable=["transformer"])
    nlp.enable_pipe("transformer")
    assert_encoded(nlp("Maria mora em Lisboa."))
    nlp = spacy.load(tmp_path / "pipe", exclude=["head"])
    assert nlp.pipe_names == ["transformer"]
    # A head added to a blank pipeline, and its encoder, load from a saved one.
    nlp = spacy.blank("xx")
    nlp.add_pipe("xlmr_ner", name="head")
    nlp.from_disk(tmp_path / "pipe")
    assert_encoded(nlp("Maria mora em Lisboa."))


LISTENER = {
    "@architectures": "spacy-transformers.TransformerListener.v1",
    "grad_factor": 1.0,
    "pooling": {"@layers": "reduce_mean.v1"},
}
TEXTS = ["Maria mora em Lisboa.", "O Porto é bonito."]


@pytest.fixture(scope="module")
def all_heads(tiny_checkpoint):
    """Every spacy-xlmr head and spaCy's ner, textcat and tagger on one encoder."""
    from spacy.training import Example

    spacy.util.fix_random_seed(0)
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="xlmr_ner")
    nlp.add_pipe("xlmr_textcat", name="xlmr_textcat")
    nlp.add_pipe("xlmr_fill_mask", name="fill_mask", config={"top_k": 2})
    nlp.add_pipe("xlmr_qa", name="qa", config={"top_k": 1})
    nlp.add_pipe("ner", config={"model": {
        "@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner",
        "extra_state_tokens": False, "hidden_width": 16, "maxout_pieces": 2,
        "use_upper": False, "tok2vec": LISTENER,
    }})
    nlp.add_pipe("textcat_multilabel", name="textcat", config={"model": {
        "@architectures": "spacy.TextCatReduce.v1", "exclusive_classes": False,
        "use_reduce_first": False, "use_reduce_last": False, "use_reduce_max": False,
        "use_reduce_mean": True, "tok2vec": LISTENER,
    }})
    nlp.add_pipe("tagger", config={
        "model": {"@architectures": "spacy.Tagger.v2", "tok2vec": LISTENER},
    })
    # xlmr_textcat scores A/B, spaCy's textcat C/D (both write doc.cats).
    nlp.config["initialize"]["components"] = {
        "xlmr_textcat": {"labels": ["A", "B"]}, "textcat": {"labels": ["C", "D"]},
    }
    examples = [
        Example.from_dict(nlp.make_doc(TEXTS[0]), {
            "entities": [(0, 5, "PER"), (14, 20, "LOC")], "tags": ["N", "V", "P", "N", "."],
            "cats": {"A": 1.0, "B": 0.0, "C": 1.0, "D": 0.0},
        }),
        Example.from_dict(nlp.make_doc(TEXTS[1]), {
            "entities": [(2, 7, "LOC")], "tags": ["D", "N", "V", "A", "."],
            "cats": {"A": 0.0, "B": 1.0, "C": 0.0, "D": 1.0},
        }),
    ]
    nlp.initialize(lambda: examples)
    return nlp


@pytest.fixture
def encoder_batches(all_heads):
    """The input_ids shape of every forward pass of the torch encoder."""

    shapes = []
    module = all_heads.get_pipe("transformer").encoder.torch_module
    handle = module.register_forward_hook(
        lambda _, args, kwargs, output: shapes.append(tuple(kwargs["input_ids"].shape)),
        with_kwargs=True,
    )
    yield shapes
    handle.remove()


def _check_empty(doc):
    trf_data = doc._.trf_data
    assert trf_data.tensors == ()
    assert trf_data.wordpieces.strings == [] and trf_data.wordpieces.input_ids.size == 0
    assert trf_data.align.lengths.shape == (0,) and trf_data.align.dataXd.size == 0
    assert doc.ents == () and doc._.fill_mask == []
    assert set(doc.cats) == {"A", "B", "C", "D"}
    assert doc.cats["A"] + doc.cats["B"] == pytest.approx(1.0, abs=1e-5)


def _outputs(doc):
    return (
        [(e.start, e.end, e.label_) for e in doc.ents],
        [t.tag_ for t in doc],
        {label: round(score, 4) for label, score in doc.cats.items()},
    )


def test_empty_doc_is_not_encoded(all_heads, encoder_batches):
    """nlp("") doesn't run the encoder: doc._.trf_data is empty (no pieces,
    no tensors, as spacy-transformers' TransformerData.empty()) and every
    head, spacy-xlmr's and spaCy's, annotates the empty doc."""
    doc = all_heads("")
    assert encoder_batches == []
    _check_empty(doc)
    assert all_heads.get_pipe("qa").ask("", "Quem?")._.qa_answers["q0"][0]["answer"] == ""


def test_pipe_mixes_empty_and_other_docs(all_heads, encoder_batches):
    alone = [_outputs(all_heads(text)) for text in TEXTS]
    encoder_batches.clear()
    docs = list(all_heads.pipe(["", TEXTS[0], "", TEXTS[1], ""]))
    assert sum(rows for rows, _ in encoder_batches) == 2  # one window per text
    for i in (0, 2, 4):
        _check_empty(docs[i])
    assert [_outputs(docs[1]), _outputs(docs[3])] == alone
    assert list(all_heads.pipe(["", ""])) and encoder_batches[-1][0] == 1


def test_update_with_an_empty_doc(all_heads, encoder_batches):
    """nlp.update with an empty doc in the batch trains every head; the
    empty doc isn't encoded."""
    from spacy.training import Example

    nlp = all_heads
    empty = Example.from_dict(nlp.make_doc(""), {"cats": {"A": 1.0, "B": 0.0, "C": 1.0, "D": 0.0}})
    example = Example.from_dict(nlp.make_doc(TEXTS[0]), {
        "entities": [(0, 5, "PER")], "tags": ["N", "V", "P", "N", "."],
        "cats": {"A": 1.0, "B": 0.0, "C": 1.0, "D": 0.0},
    })
    with nlp.select_pipes(disable=["fill_mask", "qa"]):  # they encode their own inputs
        optimizer = nlp.resume_training()
        before = nlp("Maria mora em Lisboa.")._.trf_data.tensors[0].copy()
        encoder_batches.clear()
        losses = nlp.update([empty, example, empty], sgd=optimizer)
        assert sum(rows for rows, _ in encoder_batches) == 1
        losses = nlp.update([empty], sgd=optimizer, losses=losses)
        after = nlp("Maria mora em Lisboa.")._.trf_data.tensors[0]
    assert all(loss == loss and loss >= 0 for loss in losses.values())  # no NaN
    assert {"transformer", "xlmr_ner", "xlmr_textcat", "ner", "textcat", "tagger"} <= set(losses)
    assert not numpy_equal(before, after)


def numpy_equal(a, b) -> bool:
    import numpy

    return bool(numpy.array_equal(a, b))


def _uninitialized(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="ner").add_label("PER")
    nlp.add_pipe("tagger", config={
        "model": {"@architectures": "spacy.Tagger.v2", "tok2vec": LISTENER},
    }).add_label("N")
    return nlp


def _encoder_loaded(nlp) -> bool:
    from spacy_xlmr.encoder.model import is_loaded

    return is_loaded(nlp.get_pipe("transformer").model)


def test_save_and_load_before_initialize(tiny_checkpoint, tmp_path):
    """As with spacy-transformers: a pipeline whose encoder has no weights
    yet saves (to_bytes, to_disk) and loads; the encoder saves only its cfg
    and loads without weights, and a later initialize loads them."""
    import srsly
    from spacy.training import Example

    nlp = _uninitialized(tiny_checkpoint)
    data = nlp.to_bytes()
    nlp.to_disk(tmp_path / "pipe")
    assert not (tmp_path / "pipe" / "transformer" / "model").exists()
    assert srsly.read_json(tmp_path / "pipe" / "transformer" / "cfg") == {
        "saved_without_weights": True
    }
    loaded = [spacy.load(tmp_path / "pipe"), _uninitialized(tiny_checkpoint).from_bytes(data)]
    for nlp in loaded:
        assert not _encoder_loaded(nlp)
        example = Example.from_dict(nlp.make_doc("Maria mora em Lisboa."), {
            "entities": [(0, 5, "PER")], "tags": ["N", "V", "P", "N", "."],
        })
        nlp.initialize(lambda: [example])
        assert _encoder_loaded(nlp)
        doc = nlp("Maria mora em Lisboa.")
        assert doc._.trf_data.tensors[0].shape[-1] == 64
        assert nlp.get_pipe("ner").labels == ("PER",)
    # Initialized, it saves its weights again, and they load.
    loaded[0].to_disk(tmp_path / "trained")
    assert (tmp_path / "trained" / "transformer" / "model" / "model.safetensors").exists()
    assert _encoder_loaded(spacy.load(tmp_path / "trained"))


@pytest.mark.parametrize("via", ["disk", "bytes"])
def test_encoder_saved_before_initialize_loads_without_weights(tiny_checkpoint, tmp_path, via):
    """Loading an encoder saved without weights over one with weights leaves
    it without (as saved), and initialize loads them again."""
    saved = _uninitialized(tiny_checkpoint).get_pipe("transformer")
    saved.to_disk(tmp_path / "transformer")
    nlp = _uninitialized(tiny_checkpoint)
    nlp.initialize()
    assert _encoder_loaded(nlp)
    if via == "disk":
        nlp.get_pipe("transformer").from_disk(tmp_path / "transformer")
    else:
        nlp.get_pipe("transformer").from_bytes(saved.to_bytes())
    assert not _encoder_loaded(nlp)
    with pytest.raises(ValueError, match="has no weights yet"):
        nlp("Maria mora em Lisboa.")
    nlp.initialize()
    assert_encoded(nlp("Maria mora em Lisboa."))
