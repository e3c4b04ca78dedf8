"""Counts collected while converting NER data to spaCy ``Doc`` objects."""
from collections import Counter
from dataclasses import dataclass, field
from typing import Counter as CounterType, List


@dataclass
class ConversionStats:
    """What a converter read, kept, dropped and had to repair.

    ``entities`` counts the entities kept, by label. ``skipped`` counts what
    was dropped, by reason. ``warnings`` counts what was kept but changed or
    could not be reproduced exactly, by reason.
    """

    docs: int = 0
    sentences: int = 0
    tokens: int = 0
    entities: CounterType[str] = field(default_factory=Counter)
    skipped: CounterType[str] = field(default_factory=Counter)
    warnings: CounterType[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """Return a short multi-line, human-readable report."""
        lines: List[str] = [
            f"docs: {self.docs}, sentences: {self.sentences}, "
            f"tokens: {self.tokens}, entities: {sum(self.entities.values())}"
        ]
        for title, counts in (
            ("entities", self.entities),
            ("skipped", self.skipped),
            ("warnings", self.warnings),
        ):
            if counts:
                lines.append(f"{title}:")
                lines.extend(f"  {key}: {n}" for key, n in counts.most_common())
        return "\n".join(lines)
