"""What every dataset reader returns: labelled face records and a report of what it dropped."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_PROBLEMS = 50
# The age head predicts 0..100 years; labels outside it cannot be learnt.
MIN_AGE = 0
MAX_AGE = 100


@dataclass(frozen=True)
class FaceRecord:
    """One labelled face image.

    ``path`` is relative to the dataset's root folder (for a CSV, the CSV's folder), with
    ``/`` separators. ``age`` is in whole years. ``gender`` is ``"male"``, ``"female"`` or
    ``""`` when unknown. ``group`` is what must stay on one side of a train/val/test split:
    the person (IMDB-WIKI) or the source photo (UTKFace). ``face_box`` is
    ``(left, top, right, bottom)`` in pixels when the dataset gives one, else ``None``.
    ``age_high`` is set when the label is an age group, not a year (FairFace's ``20-29``):
    the true age is then somewhere in ``age..age_high``. ``race`` is the dataset's own race
    label where it has one (FairFace's seven, UTKFace's five), else ``""``: it is used only
    to report accuracy per group, never to train.
    """

    path: str
    age: int
    gender: str
    group: str
    face_box: tuple[float, float, float, float] | None = None
    age_high: int | None = None
    race: str = ""


@dataclass
class ImportReport:
    """How many records were kept, how many were dropped for each reason, and examples.

    ``problems`` holds human-readable messages naming the row or path of the first
    :data:`MAX_PROBLEMS` dropped rows; ``dropped`` counts all of them.
    """

    kept: int
    dropped: dict[str, int]
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Rows seen: kept plus dropped."""
        return self.kept + sum(self.dropped.values())


class DatasetError(ValueError):
    """A dataset cannot be read at all; the message names the file, row or field."""


class ReportBuilder:
    """Counts dropped rows by reason while a reader runs, keeping the first messages.

    Every reason a reader can produce is listed up front so that a report shows
    ``"missing_file": 0`` rather than leaving the reader's checks unstated.
    """

    def __init__(self, reasons: Iterable[str], max_problems: int = MAX_PROBLEMS) -> None:
        self.dropped: dict[str, int] = dict.fromkeys(reasons, 0)
        self.problems: list[str] = []
        self.max_problems = max_problems

    def drop(self, reason: str, message: str) -> None:
        """Count one dropped row under ``reason`` and remember ``message`` while under the cap."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.note(message)

    def note(self, message: str) -> None:
        """Remember a message about a kept row (under the same cap)."""
        if len(self.problems) < self.max_problems:
            self.problems.append(message)

    def report(self, kept: int) -> ImportReport:
        """The finished report for ``kept`` records."""
        return ImportReport(kept=kept, dropped=dict(self.dropped), problems=list(self.problems))
