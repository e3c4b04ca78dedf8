"""The linter and the type checker, as part of the test suite (their settings
are in setup.cfg): flake8 over the code, tests, benchmarks and data scripts,
mypy over the package."""
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).parents[1]


def _run_tool(module: str, args: List[str]) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(
            f"{module} is not installed (it is in the test extra: pip install -e '.[test]')"
        )
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert result.returncode == 0, (
        f"`python -m {module} {' '.join(args)}` exited with {result.returncode}:\n"
        f"{result.stdout}"
    )


def test_flake8():
    _run_tool("flake8", ["spacy_xlmr", "tests", "benchmarks", "data"])


def test_mypy():
    _run_tool("mypy", ["spacy_xlmr"])
