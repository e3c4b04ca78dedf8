"""One-line pipelines from fine-tuned Hugging Face checkpoints."""
from typing import Any, Dict, Optional

import spacy
from spacy.language import Language

from . import hf
from .errors import Errors
from .pipeline.textcat import MULTI_LABEL_PROBLEM


def from_huggingface(
    checkpoint: str,
    task: str = "token-classification",
    *,
    lang: str = "xx",
    config: Optional[Dict[str, Any]] = None,
    encoder_config: Optional[Dict[str, Any]] = None,
) -> Language:
    """A blank ``lang`` pipeline whose encoder and head are imported from the
    fine-tuned ``checkpoint`` (hub name or directory), ready to use or to keep
    training. E.g. ``from_huggingface("./xlmr-ner", "token-classification")``.
    For "text-classification", ``exclusive_classes`` follows the checkpoint's
    ``problem_type`` unless ``config`` sets it.

    config (dict): Settings for the head component (e.g. ``{"decoder": "greedy"}``).
    encoder_config (dict): Settings for the encoder model (e.g. ``{"stride": 256}``).
    """
    if task not in hf.HEAD_TASKS:
        raise ValueError(Errors.UNKNOWN_TASK.format(task=task, choices=", ".join(hf.HEAD_TASKS)))
    factory, name = hf.HEAD_TASKS[task].factory, hf.HEAD_TASKS[task].component
    config = dict(config or {})
    if task == "text-classification":
        problem_type = hf.load_config(checkpoint).problem_type
        config.setdefault("exclusive_classes", problem_type != MULTI_LABEL_PROBLEM)
    nlp = spacy.blank(lang)
    model = {"name": str(checkpoint), **(encoder_config or {})}
    nlp.add_pipe("xlmr_transformer", name="transformer", config={"model": model})
    nlp.add_pipe(factory, name=name, config=config)
    nlp.config["initialize"]["components"][name] = {"hf_checkpoint": str(checkpoint)}
    nlp.initialize()
    return nlp
