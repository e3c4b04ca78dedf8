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


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_spacy_debug_config_passes(path):
    """`python -m spacy debug config <cfg> --paths.train x --paths.dev y` exits
    0 (the CLI run in-process: same argument parsing, validation and exit
    code, without a Python start-up per config)."""
    from spacy.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(
        app, ["debug", "config", str(path), "--paths.train", "x", "--paths.dev", "y"]
    )
    assert result.exit_code == 0, result.output
    assert "Config is valid" in result.output
