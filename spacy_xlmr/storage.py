"""Pipeline files written safely and read with clear errors.

A save writes into a fresh temporary sibling of its target directory and
swaps it in only once every file is written, so an interrupted save (an
exception, Ctrl-C, a full disk) leaves the previous directory as it was. Our
components save themselves this way inside ``nlp.to_disk``; ``save_pipeline``
does it for a whole pipeline (``nlp.to_disk`` itself is spaCy's and writes
spaCy's own files in place). Files get the permissions of any file the user
creates (``umask``), never owner-only.

A component file that is missing or can't be read is a
``DamagedPipelineError`` naming the component and the file.
"""
import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, TypeVar, Union

import srsly
from spacy.language import Language

from .errors import DamagedPipelineError, Errors

T = TypeVar("T")
# cfg keys: the encoder's weights as saved, and those a head was saved with.
WEIGHTS_DIGEST = "weights_sha256"
ENCODER_DIGEST = "encoder_weights_sha256"
_UMASK = os.umask(0)  # read once: os.umask can only be read by setting it
os.umask(_UMASK)


@contextmanager
def replacing_directory(path: Union[str, Path]) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``path`` to write into; when the
    block ends without an error, it replaces ``path``. If the block fails,
    ``path`` is untouched and the temporary directory removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".saving", dir=path.parent))
    try:
        yield staging
        _default_permissions(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, path)


def save_pipeline(nlp: Language, path: Union[str, Path]) -> None:
    """``nlp.to_disk(path)``, all or nothing: an interrupted save leaves the
    pipeline that was at ``path`` loadable and unchanged."""
    with replacing_directory(path) as staging:
        nlp.to_disk(staging)


def copy_pipeline(source: Union[str, Path], path: Union[str, Path]) -> None:
    """Copy a saved pipeline directory over ``path``, all or nothing."""
    with replacing_directory(path) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)


def read_component_file(component: str, path: Path, read: Callable[[Path], T]) -> T:
    """``read(path)``, or a ``DamagedPipelineError`` naming the component and
    the file when the file is missing or ``read`` fails on it."""
    if not path.exists():
        raise DamagedPipelineError(Errors.FILE_MISSING.format(component=component, path=path))
    try:
        return read(path)
    except DamagedPipelineError:
        raise
    except Exception as err:
        raise DamagedPipelineError(
            Errors.FILE_UNREADABLE.format(
                component=component, path=path, error_type=type(err).__name__, error=err
            )
        ) from err


def weights_digest(directory: Path) -> str:
    """sha256 of the ``*.safetensors`` files of a saved encoder."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.safetensors")):
        with path.open("rb") as file_:
            for block in iter(lambda: file_.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_saved_together(
    component: str, head_cfg: Dict[str, Any], loaded: Optional[str]
) -> None:
    """Refuse a head saved with other encoder weights than the loaded ones
    (``loaded``: the digest of the weights of the encoder it listens to, if
    known): what an interrupted ``nlp.to_disk`` over an older pipeline leaves."""
    saved_with = head_cfg.get(ENCODER_DIGEST)
    if saved_with and loaded and saved_with != loaded:
        raise DamagedPipelineError(Errors.SAVED_WITH_OTHER_ENCODER.format(component=component))


def read_cfg(path: Path) -> Dict[str, Any]:
    """A component's ``cfg`` file: a JSON object."""
    cfg = srsly.read_json(path)
    if not isinstance(cfg, dict):
        raise ValueError(Errors.CFG_NOT_AN_OBJECT.format(type_name=type(cfg).__name__))
    return cfg


def _swap_in(staging: Path, path: Path) -> None:
    """Put ``staging`` at ``path`` with two renames; the old directory is
    deleted only after the new one is in place."""
    if not path.exists():
        os.replace(staging, path)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.replace(path, retired / path.name)
    os.replace(staging, path)
    shutil.rmtree(retired, ignore_errors=True)


def _default_permissions(root: Path) -> None:
    """Give ``root`` and everything under it the permissions a new file or
    directory gets here (``mkdtemp`` and some writers, e.g. safetensors, make
    them owner-only)."""
    for directory, _, files in os.walk(root):
        os.chmod(directory, 0o777 & ~_UMASK)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o666 & ~_UMASK)
