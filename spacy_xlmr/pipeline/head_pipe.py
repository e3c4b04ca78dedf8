"""What every XLM-R head component shares: loading a head whose torch module
is rebuilt from the component's cfg before its weights are read."""
from pathlib import Path
from typing import Iterable, List, Union

import srsly
from spacy import util
from spacy.pipeline.pipe import deserialize_config
from spacy.pipeline.trainable_pipe import TrainablePipe


class HeadPipe(TrainablePipe):
    """Base class of the head components. Subclasses keep ``cfg["labels"]``
    and ``cfg["width"]`` and implement ``_build_head``."""

    @property
    def label_data(self) -> List[str]:
        return list(self.cfg["labels"])

    def _build_head(self, keep: bool = False) -> None:
        """(Re)create the torch head for the current labels and width."""
        raise NotImplementedError

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "HeadPipe":
        """Load the component from bytes written by ``to_bytes``."""
        msg = srsly.msgpack_loads(bytes_data)
        if "cfg" not in exclude and "cfg" in msg:
            self.cfg.update(srsly.json_loads(msg["cfg"]))
        if "vocab" not in exclude and "vocab" in msg:
            self.vocab.from_bytes(msg["vocab"], exclude=exclude)
        if "model" not in exclude and "model" in msg:
            self._load_model(msg["model"])
        return self

    def from_disk(
        self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()
    ) -> "HeadPipe":
        """Load the component from a directory written by ``to_disk``."""
        deserialize = {
            "cfg": lambda p: self.cfg.update(deserialize_config(p)),
            "vocab": lambda p: self.vocab.from_disk(p, exclude=exclude),
            "model": lambda p: self._load_model(Path(p).read_bytes()),
        }
        util.from_disk(path, deserialize, exclude)
        return self

    def _load_model(self, data: bytes) -> None:
        if self.cfg["width"] is not None:
            self._build_head()
        self.model.from_bytes(data)
