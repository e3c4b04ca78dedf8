"""spacy-xlmr: XLM-RoBERTa as a first-class citizen of spaCy pipelines.

Factories and architectures are registered through entry points (see
pyproject.toml), so ``spacy.blank("xx").add_pipe("xlmr_ner")`` works without
importing this package.
"""
from .errors import CheckpointError, DamagedPipelineError
from .extensions import install_extensions
from .pipeline.ner import XLMRNER
from .pipeline.transformer import XLMRTransformer
from .storage import save_pipeline

install_extensions()

__version__ = "0.1.0"
__all__ = ["CheckpointError", "DamagedPipelineError", "XLMRNER", "XLMRTransformer", "save_pipeline"]
