"""Top-k selection of fill-mask predictions."""
import numpy

from spacy_xlmr.mlm.predictions import top_k


def test_top_k_is_a_stable_sort_without_sorting_everything():
    rng = numpy.random.default_rng(0)
    for _ in range(200):
        # Few distinct values: many ties, also across the k-th place.
        scores = rng.integers(0, 6, size=int(rng.integers(1, 40))).astype("float32")
        k = int(rng.integers(1, 8))
        expected = numpy.argsort(-scores, kind="stable")[:k]
        numpy.testing.assert_array_equal(top_k(scores, k), expected)
