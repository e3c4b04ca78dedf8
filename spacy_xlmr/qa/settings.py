"""The settings of extractive QA and their allowed ranges: ``top_k``,
``max_answer_len`` and ``max_question_len`` at least 1; ``max_seq_len``
room for ``<s> question </s></s> context </s>`` with a question of
``max_question_len`` pieces and at least 1 context piece, and at most what
the encoder takes; ``doc_stride`` smaller than the room the longest question
leaves for the context. ``check_settings`` refuses others, naming the range.
"""
from typing import Any, Callable, Dict, Optional

from ..errors import Errors

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
                Errors.QA_SETTING_NOT_AN_INT.format(component=name, option=option, value=value)
            )
    for option in ("top_k", "max_answer_len", "max_question_len"):
        value = settings[option]
        if value < 1:
            raise ValueError(
                Errors.QA_SETTING_BELOW_ONE.format(component=name, option=option, value=value)
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
            Errors.QA_MAX_QUESTION_LEN_OUT_OF_RANGE.format(
                component=name,
                max_question_len=max_question_len,
                highest=most - 5,
                positions=most,
            )
        )
    if max_seq_len < shortest or (limit is not None and max_seq_len > limit):
        allowed = (
            f"{shortest} <= max_seq_len <= {limit}" if limit is not None
            else f"max_seq_len >= {shortest}"
        )
        takes = f"{limit or XLMR_POSITIONS} positions" + ("" if limit else " (XLM-R)")
        raise ValueError(
            Errors.QA_MAX_SEQ_LEN_OUT_OF_RANGE.format(
                component=name,
                max_seq_len=max_seq_len,
                allowed=allowed,
                takes=takes,
                max_question_len=max_question_len,
            )
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
            Errors.QA_DOC_STRIDE_OUT_OF_RANGE.format(
                component=name,
                doc_stride=doc_stride,
                max_question_len=max_question_len,
                max_seq_len=max_seq_len,
                context_room=context_room,
                fixes="; or ".join(fixes),
            )
        )
