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

from training.datasets.files import FileIndex
from training.datasets.records import (
    MAX_AGE,
    NOT_A_PATH_INSIDE,
    DatasetError,
    FaceRecord,
    ImportReport,
    ReportBuilder,
    relative_path,
)

REASONS = ("bad_age_group", "bad_path", "missing_file")
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
    try:
        # utf-8-sig: a spreadsheet may start the file with a byte-order mark.
        with open(labels, newline="", encoding="utf-8-sig") as handle:
            return _read_rows(Path(root), labels, csv.DictReader(handle))
    except UnicodeDecodeError as error:
        raise DatasetError(f"{labels} is not UTF-8 text: {error}") from error
    except csv.Error as error:
        raise DatasetError(f"{labels}: malformed CSV: {error}") from error


def _read_rows(root: Path, labels: Path, reader) -> tuple[list[FaceRecord], ImportReport]:
    missing = {"path", "age_group"} - set(reader.fieldnames or ())
    if missing:
        raise DatasetError(f"{labels}: no column {', '.join(sorted(missing))}.")
    index = FileIndex(root)
    builder = ReportBuilder(REASONS)
    records: list[FaceRecord] = []
    for row in reader:
        where = f"{labels.name} row {reader.line_num}"
        raw_path = (row.get("path") or "").strip()
        path = relative_path(raw_path)
        if path is None:
            builder.drop("bad_path", f"{where}: path {raw_path[:100]!r} {NOT_A_PATH_INSIDE}")
            continue
        interval = AGE_GROUPS.get((row.get("age_group") or "").strip())
        if interval is None:
            builder.drop(
                "bad_age_group",
                f"{where}: age_group {(row.get('age_group') or '')[:100]!r} is "
                f"not one of {', '.join(AGE_GROUPS)}",
            )
            continue
        if not index.exists(path):
            builder.drop("missing_file", f"{where}: {path} does not exist")
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
