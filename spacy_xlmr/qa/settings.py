"""The settings of extractive QA and their allowed ranges: ``top_k``,
``max_answer_len`` and ``max_question_len`` at least 1; ``max_seq_len``
room for ``<s> question </s></s> context </s>`` with a question of
``max_question_len`` pieces and at least 1 context piece, and at most what
the encoder takes; ``doc_stride`` smaller than the room the longest question
leaves for the context. ``check_settings`` refuses others, naming the range.
"""
from typing import Any, Callable, Dict, Optional

# The most positions XLM-R checkpoints take (before the encoder is loaded).
XLMR_POSITIONS = 512
SETTINGS = ("top_k", "max_answer_len", "max_question_len", "max_seq_len", "doc_stride")


def check_settings(
    name: str, settings: Dict[str, Any], encoder_positions: Callable[[], Optional[int]]
) -> None:
    """Refuse ``settings`` (a value for each of ``SETTINGS``) the pairs can't
    be cut with, naming the allowed range in a ValueError prefixed with the
    component's ``name``. ``encoder_positions`` gives the most positions the
    loaded encoder takes, or None before it is loaded."""
    for option in SETTINGS:
        value = settings[option]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(
                f"[{name}] {option} = {value!r} is not an integer: set "
                f"{option} to a whole number of pieces (or answers, for top_k)."
            )
    for option in ("top_k", "max_answer_len", "max_question_len"):
        value = settings[option]
        if value < 1:
            raise ValueError(
                f"[{name}] {option} = {value} is out of range: set {option} >= 1."
            )
    max_question_len = settings["max_question_len"]
    max_seq_len = settings["max_seq_len"]
    doc_stride = settings["doc_stride"]
    limit = encoder_positions()
    # <s> question </s></s> context </s>: a context window needs at least
    # one piece more than the overlap doc_stride.
    shortest = max_question_len + 5
    most = limit or XLMR_POSITIONS
    if shortest > most and (limit is not None or max_seq_len < shortest):
        raise ValueError(
            f"[{name}] max_question_len = {max_question_len} is out of "
            f"range: set 1 <= max_question_len <= {most - 5}, so that a question "
            f"leaves the context at least 1 of the {most} positions the encoder "
            "takes (4 go to <s> and </s>)."
        )
    if max_seq_len < shortest or (limit is not None and max_seq_len > limit):
        allowed = (
            f"{shortest} <= max_seq_len <= {limit}" if limit is not None
            else f"max_seq_len >= {shortest}"
        )
        takes = f"{limit or XLMR_POSITIONS} positions" + ("" if limit else " (XLM-R)")
        raise ValueError(
            f"[{name}] max_seq_len = {max_seq_len} is out of range: set "
            f"{allowed}. The encoder takes at most {takes}; 4 positions go to "
            f"<s> and </s>, and a question of max_question_len = "
            f"{max_question_len} pieces must leave the context at least 1."
        )
    # The room the longest question leaves for the context, which
    # doc_stride overlaps.
    context_room = max_seq_len - max_question_len - 4
    if not 0 <= doc_stride < context_room:
        fixes = [f"0 <= doc_stride <= {context_room - 1}"]
        if doc_stride >= 0:
            if max_seq_len - doc_stride - 5 >= 1:
                fixes.append(f"max_question_len <= {max_seq_len - doc_stride - 5}")
            longest = max_question_len + doc_stride + 5
            if longest <= (limit or XLMR_POSITIONS):
                fixes.append(f"max_seq_len >= {longest}")
        raise ValueError(
            f"[{name}] doc_stride = {doc_stride} is out of range: the "
            "overlap of context windows must be at least 0 and smaller than the "
            f"room a question of max_question_len = {max_question_len} "
            f"pieces leaves for the context in max_seq_len = {max_seq_len} "
            f"positions ({context_room}; 4 positions go to <s> and </s>). "
            f"Set {'; or '.join(fixes)}."
        )
