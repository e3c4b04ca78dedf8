"""Masking pieces for masked-LM training follows BERT's recipe."""
import numpy
import pytest

from spacy_xlmr.mlm.masking import mask_pieces


def test_mask_pieces_follows_bert_recipe():
    ids = numpy.arange(100, 40100)
    replacement_ids = numpy.arange(5, 90000)
    rng = numpy.random.default_rng(0)
    masked, chosen = mask_pieces(ids, rng, mask_id=3, replacement_ids=replacement_ids)
    masked = numpy.array(masked)
    assert len(chosen) / len(ids) == pytest.approx(0.15, abs=0.01)
    untouched = numpy.setdiff1d(numpy.arange(len(ids)), chosen)
    assert (masked[untouched] == ids[untouched]).all()
    as_mask = masked[chosen] == 3
    kept = masked[chosen] == ids[chosen]
    randomized = ~as_mask & ~kept
    assert as_mask.mean() == pytest.approx(0.8, abs=0.03)
    assert kept.mean() == pytest.approx(0.1, abs=0.02)
    assert randomized.mean() == pytest.approx(0.1, abs=0.02)
    assert numpy.isin(masked[chosen][randomized], replacement_ids).all()
    again, chosen_again = mask_pieces(
        ids, numpy.random.default_rng(0), mask_id=3, replacement_ids=replacement_ids
    )
    assert again == masked.tolist() and (chosen_again == chosen).all()
