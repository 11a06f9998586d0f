"""Reading FairFace, whose ages are groups such as ``20-29``, not years.

The folder holds ``labels.csv`` with ``path,age_group,gender,race`` (``path`` relative to the
folder: ``train/N.jpg`` or ``val/N.jpg``). Each group becomes an interval label: ``age`` is
its first year and ``age_high`` its last; ``70+`` is read as 70-100, the top of the age
head. Every photo shows a different person, so each is its own split group. FairFace
(Kärkkäinen and Joo, WACV 2021) is CC BY 4.0.
"""

from __future__ import annotations

import csv
from pathlib import Path

from training.datasets.records import MAX_AGE, DatasetError, FaceRecord, ImportReport, ReportBuilder

REASONS = ("bad_age_group", "bad_path")
AGE_GROUPS = {
    "0-2": (0, 2),
    "3-9": (3, 9),
    "10-19": (10, 19),
    "20-29": (20, 29),
    "30-39": (30, 39),
    "40-49": (40, 49),
    "50-59": (50, 59),
    "60-69": (60, 69),
    "more than 70": (70, MAX_AGE),
    "70+": (70, MAX_AGE),
}
GENDERS = {"male": "male", "female": "female"}
# FairFace's seven race groups, as its labels spell them, and as reports show them.
RACES = {
    "white": "White",
    "black": "Black",
    "latino_hispanic": "Latino Hispanic",
    "latino hispanic": "Latino Hispanic",
    "east asian": "East Asian",
    "southeast asian": "Southeast Asian",
    "indian": "Indian",
    "middle eastern": "Middle Eastern",
}
LABELS_NAME = "labels.csv"


def read_fairface(root: Path) -> tuple[list[FaceRecord], ImportReport]:
    """Read ``root/labels.csv``. Paths stay relative to ``root``; images are not opened.

    Raises :class:`DatasetError` when the file is missing or lacks a needed column.
    """
    labels = Path(root) / LABELS_NAME
    if not labels.is_file():
        raise DatasetError(f"{labels} is missing: a FairFace folder has labels.csv.")
    builder = ReportBuilder(REASONS)
    records: list[FaceRecord] = []
    with open(labels, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "age_group"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{labels}: no column {', '.join(sorted(missing))}.")
        for row_number, row in enumerate(reader, start=2):
            path = (row.get("path") or "").strip()
            if not path or path.startswith("/") or ".." in path.split("/"):
                builder.drop("bad_path", f"{labels.name} row {row_number}: path {path!r}")
                continue
            interval = AGE_GROUPS.get((row.get("age_group") or "").strip())
            if interval is None:
                builder.drop(
                    "bad_age_group",
                    f"{labels.name} row {row_number}: age_group {row.get('age_group')!r} is "
                    f"not one of {', '.join(AGE_GROUPS)}",
                )
                continue
            records.append(
                FaceRecord(
                    path=path,
                    age=interval[0],
                    age_high=interval[1],
                    gender=GENDERS.get((row.get("gender") or "").strip().lower(), ""),
                    group=path,
                    race=RACES.get((row.get("race") or "").strip().lower(), ""),
                )
            )
    return records, builder.report(kept=len(records))
