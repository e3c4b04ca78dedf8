"""The linter and the type checker, as part of the test suite (their settings
are in setup.cfg): flake8 over the code, tests, benchmarks and data scripts,
mypy over the package."""
import ast
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


def _literal_texts(path: Path) -> List[str]:
    """``file:line`` of each ``raise E("...")`` / ``E(f"...")`` and
    ``warnings.warn("...")`` whose text is written at the call."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        call = node.exc if isinstance(node, ast.Raise) else node
        if not isinstance(call, ast.Call) or not call.args:
            continue
        func = call.func
        warns = isinstance(func, ast.Attribute) and func.attr == "warn" and (
            isinstance(func.value, ast.Name) and func.value.id == "warnings"
        )
        if not (isinstance(node, ast.Raise) or warns):
            continue
        text = call.args[0]
        while isinstance(text, ast.BinOp):
            text = text.left
        if isinstance(text, ast.JoinedStr) or (
            isinstance(text, ast.Constant) and isinstance(text.value, str)
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_error_texts_live_in_errors_py():
    """The package raises and warns with the texts of spacy_xlmr/errors.py."""
    package = ROOT / "spacy_xlmr"
    literal = [site for path in sorted(package.rglob("*.py")) if path.name != "errors.py"
               for site in _literal_texts(path)]
    assert not literal, f"write these texts in spacy_xlmr/errors.py: {literal}"
