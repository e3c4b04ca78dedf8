import numpy
import pytest

from spacy_xlmr.encoder.windows import piece_owners, window_starts

from ..conftest import make_nlp


@pytest.mark.parametrize("n,size,stride", [(0, 10, 5), (7, 10, 5), (10, 10, 5), (11, 10, 5), (1000, 510, 384), (95, 8, 3)])
def test_windows_cover_every_piece_within_size(n, size, stride):
    starts = window_starts(n, size, stride)
    assert starts[0] == 0
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))
    assert min(n, starts[-1] + size) == n  # the last window ends at the end
    owners = piece_owners(n, starts, size)
    assert len(owners) == n
    for piece, (window, position) in enumerate(owners):
        assert 1 <= position <= size  # position 0 is <s>
        assert starts[window] + position - 1 == piece


def test_overlap_is_split_in_the_middle():
    starts = window_starts(20, 10, 6)  # [0, 6, 10]
    owners = piece_owners(20, starts, 10)
    windows = [w for w, _ in owners]
    # Every piece comes from the window where it is farthest from a cut.
    # e.g. piece 12 has 6 pieces of context left and 3 right in window 1, but
    # only 2 left in window 2.
    assert windows == [0] * 8 + [1] * 5 + [2] * 7


def test_long_doc_is_encoded_in_windows_without_truncation(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint, window_size=32, stride=24)
    nlp.initialize()
    text = " ".join(["Lisboa é a capital de Portugal, e o Porto fica no norte."] * 40)
    doc = nlp(text)
    trf_data = doc._.trf_data
    hidden = trf_data.model_output.last_hidden_state
    assert hidden.shape[1] <= 34
    assert hidden.shape[0] > 10
    # Every visible token is aligned, to rows that hold real positions.
    lengths = trf_data.align.lengths
    assert all(length > 0 for token, length in zip(doc, lengths) if not token.is_space)
    rows = trf_data.align.dataXd
    flat = trf_data.wordpieces.attention_mask.reshape(-1)
    assert flat[rows].all()
    assert hidden.reshape(-1, hidden.shape[-1])[rows].any(axis=1).all()


def test_windowing_only_changes_context(tiny_checkpoint):
    """With windows as long as the doc, outputs equal the unwindowed run; a
    windowed run keeps the same alignment structure."""
    text = "O Porto fica no norte de Portugal e Lisboa no centro."
    whole = make_nlp(tiny_checkpoint)
    whole.initialize()
    windowed = make_nlp(tiny_checkpoint, window_size=6, stride=4)
    windowed.initialize()
    a = whole(text)._.trf_data
    b = windowed(text)._.trf_data
    assert a.model_output.last_hidden_state.shape[0] == 1
    assert b.model_output.last_hidden_state.shape[0] > 1
    numpy.testing.assert_array_equal(a.align.lengths, b.align.lengths)
    first_a = a.model_output.last_hidden_state.reshape(-1, 64)[a.align.dataXd[0]]
    first_b = b.model_output.last_hidden_state.reshape(-1, 64)[b.align.dataXd[0]]
    assert first_a.shape == first_b.shape


def test_window_larger_than_model_maximum_is_an_error(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint, window_size=600, stride=300)
    with pytest.raises(ValueError, match="window_size = 600 is too large"):
        nlp.initialize()


def test_stride_not_smaller_than_window_is_an_error(tiny_checkpoint):
    with pytest.raises(ValueError, match="stride"):
        make_nlp(tiny_checkpoint, window_size=100, stride=100)
