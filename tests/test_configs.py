"""Every shipped config is valid and builds its pipeline (no weights loaded)."""
from pathlib import Path

import pytest
from spacy.util import load_config, load_model_from_config, registry
from spacy.schemas import ConfigSchemaTraining

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.cfg"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_builds(path):
    config = load_config(path, overrides={"paths.train": "t.spacy", "paths.dev": "d.spacy"})
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names == ["transformer", "ner"]
    assert nlp.get_pipe_meta("ner").factory == "xlmr_ner"
    training = registry.resolve(
        nlp.config.interpolate()["training"], schema=ConfigSchemaTraining
    )
    assert training["max_steps"] > 0


def test_there_are_tiny_and_base_configs():
    assert {p.name for p in CONFIGS} >= {"ner-tiny.cfg", "ner-base.cfg"}
