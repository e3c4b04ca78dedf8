"""Build small XLM-R checkpoints from scratch, offline.

Tests, demos and benchmarks here cannot download ``xlm-roberta-base``. They
build a checkpoint with the same architecture and tokenizer type instead: a
SentencePiece unigram model trained on shipped text, converted to the fast
tokenizer, and an ``XLMRobertaModel`` with random weights, written with
``save_pretrained``. The result loads by path through the same code as a hub
name.
"""
import io
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Union

# Sizes of the architectures this module can build. "base" matches
# xlm-roberta-base except for the vocabulary, which is trained on shipped text.
SIZES: Dict[str, Dict[str, int]] = {
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
        raise FileNotFoundError(
            f"No *.txt files in {text_dir}. Pass a directory of plain-text "
            "files (one sentence per line) to train the tokenizer on."
        )
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
    encoder of the given ``size`` and save both to ``output_dir``.

    RETURNS (Path): ``output_dir``, loadable with ``from_pretrained``.
    """
    import sentencepiece as spm
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel
    from transformers import XLMRobertaTokenizer, XLMRobertaTokenizerFast

    if size not in SIZES:
        raise ValueError(f"Unknown size '{size}'. Choose one of: {', '.join(SIZES)}.")
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
    with tempfile.TemporaryDirectory() as tmp:
        spm_path = Path(tmp) / "sentencepiece.bpe.model"
        spm_path.write_bytes(model_file.getvalue())
        slow = XLMRobertaTokenizer(str(spm_path), model_max_length=max_length)
        fast = XLMRobertaTokenizerFast(
            vocab_file=str(spm_path), model_max_length=max_length
        )
        slow.save_pretrained(output_dir)
        fast.save_pretrained(output_dir)
    config = XLMRobertaConfig(
        vocab_size=len(fast),
        max_position_embeddings=max_length + 2,
        type_vocab_size=1,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        **SIZES[size],
    )
    torch.manual_seed(seed)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(output_dir)
    return output_dir
