"""Windows over a doc's pieces, counted in pieces.

A doc of at most ``window_size`` pieces is one window (plus ``<s>`` and
``</s>``). A longer doc of ``n`` pieces is cut into as many windows as
starting one every ``stride`` pieces would take, but of equal length and evenly
spaced: every window has at most ``window_size`` pieces, consecutive windows
overlap by at least ``window_size - stride`` pieces, the first starts at the
first piece and the last ends at the last. Nothing is truncated, and no window
repeats more of its neighbour than the context guarantee needs (a last window
flush with the doc end would repeat up to ``window_size - 1`` pieces).

Overlaps are combined by ownership, not averaging: every piece takes its output
from the one window where it has the most context, i.e. the window that
maximises its distance to the nearer window edge (an edge of the doc itself
is no cut). In practice the overlap is split in the middle: its first half
comes from the earlier window and its second half from the later one. Each
piece's output therefore comes from exactly one encoder position, which keeps
gradients and outputs exact.

The windows of a batch of docs run through the encoder in batches of similar
length (``length_batches``), padded to the longest (``pad_windows``).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy
from thinc.types import Floats3d

from ..errors import Errors

Span = Tuple[int, int]
# The default window and stride: the ratio of the stride that a suggested
# window_size gets.
DEFAULT_WINDOW_SIZE = 510
DEFAULT_STRIDE = 448


def check_window_settings(
    window_size: int, stride: int, max_window_size: Optional[int] = None
) -> None:
    """Refuse a ``window_size``/``stride`` pair that can't cut docs into
    overlapping windows (``0 < stride < window_size``, ``window_size`` at
    most ``max_window_size`` once the model's is known), naming the allowed
    range and a valid pair."""
    most = max_window_size if max_window_size is not None else DEFAULT_WINDOW_SIZE
    for option, value in (("window_size", window_size), ("stride", stride)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(
                Errors.WINDOW_SETTING_NOT_AN_INT.format(
                    option=option, value=value, example=suggest_windows(most, stride)
                )
            )
    if window_size < 2 or (max_window_size is not None and window_size > max_window_size):
        reason = (
            "windows must hold at least 2 pieces, to overlap"
            if window_size < 2
            else f"with <s> and </s> a window would have {window_size + 2} positions, "
            f"but the model takes at most {most + 2}"
        )
        raise ValueError(
            Errors.WINDOW_SIZE_OUT_OF_RANGE.format(
                window_size=window_size, too="too small" if window_size < 2 else "too large",
                reason=reason, most=most, example=suggest_windows(most, stride),
            )
        )
    if not 0 < stride < window_size:
        raise ValueError(
            Errors.STRIDE_OUT_OF_RANGE.format(
                stride=stride, window_size=window_size, most=window_size - 1,
                example=suggest_windows(window_size, stride),
            )
        )


def suggest_windows(window_size: int, stride: int) -> str:
    """A valid pair: ``window_size`` (at least 2) with ``stride`` if that
    fits, else the default stride's share of it."""
    window_size = max(2, window_size)
    if not isinstance(stride, int) or not 0 < stride < window_size:
        stride = max(1, window_size * DEFAULT_STRIDE // DEFAULT_WINDOW_SIZE)
    return f"window_size = {window_size}, stride = {stride}"


def window_spans(n_pieces: int, window_size: int, stride: int) -> List[Span]:
    """``(start, end)`` piece offsets of the windows over ``n_pieces`` pieces.
    A doc without pieces still gets one (empty) window."""
    if n_pieces <= window_size:
        return [(0, n_pieces)]
    min_overlap = window_size - stride
    n_windows = 1 + -(-(n_pieces - window_size) // stride)
    # The shortest equal length that covers the doc with the overlaps; at
    # most window_size because n_windows windows at stride would cover it.
    length = -(-(n_pieces + (n_windows - 1) * min_overlap) // n_windows)
    starts = [i * (n_pieces - length) // (n_windows - 1) for i in range(n_windows)]
    return [(start, start + length) for start in starts]


def piece_owners(n_pieces: int, spans: List[Span]) -> List[Tuple[int, int]]:
    """For each piece, ``(window index, position in that window)`` of the
    window it takes its output from (positions count ``<s>`` as 0)."""
    owners = []
    window = 0
    for piece in range(n_pieces):
        # Windows are sorted, so the best window only ever moves right.
        while window + 1 < len(spans) and spans[window + 1][0] <= piece:
            current = _context(piece, spans[window], n_pieces)
            following = _context(piece, spans[window + 1], n_pieces)
            if following >= current:
                window += 1
            else:
                break
        owners.append((window, piece - spans[window][0] + 1))
    return owners


@dataclass
class EncodedDoc:
    """The encoder's output of one doc's pieces: window ``w`` holds pieces
    ``spans[w]``, at positions 1.. of ``hidden[w]`` (position 0 is ``<s>``)."""

    hidden: Floats3d  # (windows, seq_len, width)
    spans: List[Span]

    def piece_rows(self) -> List[int]:
        """For each piece, its row in the flattened ``(windows * seq_len,
        width)`` hidden states: in the window that owns it (``piece_owners``)."""
        n_pieces = self.spans[-1][1] if self.spans else 0
        seq_len = self.hidden.shape[1]
        owners = piece_owners(n_pieces, self.spans)
        return [window * seq_len + position for window, position in owners]


def _context(piece: int, span: Span, n_pieces: int) -> int:
    """How many pieces of context ``piece`` has on its shorter side within
    the window ``span`` (the doc's own edges don't count as a cut)."""
    start, end = span
    if not start <= piece < end:
        return -1
    left = piece - start if start > 0 else n_pieces
    right = end - 1 - piece if end < n_pieces else n_pieces
    return min(left, right)


def length_batches(
    windows: Sequence[Sequence[int]], max_batch_pieces: int, max_padding: float = 1.0
) -> List[List[int]]:
    """Group window indices into batches of similar length: sorted by length,
    a batch ends before the window that would take it past
    ``max_batch_pieces`` positions or past ``max_padding`` padding (a share of
    its positions; a single longer window is its own batch)."""
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    batches: List[List[int]] = []
    real_positions = 0
    for window_i in order:
        length = len(windows[window_i])
        if batches:
            # The windows come by length, so this one sets the batch's length.
            positions = length * (len(batches[-1]) + 1)
            real_positions += length
            if positions <= max_batch_pieces and real_positions >= (1 - max_padding) * positions:
                batches[-1].append(window_i)
                continue
        batches.append([window_i])
        real_positions = length
    return batches


def pad_windows(
    rows: Sequence[Sequence[int]], pad_id: int
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """The input ids of ``rows`` padded with ``pad_id`` to the longest, and
    their attention mask."""
    seq_len = max(len(row) for row in rows)
    input_ids = numpy.full((len(rows), seq_len), pad_id, dtype="int64")
    mask = numpy.zeros((len(rows), seq_len), dtype="int64")
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask
