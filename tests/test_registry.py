"""Every name the package declares through entry points resolves."""
import sys

from spacy.util import registry

if sys.version_info >= (3, 10):
    from importlib.metadata import entry_points
else:  # pragma: no cover
    from importlib_metadata import entry_points

GROUPS = {
    "spacy_architectures": registry.architectures,
    "thinc_layers": registry.layers,
    "spacy_scorers": registry.scorers,
}


def _ours(group):
    return [ep for ep in entry_points(group=group) if ep.value.startswith("spacy_xlmr.")]


def test_registered_functions_resolve():
    for group, reg in GROUPS.items():
        names = [ep.name for ep in _ours(group)]
        assert names, group
        for name in names:
            assert callable(reg.get(name))


def test_every_entry_point_loads():
    """A broken entry point breaks every spacy.blank() in the environment."""
    for group in ("spacy_factories", "spacy_architectures", "spacy_scorers", "thinc_layers"):
        for ep in _ours(group):
            assert callable(ep.load()), ep


def test_factories_resolve_without_importing_the_package():
    import subprocess
    import sys

    # A fresh interpreter with no `import spacy_xlmr`: spaCy finds the
    # factories through the entry points.
    names = {ep.name for ep in _ours("spacy_factories")}
    assert names == {"xlmr_transformer", "xlmr_ner", "xlmr_textcat", "xlmr_fill_mask", "xlmr_qa"}
    code = (
        "import spacy\n"
        "nlp = spacy.blank('xx')\n"
        f"for name in {sorted(names)!r}: nlp.add_pipe(name, name=name)\n"
        "print(nlp.pipe_names)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "xlmr_ner" in out.stdout
