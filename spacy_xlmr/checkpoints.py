"""Build small XLM-R checkpoints from scratch, offline.

Tests, demos and benchmarks here cannot download ``xlm-roberta-base``. They
build a checkpoint with the same architecture and tokenizer type instead: a
SentencePiece unigram model trained on shipped text, converted to the fast
tokenizer, and an ``XLMRobertaModel`` with random weights, written with
``save_pretrained``. The result loads by path through the same code as a hub
name. The same arguments give the same checkpoint (weights and token ids) on
the transformers 4.53 line and on 5.x.
"""
import hashlib
import io
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, Union

from .errors import Errors

if TYPE_CHECKING:
    import torch

# Sizes of the architectures this module can build. "base" matches
# xlm-roberta-base except for the vocabulary, which is trained on shipped text.
SIZES: Dict[str, Dict[str, Any]] = {
    "tiny": dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128,
    ),
    "small": dict(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=1024,
    ),
    "base": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072,
    ),
}
DEFAULT_TEXT_DIR = Path(__file__).parent.parent / "data" / "text"


def shipped_texts(text_dir: Union[str, Path] = DEFAULT_TEXT_DIR) -> Iterable[str]:
    """Yield the lines of every ``*.txt`` file in ``text_dir``."""
    paths = sorted(Path(text_dir).glob("*.txt"))
    if not paths:
        raise FileNotFoundError(Errors.NO_TEXT_FILES.format(text_dir=text_dir))
    for path in paths:
        with path.open(encoding="utf8") as file_:
            for line in file_:
                line = line.strip()
                if line:
                    yield line


def build_checkpoint(
    output_dir: Union[str, Path],
    texts: Iterable[str],
    *,
    size: str = "tiny",
    vocab_size: int = 8000,
    max_length: int = 512,
    seed: int = 0,
) -> Path:
    """Train a tokenizer on ``texts``, create a randomly initialised XLM-R
    encoder of the given ``size`` and save both to ``output_dir``. The
    weights are drawn from ``seed`` alone (``init_weights``), whatever the
    transformers version and torch's global random state.

    RETURNS (Path): ``output_dir``, loadable with ``from_pretrained``.
    """
    import sentencepiece as spm
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from .hf import quiet_transformers

    if size not in SIZES:
        raise ValueError(Errors.UNKNOWN_SIZE.format(size=size, choices=", ".join(SIZES)))
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model_file = io.BytesIO()
    # XLM-R's SentencePiece model: unigram, NFKC, <unk>=0 <s>=1 </s>=2 (the
    # tokenizer adds fairseq's offset of one and <pad>, <mask> itself).
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)),
        model_writer=model_file,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=0.9995,
        normalization_rule_name="nmt_nfkc",
        hard_vocab_limit=False,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=2,
        minloglevel=2,
    )
    tokenizer = _save_sentencepiece_tokenizer(model_file.getvalue(), output_dir, max_length)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_length + 2,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **SIZES[size],
    )
    model = XLMRobertaModel(config, add_pooling_layer=False)
    init_weights(model, seed, std=config.initializer_range)
    with quiet_transformers():
        model.save_pretrained(output_dir)
    return output_dir


def _save_sentencepiece_tokenizer(model: bytes, output_dir: Path, max_length: int):
    """Convert the SentencePiece ``model`` to the fast XLM-R tokenizer, save
    both to ``output_dir`` (as xlm-roberta-base ships them) and return the
    tokenizer. Built with ``from_pretrained`` on a directory holding the
    SentencePiece file, the one way both transformers lines take it."""
    from transformers import AddedToken, AutoTokenizer

    from .hf import quiet_transformers, save_tokenizer  # imports torch: not at the CLI's start

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sentencepiece.bpe.model").write_bytes(model)
        (Path(tmp) / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "XLMRobertaTokenizer"}), encoding="utf8"
        )
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(
                tmp, use_fast=True, trust_remote_code=False, model_max_length=max_length,
                # As xlm-roberta-base's: it takes the space before it (5.x
                # doesn't make it so by itself).
                mask_token=AddedToken(
                    "<mask>", lstrip=True, rstrip=False, normalized=False, special=True
                ),
            )
        # Inside the temporary directory: 4.53 copies the SentencePiece file from it.
        save_tokenizer(tokenizer, output_dir)
    (output_dir / "sentencepiece.bpe.model").write_bytes(model)  # 5.x doesn't save it
    return tokenizer


def init_weights(model: "torch.nn.Module", seed: int, *, std: float = 0.02) -> None:
    """Initialise every weight of ``model`` as BERT-family models are: normal
    with standard deviation ``std`` (embeddings and matrices), zero (biases,
    padding embeddings), one and zero (LayerNorm). Each tensor is drawn from
    its own ``torch.Generator``, seeded by ``seed`` and the tensor's name, so
    the weights don't depend on the transformers version (5.x initialises
    differently), on the order of the modules or on torch's global state."""
    import torch

    with torch.no_grad():
        for module_name, module in model.named_modules():
            for param_name, param in module.named_parameters(recurse=False):
                if isinstance(module, torch.nn.LayerNorm):
                    param.fill_(1.0 if param_name == "weight" else 0.0)
                elif param_name == "bias":
                    param.zero_()
                else:
                    name = f"{module_name}.{param_name}" if module_name else param_name
                    param.normal_(0.0, std, generator=_generator(seed, name))
            if isinstance(module, torch.nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()


def _generator(seed: int, name: str) -> "torch.Generator":
    """A CPU generator seeded by ``seed`` and ``name``."""
    import torch

    digest = hashlib.sha256(f"{seed}/{name}".encode("utf8")).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
