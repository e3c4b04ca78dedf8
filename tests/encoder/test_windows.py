import numpy
import pytest

from spacy_xlmr.encoder.windows import _context, piece_owners, window_starts

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
        assert 1 <= position <= min(size, n - starts[window])  # 0 is <s>
        assert starts[window] + position - 1 == piece
        # The owner is a window where the piece has the most context.
        best = max(_context(piece, start, size, n) for start in starts)
        assert _context(piece, starts[window], size, n) == best


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
    """Windows as long as the doc give the unwindowed output exactly; short
    windows keep the alignment and change the vectors only through context."""
    text = "O Porto fica no norte de Portugal e Lisboa no centro."
    whole = make_nlp(tiny_checkpoint)
    whole.initialize()
    a = whole(text)._.trf_data
    assert a.model_output.last_hidden_state.shape[0] == 1
    tokenizer = whole.get_pipe("transformer").model.attrs["tokenizer"]
    n_pieces = len(tokenizer.tokenize(text))
    exact = make_nlp(tiny_checkpoint, window_size=n_pieces, stride=n_pieces - 1)
    exact.initialize()
    b = exact(text)._.trf_data
    numpy.testing.assert_array_equal(a.align.dataXd, b.align.dataXd)
    numpy.testing.assert_allclose(
        a.model_output.last_hidden_state, b.model_output.last_hidden_state, atol=1e-6
    )
    windowed = make_nlp(tiny_checkpoint, window_size=6, stride=4)
    windowed.initialize()
    c = windowed(text)._.trf_data
    assert c.model_output.last_hidden_state.shape[0] > 1
    numpy.testing.assert_array_equal(a.align.lengths, c.align.lengths)
    rows_a = a.model_output.last_hidden_state.reshape(-1, 64)[a.align.dataXd]
    rows_c = c.model_output.last_hidden_state.reshape(-1, 64)[c.align.dataXd]
    assert not numpy.allclose(rows_a, rows_c)


def test_gradients_through_sorted_padded_windows(tiny_checkpoint):
    """The encoder's parameter gradients equal those of running every window
    on its own with torch autograd, for several docs of different lengths
    split into windows and regrouped into length-sorted padded batches."""
    import torch

    from spacy_xlmr.encoder.model import get_transformer

    nlp = make_nlp(tiny_checkpoint, window_size=8, stride=5, max_batch_pieces=24)
    nlp.initialize()
    encoder = nlp.get_pipe("transformer").model
    transformer = get_transformer(encoder)
    for module in transformer.modules():  # no dropout, incl. SDPA attention's
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if hasattr(module, "dropout_prob"):
            module.dropout_prob = 0.0
    texts = ["Lisboa e Porto ficam em Portugal.", "Olá!", "", "Madrid " * 7]
    trf_datas, backprop = encoder.begin_update([nlp.make_doc(t) for t in texts])
    rng = numpy.random.default_rng(0)
    d_hidden = [
        rng.normal(size=t.model_output.last_hidden_state.shape).astype("float32")
        for t in trf_datas
    ]
    d_hidden[1] = None  # a doc without gradient
    transformer.zero_grad()
    backprop(d_hidden)
    ours = {n: p.grad.clone() for n, p in transformer.named_parameters() if p.grad is not None}
    transformer.zero_grad()
    loss = 0
    for trf_data, d_doc in zip(trf_datas, d_hidden):
        if d_doc is None:
            continue
        for row, length in enumerate(trf_data.wordpieces.lengths):
            ids = torch.tensor(trf_data.wordpieces.input_ids[row : row + 1, :length])
            out = transformer(input_ids=ids).last_hidden_state[0]
            loss = loss + (out * torch.from_numpy(d_doc[row, :length])).sum()
    loss.backward()
    for name, param in transformer.named_parameters():
        if param.grad is None or "key.bias" in name:  # softmax-invariant: ~0
            continue
        scale = float(param.grad.abs().max()) + 1e-12
        assert float((ours[name] - param.grad).abs().max()) / scale < 1e-4, name


def test_window_larger_than_model_maximum_is_an_error(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint, window_size=600, stride=300)
    with pytest.raises(ValueError, match="window_size = 600 is too large"):
        nlp.initialize()


def test_stride_not_smaller_than_window_is_an_error(tiny_checkpoint):
    with pytest.raises(ValueError, match="stride"):
        make_nlp(tiny_checkpoint, window_size=100, stride=100)
