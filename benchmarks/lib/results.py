"""Results: the JSON header every run records, number formats, and writing
``results.json`` / ``results.md``."""
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict

from .env import machine, versions


def header(args, **extra) -> Dict:
    """The command, its options, ``extra``, the machine and the versions."""
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": {k: str(v) for k, v in vars(args).items() if not k.startswith("worker")},
        **extra,
        "machine": machine(),
        "versions": versions(),
    }


def save(results: Dict, out: Path) -> Path:
    """Write ``out/results.json`` (also after each run, so a crash keeps the
    results so far)."""
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=2), encoding="utf8")
    return path


def finish(results: Dict, out: Path, start: float, table: Callable[[Dict], str]) -> str:
    """Record the total wall time since ``start``, write ``results.json`` and
    the markdown ``table(results)`` as ``results.md``, and print the table."""
    results["total_wall_s"] = time.perf_counter() - start
    path = save(results, out)
    text = table(results)
    (out / "results.md").write_text(text + "\n", encoding="utf8")
    print()
    print(text)
    print(f"\nTotal wall time: {results['total_wall_s']:.0f} s; results in {path}")
    return text


def pct(x) -> str:
    """A share as a percentage with one decimal ("–" for None)."""
    return "–" if x is None else f"{100 * x:.1f}"


def fmt(x, spec: str = ".0f", scale: float = 1.0) -> str:
    """``x * scale`` formatted with ``spec`` ("–" for None)."""
    return "–" if x is None else format(x * scale, spec)
