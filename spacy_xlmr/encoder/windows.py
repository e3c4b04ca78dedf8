"""Windows over a doc's pieces, counted in pieces.

A doc of ``n`` pieces is cut into windows of at most ``window_size`` pieces
(plus ``<s>`` and ``</s>``), starting every ``stride`` pieces, so consecutive
windows overlap by ``window_size - stride`` pieces and the last window ends at
the last piece. Nothing is truncated.

Overlaps are combined by ownership, not averaging: every piece takes its output
from the one window where it has the most context, i.e. the window that
maximises its distance to the nearer window edge (an edge of the doc itself
is no cut). In practice the overlap is
split in the middle: its first half comes from the earlier window and its
second half from the later one. Each piece's output therefore comes from exactly
one encoder position, which keeps gradients and outputs exact.
"""
from typing import List, Tuple


def window_starts(n_pieces: int, window_size: int, stride: int) -> List[int]:
    """Start offsets of the windows over ``n_pieces`` pieces. A doc without
    pieces still gets one (empty) window."""
    if n_pieces <= window_size:
        return [0]
    starts = list(range(0, n_pieces - window_size, stride))
    starts.append(n_pieces - window_size)
    return starts


def piece_owners(
    n_pieces: int, starts: List[int], window_size: int
) -> List[Tuple[int, int]]:
    """For each piece, ``(window index, position in that window)`` of the
    window it takes its output from (positions count ``<s>`` as 0)."""
    owners = []
    window = 0
    for piece in range(n_pieces):
        # Windows are sorted, so the best window only ever moves right.
        while window + 1 < len(starts) and starts[window + 1] <= piece:
            current = _context(piece, starts[window], window_size, n_pieces)
            following = _context(piece, starts[window + 1], window_size, n_pieces)
            if following >= current:
                window += 1
            else:
                break
        owners.append((window, piece - starts[window] + 1))
    return owners


def _context(piece: int, start: int, window_size: int, n_pieces: int) -> int:
    """How many pieces of context ``piece`` has on its shorter side within
    the window at ``start`` (the doc's own edges don't count as a cut)."""
    end = min(start + window_size, n_pieces)
    if not start <= piece < end:
        return -1
    left = piece - start if start > 0 else n_pieces
    right = end - 1 - piece if end < n_pieces else n_pieces
    return min(left, right)


def overflow_starts(n_pieces: int, window_size: int, overlap: int) -> List[int]:
    """Start offsets of the windows of a question-answering context, as Hugging
    Face tokenizers cut an overflowing second sequence: windows of
    ``window_size`` pieces, each overlapping the previous one by ``overlap``
    pieces, until one reaches the end (the last may be shorter)."""
    if not 0 <= overlap < window_size:
        raise ValueError(
            f"The overlap of context windows ({overlap} pieces) must be smaller "
            f"than the room left for the context ({window_size} pieces): lower "
            "doc_stride, or raise max_seq_len."
        )
    starts = [0]
    while starts[-1] + window_size < n_pieces:
        starts.append(starts[-1] + window_size - overlap)
    return starts
