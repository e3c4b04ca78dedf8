"""The one path from a Hugging Face name or directory to XLM-R objects.

Every component loads configs, tokenizers and weights through this module, so
that a hub name and a local directory behave the same, errors are the same
everywhere, and loading is safe: weights are read with safetensors (or with
``torch.load(weights_only=True)`` inside ``transformers`` for ``.bin`` files)
and ``trust_remote_code`` is never enabled.

It works on the transformers 4.53 line and on 5.x: loading prints nothing
on either (``quiet_transformers``), a tokenizer without a vocabulary is
refused on both, and ``save_tokenizer`` writes a ``tokenizer_config.json``
that both lines read.
"""
import json
import pickle
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple, Union, cast

import torch

from .errors import CheckpointError, Errors

SUPPORTED_MODEL_TYPES = ("xlm-roberta",)
PathOrName = Union[str, Path]


def _not_found(name: PathOrName, err: Exception) -> CheckpointError:
    unsafe = _unsafe_pickle(name, err)
    if unsafe is not None:
        return unsafe
    path = Path(str(name))
    # Hub names are "model" or "owner/model"; anything else is a path.
    looks_like_path = str(name).startswith((".", "/", "~")) or str(name).count("/") > 1
    if path.exists() or looks_like_path or "\\" in str(name):
        return CheckpointError(Errors.CHECKPOINT_DIR_UNLOADABLE.format(name=name, error=err))
    return CheckpointError(
        Errors.CHECKPOINT_NOT_FOUND.format(
            name=name, cwd=Path.cwd(), error_type=type(err).__name__, error=err,
            dir_name=path.name,
        )
    )


def _unsafe_pickle(name: PathOrName, err: BaseException) -> Optional[CheckpointError]:
    """The error for a weights file that ``torch.load(weights_only=True)``
    refused (it pickles more than tensors), if ``err`` comes from one."""
    cause: Optional[BaseException] = err
    while cause is not None and not isinstance(cause, pickle.UnpicklingError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    return _unsafe_pickle_error(name)


def _unsafe_pickle_error(name: PathOrName) -> CheckpointError:
    """The error for a weights file in ``name`` that ``torch.load(weights_only=True)``
    refused."""
    return CheckpointError(Errors.UNSAFE_PICKLE.format(name=name))


_quiet_lock = threading.Lock()
_quiet_users = 0
_loud_settings: Tuple[int, Any] = (0, None)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide what ``transformers`` prints while loading and saving (5.x: a
    progress bar and a load report on every ``from_pretrained``, a progress
    bar on every ``save_pretrained``; 4.53: warnings about unused or missing
    weights), as spacy-xlmr checks the weights itself. Errors are still
    logged. The user's verbosity (and, on 5.x, tqdm hook) are restored when
    the last thread inside leaves."""
    global _quiet_users, _loud_settings
    from transformers.utils import logging as hf_logging

    with _quiet_lock:
        if _quiet_users == 0:
            previous_hook = None
            if hasattr(hf_logging, "set_tqdm_hook"):  # 5.x: silence its own bars only
                previous_hook = hf_logging.set_tqdm_hook(_silent_tqdm)
            _loud_settings = (hf_logging.get_verbosity(), previous_hook)
            hf_logging.set_verbosity_error()
        _quiet_users += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_users -= 1
            if _quiet_users == 0:
                verbosity, previous_hook = _loud_settings
                hf_logging.set_verbosity(verbosity)
                if hasattr(hf_logging, "set_tqdm_hook"):
                    hf_logging.set_tqdm_hook(previous_hook)


def _silent_tqdm(factory: Any, args: tuple, kwargs: dict) -> Any:
    """A ``transformers`` 5.x tqdm hook: the bar it would create, disabled."""
    return factory(*args, **{**kwargs, "disable": True})


def load_config(name: PathOrName):
    """Load and check the ``XLMRobertaConfig`` of a hub name or directory."""
    from transformers import AutoConfig

    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(str(name), trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise _not_found(name, err) from err
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise CheckpointError(
            Errors.NOT_XLMR_CHECKPOINT.format(
                name=name, model_type=config.model_type,
                supported=" or ".join(SUPPORTED_MODEL_TYPES),
            )
        )
    return config


# The files that hold an XLM-R tokenizer's vocabulary, either of which will do.
VOCABULARY_FILES = ("tokenizer.json", "sentencepiece.bpe.model")


def load_tokenizer(name: PathOrName):
    """Load the fast (Rust) XLM-R tokenizer, which gives character offsets.
    A checkpoint without a vocabulary is refused (transformers 5.x would build
    a tokenizer of the special tokens alone from ``tokenizer_config.json``,
    which encodes every word as ``<unk>``)."""
    from transformers import AutoTokenizer

    directory = Path(str(name)).expanduser()
    if directory.is_dir() and not any((directory / f).is_file() for f in VOCABULARY_FILES):
        raise _no_vocabulary(name, f"the directory has neither {' nor '.join(VOCABULARY_FILES)}")
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(
                str(name), use_fast=True, trust_remote_code=False
            )
    except (OSError, ValueError) as err:
        raise _not_found(name, err) from err
    if not tokenizer.is_fast:
        raise CheckpointError(Errors.NO_FAST_TOKENIZER.format(name=name))
    if set(tokenizer.get_vocab()) <= set(tokenizer.all_special_tokens):
        raise _no_vocabulary(
            name, f"its tokenizer has only the {len(tokenizer)} special tokens "
            f"(no {' or '.join(VOCABULARY_FILES)})"
        )
    return tokenizer


def _no_vocabulary(name: PathOrName, what: str) -> CheckpointError:
    """The error for a checkpoint whose tokenizer has no vocabulary."""
    return CheckpointError(
        Errors.NO_VOCABULARY.format(name=name, what=what, files=" or ".join(VOCABULARY_FILES))
    )


# The named special tokens of a tokenizer_config.json.
SPECIAL_TOKEN_KEYS = (
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
)


def save_tokenizer(tokenizer, path: PathOrName) -> Tuple[str, ...]:
    """Save ``tokenizer`` with ``save_pretrained`` to the directory ``path``,
    with a ``tokenizer_config.json`` that transformers 4.53 and 5.x both read:
    5.x writes ``extra_special_tokens`` as a list, which 4.53 reads as a
    mapping (and fails); its tokens other than the named special tokens are
    written as ``additional_special_tokens``, which both lines read.

    RETURNS (Tuple[str, ...]): the files written, as ``save_pretrained``'s.
    """
    with quiet_transformers():
        files = tuple(tokenizer.save_pretrained(str(path)))
    config_path = Path(str(path)) / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf8"))
    extra = config.get("extra_special_tokens")
    if not isinstance(extra, list):
        return files
    named = {_token_text(config.get(key)) for key in SPECIAL_TOKEN_KEYS}
    additional = [token for token in extra if _token_text(token) not in named]
    del config["extra_special_tokens"]
    if additional:
        config["additional_special_tokens"] = additional
    # As save_pretrained writes it.
    text = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    config_path.write_text(text, encoding="utf8")
    return files


def _token_text(token: Any) -> Optional[str]:
    """The text of a token as ``tokenizer_config.json`` writes it (a string or
    a serialised ``AddedToken``)."""
    if isinstance(token, dict):
        return token.get("content")
    return None if token is None else str(token)


# Weights of a checkpoint that the encoder leaves out on purpose: task heads
# (imported by the head components) and the pooler (no head uses it).
NOT_ENCODER_WEIGHTS = ("lm_head.", "classifier.", "qa_outputs.", "pooler.")


def load_encoder(name: PathOrName, config=None, *, strict: bool = True):
    """Load the ``XLMRobertaModel`` weights of any XLM-R checkpoint (a bare
    encoder or one with a task head: the ``roberta.`` prefix is handled).
    Strict: an encoder weight missing from the files, or a weight that
    belongs to no part of the model, is an error naming them (without it,
    ``transformers`` would leave the missing ones random). ``strict=False``
    loads what matches, deliberately."""
    from transformers import XLMRobertaModel

    config = config if config is not None else load_config(name)
    try:
        with quiet_transformers():
            loaded = XLMRobertaModel.from_pretrained(
                str(name), config=config, add_pooling_layer=False,
                trust_remote_code=False, attn_implementation="sdpa",
                output_loading_info=True,
            )
        # transformers 5 types from_pretrained as returning the model alone.
        transformer, info = cast(Tuple[Any, Dict[str, List[str]]], loaded)
    except (OSError, ValueError) as err:
        raise _not_found(name, err) from err
    except Exception as err:  # e.g. safetensors' error for a damaged file
        unsafe = _unsafe_pickle(name, err)
        if unsafe is not None:
            raise unsafe from err
        raise CheckpointError(
            Errors.WEIGHTS_UNREADABLE.format(name=name, error_type=type(err).__name__, error=err)
        ) from err
    missing = sorted(info["missing_keys"])
    unexpected = sorted(
        key for key in info["unexpected_keys"] if not key.startswith(NOT_ENCODER_WEIGHTS)
    )
    if strict and (missing or unexpected):
        problems = []
        if missing:
            problems.append(f"missing: {_some(missing)}")
        if unexpected:
            problems.append(f"unknown to XLMRobertaModel: {_some(unexpected)}")
        raise CheckpointError(
            Errors.WEIGHTS_MISMATCH.format(name=name, problems="; ".join(problems))
        )
    return transformer


def _some(keys: List[str], limit: int = 5) -> str:
    """The first ``limit`` of ``keys``, and how many more there are."""
    shown = ", ".join(keys[:limit])
    return shown if len(keys) <= limit else f"{shown} and {len(keys) - limit} more"


class HeadTask(NamedTuple):
    """A Hugging Face task whose fine-tuned XLM-R checkpoints a component imports."""

    head_class: str  # the transformers class with the task's head
    factory: str  # the spaCy factory of the component that imports it
    component: str  # the component's name in ``from_huggingface`` pipelines


# By Hugging Face pipeline task. (Each head's weight names are its torch
# module's, in ``heads/``.)
HEAD_TASKS: Dict[str, HeadTask] = {
    "token-classification": HeadTask("XLMRobertaForTokenClassification", "xlmr_ner", "ner"),
    "text-classification": HeadTask(
        "XLMRobertaForSequenceClassification", "xlmr_textcat", "textcat"
    ),
    "fill-mask": HeadTask("XLMRobertaForMaskedLM", "xlmr_fill_mask", "fill_mask"),
    "question-answering": HeadTask("XLMRobertaForQuestionAnswering", "xlmr_qa", "qa"),
}


def check_head_class(name: PathOrName, task: str, component: str) -> None:
    """Refuse a checkpoint whose ``config.json`` names a head class other than
    that of ``task`` (checkpoints that name none are checked by their weights)."""
    expected = HEAD_TASKS[task].head_class
    architectures = load_config(name).architectures or []
    if not architectures or expected in architectures:
        return
    found = architectures[0]
    found_task = next((t for t, head in HEAD_TASKS.items() if head.head_class == found), None)
    if found_task is not None:
        fix = (
            f"import it into the component for that task: "
            f"from_huggingface('{name}', '{found_task}')"
        )
    else:
        fix = (
            "it has no head this package imports; train the head instead "
            "(leave hf_checkpoint unset and use the checkpoint as the encoder)"
        )
    raise CheckpointError(
        Errors.WRONG_HEAD_CLASS.format(
            component=component, name=name, found=found, expected=expected, fix=fix
        )
    )


def load_head_state_dict(
    name: PathOrName, prefixes: tuple
) -> Dict[str, torch.Tensor]:
    """Read the weights of a task head (keys starting with one of
    ``prefixes``, e.g. ``("classifier.",)``) from a fine-tuned checkpoint.

    Only local directories are read directly; hub names are resolved to their
    cached snapshot first. ``.safetensors`` files are preferred; ``.bin`` files
    are read with ``torch.load(weights_only=True)``.
    """
    directory = _resolve_directory(name)
    state: Dict[str, torch.Tensor] = {}
    safetensors_files = sorted(directory.glob("*.safetensors"))
    if safetensors_files:
        from safetensors import safe_open

        for path in safetensors_files:  # read only the head's tensors
            with safe_open(str(path), framework="pt") as file_:
                for key in file_.keys():
                    if key.startswith(prefixes):
                        state[key] = file_.get_tensor(key)
    else:
        for path in sorted(directory.glob("pytorch_model*.bin")):
            try:
                state.update(torch.load(path, map_location="cpu", weights_only=True))
            except pickle.UnpicklingError as err:
                raise _unsafe_pickle_error(name) from err
    head = {key: value for key, value in state.items() if key.startswith(prefixes)}
    if not head:
        raise CheckpointError(
            Errors.NO_HEAD_WEIGHTS.format(name=name, prefixes=", ".join(prefixes))
        )
    return head


def _resolve_directory(name: PathOrName) -> Path:
    path = Path(str(name)).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                str(name), allow_patterns=["*.json", "*.safetensors", "*.bin"]
            )
        )
    except Exception as err:  # the hub client raises many types
        raise _not_found(name, err) from err


def checkpoint_labels(name: PathOrName, component: str) -> List[str]:
    """The labels of a fine-tuned checkpoint's outputs in output order (its
    ``id2label``), checked: ids are 0 … n-1 and no label is given twice (a
    duplicate would silently merge two outputs)."""
    try:
        id2label = {int(i): str(label) for i, label in load_config(name).id2label.items()}
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            Errors.ID2LABEL_ID_NOT_A_NUMBER.format(component=component, name=name, error=err)
        ) from err
    expected = set(range(len(id2label)))
    if set(id2label) != expected:
        raise CheckpointError(
            Errors.ID2LABEL_IDS_NOT_CONSECUTIVE.format(
                component=component, name=name, n_outputs=len(id2label),
                last=len(id2label) - 1,
                missing=_some([str(i) for i in sorted(expected - set(id2label))]),
                extra=_some([str(i) for i in sorted(set(id2label) - expected)]),
            )
        )
    labels = [id2label[i] for i in range(len(id2label))]
    repeated = {label: [i for i, other in enumerate(labels) if other == label]
                for label in labels if labels.count(label) > 1}
    if repeated:
        listed = "; ".join(f"'{label}' for outputs {ids}" for label, ids in repeated.items())
        raise CheckpointError(
            Errors.ID2LABEL_REPEATED_LABEL.format(component=component, name=name, listed=listed)
        )
    return labels


def has_label_names(labels: List[str]) -> bool:
    """False for the ``LABEL_0 …`` names that ``transformers`` invents when a
    checkpoint's config names no labels."""
    return any(label != f"LABEL_{i}" for i, label in enumerate(labels))
