"""How every converter opens its input: UTF-8, with or without a byte-order
mark, and an error naming the file for anything else."""
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Optional

from ..errors import Errors

UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@contextmanager
def open_text(path: Path, newline: Optional[str] = None) -> Iterator[IO[str]]:
    """Open ``path`` as UTF-8 text (a leading byte-order mark is skipped); a
    byte sequence that isn't UTF-8, wherever it is read, is a ValueError
    naming the file, the byte offset and how to re-encode the file."""
    with path.open(encoding="utf-8-sig", newline=newline) as file_:
        try:
            yield file_
        except UnicodeDecodeError as err:
            with path.open("rb") as raw:
                utf16 = raw.read(2) in UTF16_BOMS
            found = "UTF-16 text" if utf16 else f"not UTF-8 (byte {err.start}: {err.reason})"
            raise ValueError(
                Errors.NOT_UTF8.format(
                    path=path,
                    found=found,
                    encoding="UTF-16" if utf16 else "LATIN1",
                    utf8_path=path.with_suffix(".utf8" + path.suffix),
                )
            ) from err
