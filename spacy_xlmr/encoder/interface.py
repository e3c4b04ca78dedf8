"""The shared encoder as heads see it: a small, typed interface.

Every head, component, benchmark and test reaches the encoder through an
``Encoder``, never through the thinc model's attrs, layers or shims. A head
gets it from its listener in one way: ``encoder_of(head_model)`` (the
component ``xlmr_transformer`` connects each listener to its ``Encoder`` when
the pipeline links its components).

The types that cross the boundary:

* piece ids: ``Sequence[int]`` per doc, without ``<s>``/``</s>``; a window's
  ids with them;
* ``EncodedDoc`` (``windows.py``): one doc's ``(windows, seq_len, width)``
  hidden states, its window spans and the row of each piece
  (``piece_rows``: (window, position) → row of the flattened states);
* ``Floats2d``: one window's ``(length, width)`` hidden states;
* ``BackpropDocs`` / ``BackpropWindows``: callbacks taking the gradient of
  each output (``None`` for none) back into the encoder's weights.
"""
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple, cast

import torch
from thinc.types import Floats2d, Floats3d

from ..storage import WEIGHTS_DIGEST
from . import model as encoder_model
from .module import max_positions
from .model import EncoderModel
from .windows import EncodedDoc

if TYPE_CHECKING:
    from transformers import XLMRobertaConfig, XLMRobertaModel
    from transformers.tokenization_utils_fast import PreTrainedTokenizerFast

BackpropDocs = Callable[[List[Optional[Floats3d]]], None]
BackpropWindows = Callable[[List[Optional[Floats2d]]], None]


class Encoder:
    """The shared XLM-R encoder of a pipeline (its weights, tokenizer and
    window settings), for heads that read or run it."""

    def __init__(self, model: EncoderModel) -> None:
        self.model = model

    @property
    def name(self) -> str:
        """The checkpoint the config names (hub name or directory)."""
        return str(self.model.attrs["name"])

    @property
    def is_loaded(self) -> bool:
        """Whether the weights and tokenizer are there (after ``initialize``
        or loading)."""
        return encoder_model.is_loaded(self.model)

    @property
    def weights_digest(self) -> Optional[str]:
        """The sha256 of the weights file this encoder was last saved to or
        loaded from (None if never saved): heads record it to be loaded only
        with the same weights."""
        return self.model.attrs.get(WEIGHTS_DIGEST)

    def check_loaded(self) -> None:
        """Raise an error saying how to load the weights if there are none."""
        encoder_model.check_loaded(self.model)

    @property
    def tokenizer(self) -> "PreTrainedTokenizerFast":
        self.check_loaded()
        return encoder_model.get_tokenizer(self.model)

    @property
    def config(self) -> "XLMRobertaConfig":
        """The Hugging Face config of the loaded checkpoint."""
        return cast("XLMRobertaConfig", self.torch_module.config)

    @property
    def max_positions(self) -> int:
        """The most positions one input may have, ``<s>`` and ``</s>``
        included (514 - 2 = 512 for XLM-R: RoBERTa's position ids start after
        the padding index)."""
        return max_positions(self.config)

    @property
    def width(self) -> int:
        """The size of the hidden states."""
        self.check_loaded()
        return self.model.get_dim("nO")

    @property
    def word_embeddings(self) -> torch.nn.Parameter:
        """The ``(vocab, width)`` input embedding matrix (the masked-LM
        decoder is tied to it)."""
        return self.torch_module.embeddings.word_embeddings.weight

    @property
    def torch_module(self) -> "XLMRobertaModel":
        """The ``XLMRobertaModel`` that holds the weights."""
        self.check_loaded()
        return encoder_model.get_transformer(self.model)

    def encode_pieces(
        self, docs_ids: Sequence[Sequence[int]], is_train: bool
    ) -> Tuple[List[EncodedDoc], BackpropDocs]:
        """Encode each doc's piece ids (without ``<s>``/``</s>``), cut into
        windows and batched by length across docs."""
        return encoder_model.encode_pieces(self.model, docs_ids, is_train)

    def encode_windows(
        self, windows: Sequence[Sequence[int]], is_train: bool
    ) -> Tuple[List[Floats2d], BackpropWindows]:
        """Encode complete inputs (ids with special tokens, at most
        ``max_positions`` each), batched by length."""
        return encoder_model.encode_windows(self.model, windows, is_train)
