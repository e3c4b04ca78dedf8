"""Writing converted docs: one ``.spacy`` file, with a progress bar on a
terminal (large inputs take a while; in logs and CI the bar is off)."""
from pathlib import Path
from typing import Iterable, Union

from spacy.tokens import Doc, DocBin
from tqdm import tqdm


def write_docbin(
    docs: Iterable[Doc], output_path: Union[str, Path], *, store_user_data: bool = False
) -> None:
    """Save ``docs`` to ``output_path`` (parent directories are created)."""
    output_path = Path(output_path)
    doc_bin = DocBin(store_user_data=store_user_data)
    progress = tqdm(
        docs, desc=f"Converting to {output_path.name}", unit=" docs", disable=None, leave=False
    )
    for doc in progress:
        doc_bin.add(doc)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(output_path)
