"""Every name the package declares through entry points resolves."""
import sys

import spacy
from spacy.language import Language
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


def test_factories_resolve_without_importing_the_package():
    names = {ep.name for ep in _ours("spacy_factories")}
    assert names == {"xlmr_transformer", "xlmr_ner", "xlmr_textcat"}
    for name in names:
        assert Language.has_factory(name) or spacy.blank("xx").add_pipe(name)
