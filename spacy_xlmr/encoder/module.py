"""The torch module inside the encoder's thinc model: Hugging Face's
``XLMRobertaModel`` together with its fast tokenizer.

Keeping them in one module lets thinc serialize an encoder wherever it is,
like any other layer: in the ``xlmr_transformer`` component, or copied into a
component by ``nlp.replace_listeners``. The encoder's ``PyTorchWrapper_v3``
layer exists from the start, empty until the weights are loaded, so a model
built from a config has the structure of a saved one; its serialized state is
a Hugging Face directory's files (``config.json``, safetensors weights, the
tokenizer's JSON files): nothing is pickled, and loading reads nothing else.
A tokenizer with ids past the embedding matrix is refused
(``check_tokenizer_fits``).
"""
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Optional

import srsly
import torch
from thinc.api import Model

from .. import hf
from ..errors import Errors
from .torch_module import wrapped_module

if TYPE_CHECKING:
    from transformers import PretrainedConfig, XLMRobertaModel
    from transformers.tokenization_utils_fast import PreTrainedTokenizerFast

# spacy-xlmr's own settings of the module, saved next to the HF files.
SETTINGS_FILE = "spacy_xlmr_module.json"


class EncoderModule(torch.nn.Module):
    """An ``XLMRobertaModel`` (``transformer``) and its fast tokenizer."""

    def __init__(
        self, transformer: "XLMRobertaModel", tokenizer: "PreTrainedTokenizerFast"
    ) -> None:
        super().__init__()
        self.transformer = transformer
        self.tokenizer = tokenizer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return self.transformer(input_ids=input_ids, attention_mask=attention_mask)

    def save(self, directory: Path) -> None:
        """Write the module as a Hugging Face directory (safetensors weights)."""
        directory.mkdir(parents=True, exist_ok=True)
        with hf.quiet_transformers():
            self.transformer.save_pretrained(directory, safe_serialization=True)
        hf.save_tokenizer(self.tokenizer, directory)

    def to_files(self) -> Dict[str, bytes]:
        """The files of ``save``, by name, with the module's settings."""
        with tempfile.TemporaryDirectory() as tmp:
            self.save(Path(tmp))
            files = {path.name: path.read_bytes() for path in Path(tmp).iterdir()}
        settings = {"gradient_checkpointing": self.transformer.is_gradient_checkpointing}
        files[SETTINGS_FILE] = json.dumps(settings).encode("utf8")
        return files


def load_module(name_or_path: str) -> EncoderModule:
    """Load config, tokenizer and weights from a hub name or directory."""
    config = hf.load_config(name_or_path)
    tokenizer = hf.load_tokenizer(name_or_path)
    transformer = hf.load_encoder(name_or_path, config=config)
    return EncoderModule(transformer, tokenizer)


def module_from_files(files: Dict[str, bytes]) -> EncoderModule:
    """Load the files written by ``EncoderModule.to_files``."""
    settings = json.loads(files.get(SETTINGS_FILE, b"{}"))
    with tempfile.TemporaryDirectory() as tmp:
        for filename, data in files.items():
            if filename != SETTINGS_FILE:
                (Path(tmp) / Path(filename).name).write_bytes(data)
        module = load_module(tmp)
    if settings.get("gradient_checkpointing"):
        enable_gradient_checkpointing(module.transformer)
    return module


def enable_gradient_checkpointing(transformer: "XLMRobertaModel") -> None:
    # Non-reentrant checkpointing: the one torch recommends, and the one
    # that works when the inputs (token ids) need no gradient.
    transformer.gradient_checkpointing_enable(
        gradient_checkpointing_kwargs={"use_reentrant": False}
    )


def serialize_module(module: Optional[EncoderModule]) -> bytes:
    """The shim's state: the module's files (none before loading)."""
    return srsly.msgpack_dumps(module.to_files() if module is not None else {})


def deserialize_module(
    module: Optional[EncoderModule], data: bytes, device: torch.device
) -> Optional[EncoderModule]:
    """The module whose files ``serialize_module`` wrote, on ``device``."""
    files = srsly.msgpack_loads(data)
    if not files:
        return None
    return module_from_files(files).to(device)


def encoder_module(model: Model) -> Optional[EncoderModule]:
    """The module of an encoder model (None before its weights are loaded)."""
    module = wrapped_module(model.layers[0]) if model.layers else None
    return module if isinstance(module, EncoderModule) else None


def check_tokenizer_fits(
    transformer: "XLMRobertaModel", tokenizer: "PreTrainedTokenizerFast", source: str
) -> None:
    """Refuse a tokenizer with ids past the rows of the embedding matrix
    (tokens added without resizing the embeddings): the encoder would fail
    with an IndexError on the first text that contains one."""
    n_rows = transformer.get_input_embeddings().num_embeddings
    vocab = tokenizer.get_vocab()  # type: ignore[attr-defined]
    n_ids = max(vocab.values()) + 1
    if n_ids <= n_rows:
        return
    beyond = sorted((i, piece) for piece, i in vocab.items() if i >= n_rows)
    shown = ", ".join(repr(piece) for _, piece in beyond[:5])
    if len(beyond) > 5:
        shown += f" and {len(beyond) - 5} more"
    raise hf.CheckpointError(
        Errors.TOKENS_WITHOUT_EMBEDDING.format(
            source=source, n_ids=n_ids, n_rows=n_rows, n_beyond=len(beyond), shown=shown
        )
    )


def max_positions(config: "PretrainedConfig") -> int:
    """The most positions one input may have: RoBERTa's position ids start
    after the padding index."""
    return config.max_position_embeddings - config.pad_token_id - 1
