import numpy
import pytest

from spacy_xlmr.pipeline.entity_tags import (
    decode,
    gold_tags,
    labels_from_tags,
    make_tags,
    scheme_of,
)

BIO = make_tags(["PER", "LOC"], "BIO")  # O B-PER I-PER B-LOC I-LOC
BILUO = make_tags(["PER"], "BILUO")  # O B-PER I-PER L-PER U-PER


def _probs(tags, sequence, confidence=0.9):
    probs = numpy.full((len(sequence), len(tags)), (1 - confidence) / (len(tags) - 1))
    for i, tag in enumerate(sequence):
        probs[i, tags.index(tag)] = confidence
    return probs


def test_make_tags_and_back():
    assert BIO == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert labels_from_tags(BIO) == ["PER", "LOC"]
    assert scheme_of(BIO) == "BIO" and scheme_of(BILUO) == "BILUO"
    with pytest.raises(ValueError, match="Unknown tag 'PER'"):
        labels_from_tags(["O", "PER"])
    with pytest.raises(ValueError, match="IOBES.*S- to U- and E- to L-"):
        labels_from_tags(["O", "B-PER", "I-PER", "E-PER", "S-PER"])
    with pytest.raises(ValueError, match="Unknown tag scheme"):
        make_tags(["PER"], "IOB3")


def test_gold_biluo_converted():
    biluo = ["U-PER", "B-LOC", "L-LOC", None, "-", "O", "U-PER", "U-PER"]
    assert gold_tags(biluo, "BIO") == [
        "B-PER", "B-LOC", "I-LOC", None, None, "O", "B-PER", "B-PER"
    ]
    assert gold_tags(biluo, "BILUO") == [
        "U-PER", "B-LOC", "L-LOC", None, None, "O", "U-PER", "U-PER"
    ]
    # IOB1: entities start with I-; B- only right after one of the same label.
    assert gold_tags(biluo, "IOB1") == [
        "I-PER", "I-LOC", "I-LOC", None, None, "O", "I-PER", "B-PER"
    ]


IOB1 = ["B-LOC", "B-MISC", "B-ORG", "I-LOC", "I-MISC", "I-ORG", "I-PER", "O"]


def test_iob1_checkpoints_decode_like_hf():
    """CoNLL-03 checkpoints have I-PER but no B-PER: entities start with I-."""
    assert scheme_of(IOB1) == "IOB1"
    seq = ["O", "I-PER", "I-PER", "O", "I-LOC", "B-LOC"]
    for decoder in ("viterbi", "greedy"):
        entities = decode(_probs(IOB1, seq), IOB1, numpy.ones(6, bool), decoder)
        assert [e[:3] for e in entities] == [(1, 3, "PER"), (4, 5, "LOC"), (5, 6, "LOC")]


def test_tag_set_without_valid_path_falls_back_to_argmax():
    tags = ["B-PER", "L-PER"]  # BILUO without O or U: one token can't be valid
    assert scheme_of(tags) == "BILUO"
    entities = decode(numpy.array([[0.9, 0.1]]), tags, numpy.ones(1, bool))
    assert [e[:3] for e in entities] == [(0, 1, "PER")]


@pytest.mark.parametrize("decoder", ["viterbi", "greedy"])
def test_valid_sequences_decode_the_same(decoder):
    seq = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    entities = decode(_probs(BIO, seq), BIO, numpy.ones(len(seq), bool), decoder)
    assert [e[:3] for e in entities] == [(0, 2, "PER"), (3, 4, "LOC"), (4, 6, "LOC")]
    assert all(abs(e[3] - 0.9) < 1e-9 for e in entities)


def test_invalid_argmax_greedy_repairs_like_hf_and_viterbi_finds_valid_path():
    # "O I-PER I-LOC": greedy reads it as HF does: each I- starts an entity.
    probs = numpy.array([
        [0.9, 0.02, 0.04, 0.02, 0.02],
        [0.3, 0.3, 0.35, 0.03, 0.02],
        [0.2, 0.05, 0.3, 0.1, 0.35],
    ])
    has_pieces = numpy.ones(3, bool)
    greedy = decode(probs, BIO, has_pieces, "greedy")
    assert [e[:3] for e in greedy] == [(1, 2, "PER"), (2, 3, "LOC")]
    viterbi = decode(probs, BIO, has_pieces, "viterbi")
    # Best valid path: O B-PER I-PER (0.9*0.3*0.3 beats O O B-LOC... etc.)
    assert [e[:3] for e in viterbi] == [(1, 3, "PER")]


def test_biluo_viterbi_closes_entities():
    seq = ["U-PER", "B-PER", "I-PER", "L-PER", "O"]
    entities = decode(_probs(BILUO, seq), BILUO, numpy.ones(5, bool), "viterbi")
    assert [e[:3] for e in entities] == [(0, 1, "PER"), (1, 4, "PER")]
    # An entity can't end on B-: the best valid reading of "B-PER O" is U-PER O
    # or O O, never an open entity.
    probs = _probs(BILUO, ["B-PER", "O"], confidence=0.6)
    probs[0, BILUO.index("U-PER")] = 0.3
    assert [e[:3] for e in decode(probs, BILUO, numpy.ones(2, bool))] == [(0, 1, "PER")]


def test_tokens_without_pieces_never_start_or_end_an_entity():
    seq = ["B-PER", "B-PER", "I-PER", "B-LOC"]
    has_pieces = numpy.array([True, False, True, False])
    for decoder in ("viterbi", "greedy"):
        entities = decode(_probs(BIO, seq), BIO, has_pieces, decoder)
        assert [e[:3] for e in entities] == [(0, 3, "PER")]


def test_empty_input():
    assert decode(numpy.zeros((0, len(BIO))), BIO, numpy.zeros(0, bool)) == []
    with pytest.raises(ValueError, match="Unknown decoder"):
        decode(numpy.zeros((1, len(BIO))), BIO, numpy.ones(1, bool), "beam")
