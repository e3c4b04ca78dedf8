"""Every shipped config is valid and builds its pipeline (no weights loaded)."""
import json
from pathlib import Path
from typing import List

import pytest
import spacy
from spacy.util import load_config, load_model_from_config, registry
from spacy.schemas import ConfigSchemaTraining

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.cfg"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_builds(path):
    config = load_config(path, overrides={"paths.train": "t.spacy", "paths.dev": "d.spacy"})
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names[0] == "transformer"
    factories = {nlp.get_pipe_meta(name).factory for name in nlp.pipe_names}
    assert factories <= {
        "xlmr_transformer", "xlmr_ner", "xlmr_textcat", "xlmr_fill_mask", "xlmr_qa"
    }
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


def _assemble_overrides(path: Path, request) -> List[str]:
    """What a user gives ``spacy assemble`` for ``path`` on the tiny encoder:
    the encoder, and the labels of heads that need them (or, where the config
    imports an HF head from ``${paths.encoder}``, a checkpoint with one)."""
    config = load_config(path, interpolate=False)
    factories = {c["factory"] for c in config["components"].values()}
    init = config["initialize"]["components"]
    encoder = request.getfixturevalue("tiny_checkpoint")
    if init.get("fill_mask", {}).get("hf_checkpoint") == "${paths.encoder}":
        encoder = request.getfixturevalue("masked_lm_checkpoint")
    args = ["--paths.encoder", str(encoder)]
    labels = {"xlmr_ner": ["PER", "LOC"], "xlmr_textcat": ["sports", "travel"]}
    for name, component in config["components"].items():
        if component["factory"] in labels:
            args += [f"--initialize.components.{name}.labels",
                     json.dumps(labels[component["factory"]])]
    assert factories <= set(labels) | {"xlmr_transformer", "xlmr_fill_mask", "xlmr_qa"}, (
        "a factory that needs labels or a head checkpoint to assemble: add it here"
    )
    return args


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_spacy_assemble(path, request, tmp_path):
    """`python -m spacy assemble <cfg> <dir> --paths.encoder <tiny> ...` writes
    a pipeline that loads and runs (the CLI in-process). spaCy's assemble
    resolves [training.optimizer] on its own (as nlp.initialize() and
    nlp.resume_training() without an optimizer do), so no value there may
    refer to the rest of the config."""
    from spacy.cli import app
    from typer.testing import CliRunner

    output = tmp_path / "assembled"
    result = CliRunner().invoke(
        app, ["assemble", str(path), str(output), *_assemble_overrides(path, request)]
    )
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    nlp = spacy.load(output)
    doc = nlp("O presidente Lula visitou o Rio de Janeiro.")
    assert doc._.trf_data.model_output.last_hidden_state.shape[0] == 1
    training = registry.resolve(nlp.config.interpolate()["training"], schema=ConfigSchemaTraining)
    schedule = load_config(path).interpolate()["training"]["optimizer"]["learn_rate"]
    assert training["max_steps"] == schedule["total_steps"]
    nlp.resume_training()  # resolves [training.optimizer] of the saved config alone
