"""The linter and the type checker, as part of the test suite (their settings
are in setup.cfg): flake8 over the code, tests, benchmarks and data scripts,
mypy over the package; and the error texts: written in errors.py, each used,
each formatted with exactly its fields."""
import ast
import importlib.util
import string
import subprocess
import sys
from pathlib import Path
from typing import List, Set

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


def _template_fields(text: str) -> Set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_error_text_is_used_and_formatted_with_its_fields():
    """Each ``Errors.X`` / ``Warnings.X`` of errors.py is used; a text with
    fields is always formatted with exactly those, one without is never
    formatted (a wrong field would raise KeyError in place of the error)."""
    from spacy_xlmr.errors import Errors, Warnings

    texts = {(cls.__name__, name): text for cls in (Errors, Warnings)
             for name, text in vars(cls).items() if name.isupper()}
    used, wrong = set(), []
    for path in sorted((ROOT / "spacy_xlmr").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf8"))
        formatted = {}
        for node in ast.walk(tree):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(func, ast.Attribute) and func.attr == "format":
                formatted[id(func.value)] = node
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in ("Errors", "Warnings")):
                continue
            key = (node.value.id, node.attr)
            used.add(key)
            call = formatted.get(id(node))
            given = {kw.arg for kw in call.keywords} if call else set()
            if key not in texts or given != _template_fields(texts[key]):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} {key[1]} {sorted(given)}")
    assert not wrong, wrong
    assert used == set(texts), sorted(set(texts) - used)
