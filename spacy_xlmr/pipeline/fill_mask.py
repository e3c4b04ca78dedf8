"""``xlmr_fill_mask``: predict the tokens behind ``<mask>`` with the masked-LM
head of ``XLMRobertaForMaskedLM`` on the shared encoder.

Write masks as ``<mask>`` in the text: the component adds a tokenizer special
case so that ``<mask>`` is one spaCy token (tokenizers that segment text
themselves, e.g. ``zh``, may still split it; check ``doc[i].text``). For each
mask, ``top_k`` predictions ``{"token", "token_str", "score", "sequence"}`` go
to ``doc._.fill_mask`` (a list per mask, in text order) and to the mask
token's ``token._.fill_mask``. A doc without masks gets an empty list.
``sequence`` (the text with the prediction filled in, as HF's pipeline
decodes it) is None for docs longer than one encoder window.
Training (the MLM objective) is not implemented yet: the component is for
inference with an imported checkpoint.
"""
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import numpy
from spacy.language import Language
from spacy.symbols import ORTH
from spacy.tokens import Doc, Token
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats2d

from .. import hf
from ..encoder.model import get_transformer
from ..heads.masked_lm import HEAD_WEIGHT_PREFIXES, build_head_module, encoder_of
from .head_pipe import HeadPipe
from .transformer import add_encoder_if_missing, listened_width

MASK = "<mask>"
DEFAULT_FILL_MASK_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy-xlmr.MaskedLM.v1"
upstream = "*"
"""
)["model"]

for _cls in (Doc, Token):
    if not _cls.has_extension("fill_mask"):
        _cls.set_extension("fill_mask", default=None)


@Language.factory(
    "xlmr_fill_mask",
    assigns=["doc._.fill_mask", "token._.fill_mask"],
    default_config={"model": DEFAULT_FILL_MASK_MODEL, "top_k": 5, "targets": None},
)
def make_xlmr_fill_mask(
    nlp: Language,
    name: str,
    model: Model[List[Doc], List[Floats2d]],
    top_k: int,
    targets: Optional[List[str]],
) -> "XLMRFillMask":
    """Fill ``<mask>`` tokens. ``targets`` restricts the candidates to these
    tokens (as the HF pipeline's ``targets``)."""
    add_encoder_if_missing(nlp, model)
    nlp.tokenizer.add_special_case(MASK, [{ORTH: MASK}])
    return XLMRFillMask(nlp.vocab, model, name=name, top_k=top_k, targets=targets)


class XLMRFillMask(HeadPipe):
    """Top-k predictions for ``<mask>`` tokens."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], List[Floats2d]],
        name: str = "xlmr_fill_mask",
        *,
        top_k: int = 5,
        targets: Optional[Sequence[str]] = None,
    ) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}.")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.top_k = top_k
        self.targets = list(targets) if targets else None
        self._target_ids: Optional[numpy.ndarray] = None  # computed on first use
        self.cfg: Dict[str, Any] = {"labels": [], "width": None, "vocab_size": None, "eps": None}

    def predict(self, docs: Iterable[Doc]) -> List[Floats2d]:
        """Vocabulary logits, one row per mask of each doc."""
        return self.model.predict(list(docs))

    def set_annotations(self, docs: Iterable[Doc], logits: List[Floats2d]) -> None:
        """Write the top-k predictions of every mask."""
        tokenizer = encoder_of(self.model).attrs["tokenizer"]
        candidates = self._candidate_ids(tokenizer)
        for doc, doc_logits in zip(docs, logits):
            doc_logits = self.model.ops.to_numpy(doc_logits)
            masks = [token for token in doc if token.text == MASK]
            wordpieces = doc._.trf_data.wordpieces
            # The filled-in sequence is given for docs that fit one window.
            ids = wordpieces.input_ids[0, : wordpieces.lengths[0]].tolist()
            mask_positions = [i for i, piece in enumerate(ids) if piece == tokenizer.mask_token_id]
            single_window = len(wordpieces.lengths) == 1
            results = []
            for i, row in enumerate(doc_logits):
                probs = _softmax(row)
                pool = candidates if candidates is not None else numpy.arange(len(probs))
                best = pool[numpy.argsort(-probs[pool], kind="stable")[: self.top_k]]
                predictions = []
                for token_id in best:
                    sequence = None
                    if single_window:
                        filled = list(ids)
                        filled[mask_positions[i]] = int(token_id)
                        sequence = tokenizer.decode(
                            filled, skip_special_tokens=len(doc_logits) == 1
                        )
                    predictions.append({
                        "score": float(probs[token_id]),
                        "token": int(token_id),
                        "token_str": tokenizer.decode([int(token_id)]),
                        "sequence": sequence,
                    })
                results.append(predictions)
                if i < len(masks):
                    masks[i]._.fill_mask = predictions
            doc._.fill_mask = results

    def add_label(self, label: str) -> int:
        raise NotImplementedError(f"[{self.name}] Fill-mask has no labels.")

    def get_loss(self, examples: Iterable[Example], scores: Any) -> None:
        raise NotImplementedError("Masked-LM training isn't implemented yet.")

    def update(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, float]:
        """No-op until the MLM objective is implemented (the encoder is not
        trained through this component)."""
        return kwargs.get("losses") or {}

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        hf_checkpoint: Optional[str] = None,
    ) -> None:
        """Create the head; with ``hf_checkpoint`` (a fine-tuned or pretrained
        ``XLMRobertaForMaskedLM``, e.g. ``xlm-roberta-base`` itself), load its
        ``lm_head`` weights."""
        config = hf.load_config(hf_checkpoint) if hf_checkpoint else None
        encoder = encoder_of(self.model)
        encoder_config = get_transformer(encoder).config
        self.cfg["width"] = listened_width(self.model, self.name)
        self.cfg["vocab_size"] = encoder_config.vocab_size
        self.cfg["eps"] = (config or encoder_config).layer_norm_eps
        self._build_head()
        if hf_checkpoint is not None:
            self._import_hf_head(hf_checkpoint, HEAD_WEIGHT_PREFIXES, nlp)

    def _build_head(self, keep: bool = False) -> None:
        build_head_module(self.model, self.cfg["vocab_size"], self.cfg["width"], self.cfg["eps"])

    def _candidate_ids(self, tokenizer) -> Optional[numpy.ndarray]:
        """Vocabulary ids of ``targets`` (None: the whole vocabulary)."""
        if not self.targets or self._target_ids is not None:
            return self._target_ids
        ids = []
        for target in self.targets:
            pieces = tokenizer.tokenize(target)
            if len(pieces) != 1:
                raise ValueError(
                    f"[{self.name}] Target '{target}' isn't one token of the "
                    f"vocabulary (it splits into {pieces}); use single pieces."
                )
            ids.append(tokenizer.convert_tokens_to_ids(pieces[0]))
        self._target_ids = numpy.array(sorted(set(ids)))
        return self._target_ids


def _softmax(row: numpy.ndarray) -> numpy.ndarray:
    exp = numpy.exp(row - row.max())
    return exp / exp.sum()
