"""Reading a UTKFace folder, whose labels are in the file names.

Names are ``AGE_GENDER_RACE_TIMESTAMP.jpg.chip.jpg`` (the aligned and cropped set) or
``AGE_GENDER_RACE_TIMESTAMP.jpg`` (the in-the-wild set): AGE in years, GENDER 0 = male and
1 = female, RACE 0..4 (not used). Faces cut from one photo share the TIMESTAMP, so it is the
group that a split keeps together. The published set has a handful of malformed names
(a missing field, a missing dot, a stray space): they are dropped as ``unreadable_name``
rather than guessed at.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from training.datasets.records import (
    MAX_AGE,
    MIN_AGE,
    DatasetError,
    FaceRecord,
    ImportReport,
    ReportBuilder,
)

REASONS = ("unreadable_name", "bad_age")
UTKFACE_NAME = re.compile(
    r"^(?P<age>\d+)_(?P<gender>[01])_(?P<race>[0-4])_(?P<timestamp>\d+)\.jpg(?:\.chip\.jpg)?$",
    re.IGNORECASE,
)
GENDERS = {"0": "male", "1": "female"}
# UTKFace's race codes (its README): used for per-group reports only.
RACES = {"0": "White", "1": "Black", "2": "Asian", "3": "Indian", "4": "Others"}


def read_utkface(root: Path) -> tuple[list[FaceRecord], ImportReport]:
    """Read every file under the UTKFace folder ``root`` (sub-folders included).

    Record paths are relative to ``root``; ages are in years; ``group`` is the photo's
    timestamp; there is no face box (the chips are already cropped). Every file other than
    hidden ones counts: kept plus dropped equals the number of files. Images are not opened.

    Raises :class:`DatasetError` when ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder.")
    builder = ReportBuilder(REASONS)
    records: list[FaceRecord] = []
    for path in _files(root):
        match = UTKFACE_NAME.match(path.rsplit("/", 1)[-1])
        if match is None:
            builder.drop(
                "unreadable_name",
                f"{path}: name is not AGE_GENDER_RACE_TIMESTAMP.jpg.chip.jpg",
            )
            continue
        age = int(match["age"])
        if not MIN_AGE <= age <= MAX_AGE:
            builder.drop("bad_age", f"{path}: age {age} is outside {MIN_AGE}..{MAX_AGE}")
            continue
        records.append(
            FaceRecord(
                path=path,
                age=age,
                gender=GENDERS[match["gender"]],
                group=match["timestamp"],
                face_box=None,
                race=RACES[match["race"]],
            )
        )
    return records, builder.report(kept=len(records))


def _files(root: Path) -> list[str]:
    """``/``-separated paths of the non-hidden files under ``root``, sorted for a stable order."""
    found: list[str] = []
    pending = [("", str(root))]
    while pending:
        prefix, folder = pending.pop()
        # scandir knows each entry's type from the listing: no stat call per image.
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    pending.append((f"{prefix}{entry.name}/", entry.path))
                elif entry.is_file():
                    found.append(f"{prefix}{entry.name}")
    return sorted(found)
