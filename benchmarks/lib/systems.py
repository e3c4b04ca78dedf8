"""The row type of the scripts' systems tables."""
from pathlib import Path
from typing import Any, Callable, Dict, NamedTuple, Optional


class System(NamedTuple):
    """One system a benchmark compares.

    ``label``: the name in tables; ``description``: what it is; ``config``:
    the training config (training comparisons); ``texts``: which text set it
    reads, ``reference``: the system its speed ratio is relative to,
    ``setup``: the function that builds it and ``options`` its arguments
    (speed.py)."""

    label: str
    description: str
    config: Optional[Path] = None
    texts: str = "plain"
    reference: Optional[str] = None
    setup: Optional[Callable] = None
    options: Dict[str, Any] = {}
