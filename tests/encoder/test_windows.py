import numpy
import pytest

from spacy_xlmr.encoder.windows import _context, length_batches, piece_owners, window_spans

from ..util import make_nlp, no_dropout


@pytest.mark.parametrize(
    "size,stride", [(10, 5), (10, 9), (8, 3), (510, 384), (510, 448), (7, 1)]
)
def test_windows_cover_every_piece_within_size(size, stride):
    for n in [0, 1, size - 1, size, size + 1, *range(size + 2, 5 * size, 7)]:
        spans = window_spans(n, size, stride)
        assert spans[0][0] == 0 and spans[-1][1] == n  # nothing truncated
        lengths = {end - start for start, end in spans}
        assert len(lengths) == 1 and lengths.pop() <= size  # equal lengths
        # As many windows as starting one every `stride` pieces would take,
        # each overlapping the next by at least size - stride pieces.
        assert len(spans) == 1 + max(0, -(-(n - size) // stride))
        overlaps = [a_end - b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])]
        assert all(overlap >= size - stride for overlap in overlaps)
        owners = piece_owners(n, spans)
        assert len(owners) == n
        for piece, (window, position) in enumerate(owners):
            start, end = spans[window]
            assert 1 <= position <= end - start  # 0 is <s>
            assert start + position - 1 == piece
            # The owner is a window where the piece has the most context.
            best = max(_context(piece, span, n) for span in spans)
            assert _context(piece, spans[window], n) == best


def test_long_doc_windows_repeat_only_the_overlap():
    # A flush last window would repeat 490 of 1000 pieces; equal windows
    # repeat only the minimal overlap.
    assert window_spans(1000, 510, 384) == [(0, 418), (291, 709), (582, 1000)]
    assert window_spans(1000, 510, 448) == [(0, 375), (312, 687), (625, 1000)]


def test_overlap_is_split_in_the_middle():
    spans = window_spans(20, 10, 6)
    assert spans == [(0, 10), (5, 15), (10, 20)]
    windows = [w for w, _ in piece_owners(20, spans)]
    # Every piece comes from the window where it is farthest from a cut:
    # e.g. piece 7 has 2 pieces of context right in window 0 and 2 left in
    # window 1 (ties go right), piece 12 has 2 either side in 1 and 2.
    assert windows == [0] * 7 + [1] * 5 + [2] * 8


def test_batches_by_length_within_positions_and_padding():
    lengths = [100, 12, 95, 50, 98, 10, 11, 300]
    windows = [[0] * n for n in lengths]
    # GPU: only the position limit.
    assert length_batches(windows, 400) == [[5, 6, 1, 3], [2, 4, 0], [7]]
    # CPU: also at most 10% padding.
    batches = length_batches(windows, 400, max_padding=0.1)
    assert batches == [[5, 6, 1], [3], [2, 4, 0], [7]]
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert sum(lengths[i] for i in batch) >= 0.9 * longest * len(batch)
        assert longest * len(batch) <= 400 or len(batch) == 1
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))


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
    tokenizer = whole.get_pipe("transformer").encoder.tokenizer
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

    from spacy_xlmr.encoder.data import hidden_states

    nlp = make_nlp(tiny_checkpoint, window_size=8, stride=5, max_batch_pieces=24)
    nlp.initialize()
    encoder = nlp.get_pipe("transformer").model
    transformer = nlp.get_pipe("transformer").encoder.torch_module
    no_dropout(transformer)
    texts = ["Lisboa e Porto ficam em Portugal.", "Olá!", "", "Madrid " * 7]
    trf_datas, backprop = encoder.begin_update([nlp.make_doc(t) for t in texts])
    rng = numpy.random.default_rng(0)
    d_hidden = [  # the empty doc isn't encoded: no output, no gradient
        rng.normal(size=hidden_states(t).shape).astype("float32") if text else None
        for text, t in zip(texts, trf_datas)
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
    with pytest.raises(ValueError, match=r"window_size = 600 is too large.*window_size <= 510"):
        nlp.initialize()


@pytest.mark.parametrize("stride", [0, 510, 600])
def test_stride_not_smaller_than_window_is_an_error(tiny_checkpoint, stride):
    with pytest.raises(ValueError, match=rf"model\.stride = {stride} is out of range"):
        make_nlp(tiny_checkpoint, window_size=510, stride=stride)
