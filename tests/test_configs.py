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
    assert nlp.pipe_names[0] == "transformer"
    factories = {nlp.get_pipe_meta(name).factory for name in nlp.pipe_names}
    assert factories <= {"xlmr_transformer", "xlmr_ner", "xlmr_textcat", "xlmr_fill_mask", "xlmr_qa"}
    training = registry.resolve(
        nlp.config.interpolate()["training"], schema=ConfigSchemaTraining
    )
    assert training["max_steps"] > 0


def test_there_are_tiny_and_base_configs():
    for task in ("ner", "textcat", "multitask", "mlm", "qa"):
        assert {f"{task}-tiny.cfg", f"{task}-base.cfg"} <= {p.name for p in CONFIGS}
