from pathlib import Path

import numpy
import pytest
import spacy
from spacy.training import Example

from spacy_xlmr.convert import read_iob2

from ..util import assert_encoded, count_encoder_calls, make_nlp

DATA = Path(__file__).parents[2] / "data" / "ner" / "uner-pt"


@pytest.fixture(scope="module")
def pt_examples():
    nlp = spacy.blank("xx")
    docs = list(read_iob2(DATA / "train.iob2", nlp.vocab, limit=64))
    return [Example(nlp.make_doc(doc.text), doc) for doc in docs]


@pytest.fixture(scope="module")
def trained_nlp(tiny_checkpoint, pt_examples):
    """A pipeline trained for a few steps on 64 Portuguese sentences."""
    spacy.util.fix_random_seed(0)
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="ner")
    optimizer = nlp.initialize(lambda: pt_examples)
    optimizer.learn_rate = 1e-3
    losses = []
    for _ in range(12):
        for start in range(0, len(pt_examples), 16):
            batch = pt_examples[start : start + 16]
            losses.append(nlp.update(batch, sgd=optimizer)["ner"])
    nlp._test_losses = losses
    return nlp


def _ents(doc):
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


def test_uninitialized_encoder_names_the_fix():
    nlp = spacy.blank("xx")
    nlp.add_pipe("xlmr_ner")
    with pytest.raises(ValueError, match="nlp.initialize"):
        nlp("Olá mundo")


def test_unresolvable_name_says_how_to_use_a_local_copy(tmp_path):
    nlp = spacy.blank("xx")
    config = {"model": {"name": str(tmp_path / "missing")}}
    nlp.add_pipe("xlmr_transformer", config=config)
    with pytest.raises(ValueError, match="Could not load"):
        nlp.initialize()


def test_non_xlmr_checkpoint_is_refused(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32).save_pretrained(tmp_path)
    nlp = spacy.blank("xx")
    nlp.add_pipe("xlmr_transformer", config={"model": {"name": str(tmp_path)}})
    with pytest.raises(ValueError, match="'bert' checkpoint, not XLM-RoBERTa"):
        nlp.initialize()


def test_labels_and_tags_from_data(trained_nlp):
    ner = trained_nlp.get_pipe("ner")
    assert ner.labels == ("LOC", "ORG", "PER")
    assert ner.tags == ("O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER")
    assert ner.label_data == ["LOC", "ORG", "PER"]


def test_training_lowers_loss_and_beats_chance(trained_nlp, pt_examples):
    losses = trained_nlp._test_losses
    assert numpy.mean(losses[-4:]) < numpy.mean(losses[:4]) / 3
    scores = trained_nlp.evaluate(pt_examples)
    # Chance for exact-span NER is ~0; a few epochs on the training set
    # must find a good share of the entities.
    assert scores["ents_f"] > 0.3
    assert set(scores["ents_per_type"]) <= {"PER", "ORG", "LOC"}


def test_entities_have_confidences_and_valid_offsets(trained_nlp, pt_examples):
    docs = list(trained_nlp.pipe(eg.text for eg in pt_examples[:16]))
    n_ents = 0
    for doc in docs:
        for ent in doc.ents:
            n_ents += 1
            assert 0.0 < ent._.ent_score <= 1.0
            assert doc.text[ent.start_char : ent.end_char] == ent.text
            assert not ent.text[0].isspace() and not ent.text[-1].isspace()
    assert n_ents > 0


def test_pipe_equals_call_at_any_batch_size(trained_nlp, pt_examples):
    texts = [eg.text for eg in pt_examples[:40]]
    single = [_ents(trained_nlp(text)) for text in texts]
    for batch_size in (1, 32):
        piped = [_ents(doc) for doc in trained_nlp.pipe(texts, batch_size=batch_size)]
        assert piped == single


def test_serialization_round_trips(trained_nlp, pt_examples, tmp_path):
    texts = [eg.text for eg in pt_examples[:20]]
    expected = [_ents(doc) for doc in trained_nlp.pipe(texts)]
    trained_nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert [_ents(doc) for doc in loaded.pipe(texts)] == expected
    # Bytes into a fresh pipeline whose encoder name isn't reachable offline.
    fresh = spacy.blank("xx")
    fresh.add_pipe("xlmr_transformer", name="transformer")
    fresh.add_pipe("xlmr_ner", name="ner")
    fresh.from_bytes(trained_nlp.to_bytes())
    assert [_ents(doc) for doc in fresh.pipe(texts)] == expected
    assert (tmp_path / "pipeline" / "transformer" / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("text", ["", " ", "   \n\t ", "\u200b", "😀", "a" * 3000])
def test_odd_docs(trained_nlp, text):
    doc = trained_nlp(text)
    assert len(doc._.trf_data.align.lengths) == len(doc)
    for ent in doc.ents:
        assert ent.text.strip()


def test_missing_encoder_output_is_a_clear_error(trained_nlp):
    with trained_nlp.select_pipes(disable=["transformer"]):
        with pytest.raises(ValueError, match="doc._.trf_data is None"):
            trained_nlp("Lisboa é bonita.")


def test_add_label_after_training_keeps_old_outputs(trained_nlp, pt_examples):
    ner = trained_nlp.get_pipe("ner")
    doc = trained_nlp(pt_examples[0].text)
    (before,) = ner.predict([doc]).logits
    assert ner.add_label("MISC") == 1
    assert ner.add_label("MISC") == 0
    assert ner.tags[-2:] == ("B-MISC", "I-MISC")
    (after,) = ner.predict([doc]).logits
    assert after.shape == (len(doc), before.shape[1] + 2)
    numpy.testing.assert_allclose(after[:, :-2], before, atol=1e-6)
    numpy.testing.assert_array_equal(after[:, -2:], 0.0)


def test_spacy_ner_listens_to_the_encoder(tiny_checkpoint, pt_examples):
    """spaCy's own ner with spacy-transformers' listener trains on top of
    xlmr_transformer, exactly as with spacy-transformers' transformer."""
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe(
        "ner",
        config={
            "model": {
                "@architectures": "spacy.TransitionBasedParser.v2",
                "state_type": "ner",
                "extra_state_tokens": False,
                "hidden_width": 64,
                "maxout_pieces": 2,
                "use_upper": False,
                "tok2vec": {
                    "@architectures": "spacy-transformers.TransformerListener.v1",
                    "grad_factor": 1.0,
                    "pooling": {"@layers": "reduce_mean.v1"},
                },
            }
        },
    )
    optimizer = nlp.initialize(lambda: pt_examples)
    assert nlp.get_pipe("transformer").listening_components == ["ner"]
    losses = [nlp.update(pt_examples[:16], sgd=optimizer)["ner"] for _ in range(20)]
    assert numpy.mean(losses[-5:]) < numpy.mean(losses[:5]) * 0.9
    assert_encoded(nlp("Lisboa e Porto."))


def test_encoder_runs_once_per_doc_with_two_heads(tiny_checkpoint, pt_examples):
    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="ner_a")
    nlp.add_pipe("xlmr_ner", name="ner_b")
    optimizer = nlp.initialize(lambda: pt_examples)
    with count_encoder_calls(nlp) as calls:
        nlp.update(pt_examples[:8], sgd=optimizer)
        assert calls == [8]
        docs = list(nlp.pipe([eg.text for eg in pt_examples[:8]]))
        assert calls == [8, 8]
    for doc in docs:
        assert_encoded(doc)


def test_labels_added_before_initialize_are_kept(tiny_checkpoint, pt_examples):
    nlp = make_nlp(tiny_checkpoint)
    ner = nlp.add_pipe("xlmr_ner", name="ner")
    ner.add_label("ANIMAL")
    nlp.initialize(lambda: pt_examples[:8])
    assert ner.labels == ("ANIMAL", "LOC", "ORG", "PER")
    empty = make_nlp(tiny_checkpoint)
    empty.add_pipe("xlmr_ner", name="ner")
    with pytest.raises(ValueError, match="No labels"):
        empty.initialize()


def test_entities_set_before_are_kept(trained_nlp, tmp_path):
    trained_nlp.to_disk(tmp_path / "pipeline")
    nlp = spacy.load(tmp_path / "pipeline")
    ruler = nlp.add_pipe("entity_ruler", before="transformer")
    ruler.add_patterns([{"label": "ANIMAL", "pattern": "gato"}])
    texts = ["O gato mora em Lisboa com o João .", "gato gato gato"]
    for doc in nlp.pipe(texts):
        animals = [e for e in doc.ents if e.label_ == "ANIMAL"]
        assert [e.text for e in animals] == [t for t in doc.text.split() if t == "gato"]
        assert all(e._.ent_score is None for e in animals)


def test_decoder_follows_the_config_after_loading(trained_nlp, tmp_path):
    trained_nlp.to_disk(tmp_path / "pipeline")
    nlp = spacy.load(tmp_path / "pipeline", config={"components": {"ner": {"decoder": "greedy"}}})
    assert nlp.get_pipe("ner").decoder == "greedy"
    assert "decoder" not in nlp.get_pipe("ner").cfg


def test_encoder_learns_when_the_last_listener_is_excluded(tiny_checkpoint, pt_examples):

    nlp = make_nlp(tiny_checkpoint)
    nlp.add_pipe("xlmr_ner", name="ner_a")
    nlp.add_pipe("xlmr_ner", name="ner_b")
    optimizer = nlp.initialize(lambda: pt_examples[:8])
    weight = nlp.get_pipe("transformer").encoder.torch_module.embeddings.word_embeddings.weight
    before = weight.detach().clone()
    # nlp.update steps the encoder before the heads backprop, so a batch's
    # gradient is applied at the next update (as in spacy-transformers).
    for _ in range(2):
        nlp.update(pt_examples[:8], sgd=optimizer, exclude=["ner_b"])
    assert not (weight.detach() == before).all()
