"""Counts collected while converting NER, text classification and QA data to
spaCy ``Doc`` objects."""
from collections import Counter
from dataclasses import dataclass, field
from typing import Counter as CounterType, List


@dataclass
class ConversionStats:
    """What a converter read, kept, dropped and had to repair.

    ``entities`` counts the entities kept, by label. ``skipped`` counts what
    was dropped, by reason. ``warnings`` counts what was kept but changed or
    could not be reproduced exactly, by reason.

    Text classification converters also fill ``labels`` (docs per gold
    label) and ``labels_per_doc`` (docs per number of gold labels); the
    data is ``exclusive`` when no doc has more than one gold label.

    QA converters also fill ``questions`` (questions kept) and
    ``impossible`` (how many of them are unanswerable).
    """

    docs: int = 0
    sentences: int = 0
    tokens: int = 0
    entities: CounterType[str] = field(default_factory=Counter)
    skipped: CounterType[str] = field(default_factory=Counter)
    warnings: CounterType[str] = field(default_factory=Counter)
    labels: CounterType[str] = field(default_factory=Counter)
    labels_per_doc: CounterType[int] = field(default_factory=Counter)
    questions: int = 0
    impossible: int = 0

    @property
    def max_labels_per_doc(self) -> int:
        """The most gold labels any doc has (0 if no doc was counted)."""
        return max(self.labels_per_doc, default=0)

    @property
    def exclusive(self) -> bool:
        """Whether the docs' labels are mutually exclusive: at least one doc
        has a gold label and none has more than one."""
        return self.max_labels_per_doc == 1

    def summary(self) -> str:
        """Return a short multi-line, human-readable report."""
        lines: List[str] = [
            f"docs: {self.docs}, sentences: {self.sentences}, "
            f"tokens: {self.tokens}, entities: {sum(self.entities.values())}"
        ]
        if self.questions:
            lines.append(
                f"questions: {self.questions} (unanswerable: {self.impossible})"
            )
        if self.labels_per_doc:
            per_doc = ", ".join(
                f"{n}: {docs}" for n, docs in sorted(self.labels_per_doc.items())
            )
            lines.append(
                f"exclusive: {self.exclusive} (docs by number of labels: {per_doc})"
            )
        for title, counts in (
            ("entities", self.entities),
            ("labels", self.labels),
            ("skipped", self.skipped),
            ("warnings", self.warnings),
        ):
            if counts:
                lines.append(f"{title}:")
                lines.extend(f"  {key}: {n}" for key, n in counts.most_common())
        return "\n".join(lines)
