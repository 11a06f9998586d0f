"""What every dataset reader returns: labelled face records and a report of what it dropped."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

MAX_PROBLEMS = 50
# The longest problem message a report keeps.
MAX_MESSAGE = 300
# The age head predicts 0..100 years; labels outside it cannot be learnt.
MIN_AGE = 0
MAX_AGE = 100
# The longest path a DatasetItem stores (training.models.DatasetItem.path).
MAX_PATH = 500
# Why relative_path refused a path, for a reader's report.
NOT_A_PATH_INSIDE = (
    "is not a path inside the dataset's folder: not absolute, no '..', no NUL, "
    f"at most {MAX_PATH} characters"
)
_DRIVE = re.compile(r"^[A-Za-z]:")


def relative_path(raw: str) -> str | None:
    """``raw`` in ``/`` form, if it names a file inside the dataset's folder that a stored
    item can hold; ``None`` if it is absolute (or a drive's), climbs out with ``..``, holds a
    NUL (no file name can, and PostgreSQL refuses it), is empty, or is longer than
    :data:`MAX_PATH`."""
    if "\x00" in raw:
        return None
    text = raw.replace("\\", "/")
    path = PurePosixPath(text)
    if path.is_absolute() or _DRIVE.match(text) or ".." in path.parts:
        return None
    normal = path.as_posix()
    if normal in ("", ".") or len(normal) > MAX_PATH:
        return None
    return normal


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
        """Remember a message about a kept row (under the same cap). A message quotes the
        file's own text, so a NUL in it is written out (PostgreSQL's JSON refuses one) and a
        long one is cut."""
        if len(self.problems) < self.max_problems:
            message = message.replace("\x00", "\\x00")
            if len(message) > MAX_MESSAGE:
                message = message[: MAX_MESSAGE - 1] + "…"
            self.problems.append(message)

    def report(self, kept: int) -> ImportReport:
        """The finished report for ``kept`` records."""
        return ImportReport(kept=kept, dropped=dict(self.dropped), problems=list(self.problems))
