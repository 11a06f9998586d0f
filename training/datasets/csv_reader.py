"""Reading a CSV of labelled images: a header row, then ``path,age[,gender]`` rows, or
``path,age_min,age_max[,gender]`` rows for age groups.

Paths are relative to the CSV's folder. Nothing says which images show the same person, so
each image is its own group.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from training.datasets.files import FileIndex
from training.datasets.records import (
    MAX_AGE,
    MIN_AGE,
    NOT_A_PATH_INSIDE,
    DatasetError,
    FaceRecord,
    ImportReport,
    ReportBuilder,
    relative_path,
)

REASONS = ("missing_path", "bad_path", "bad_age", "bad_gender", "duplicate", "missing_file")
REQUIRED_COLUMNS = ("path", "age")
GENDERS = {
    "": "",
    "male": "male",
    "m": "male",
    "man": "male",
    "female": "female",
    "f": "female",
    "woman": "female",
}


def read_csv(csv_path: Path) -> tuple[list[FaceRecord], ImportReport]:
    """Read a CSV with a header row and the columns ``path``, ``age`` and optionally ``gender``.

    ``path`` is relative to the CSV's folder (and must stay inside it); ``age`` is a whole
    number of years in 0..100. Instead of ``age``, ``age_min`` and ``age_max`` give an age
    group (both whole years in 0..100, ``age_min <= age_max``; equal for an exact age): the
    record's ``age`` is then ``age_min`` and its ``age_high`` ``age_max``. ``gender`` is
    ``male``/``female`` (or ``m``/``f``), or empty for unknown. Column names are matched
    case-insensitively and other columns are ignored. A bad row is dropped, counted by
    reason (``missing_path``, ``bad_path``, ``bad_age``, ``bad_gender``, ``duplicate``,
    ``missing_file``) and named by its line number in ``problems``. ``group`` is the path
    itself; there is no face box.

    Raises :class:`DatasetError` when the file cannot be read or lacks a ``path`` column, or
    both an ``age`` and an ``age_min,age_max`` pair.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path} is not a file.")
    try:
        # utf-8-sig: spreadsheets often start a UTF-8 CSV with a byte-order mark.
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            return _read_rows(csv_path, csv.reader(handle))
    except UnicodeDecodeError as error:
        raise DatasetError(f"{csv_path} is not UTF-8 text: {error}") from error
    except csv.Error as error:
        raise DatasetError(f"{csv_path}: malformed CSV: {error}") from error


def _read_rows(csv_path: Path, rows) -> tuple[list[FaceRecord], ImportReport]:
    header = next((row for row in rows if any(cell.strip() for cell in row)), None)
    if header is None:
        raise DatasetError(f"{csv_path} is empty: expected a header row with path,age[,gender].")
    columns = [cell.strip().lower() for cell in header]
    groups = "age" not in columns and {"age_min", "age_max"} <= set(columns)
    missing = [name for name in REQUIRED_COLUMNS if name not in columns and not groups]
    if missing:
        # The cells themselves are not repeated: the file may not be a CSV at all.
        raise DatasetError(
            f"{csv_path}: the first row has no {' or '.join(repr(m) for m in missing)} "
            f"column; expected a header row path,age[,gender] or path,age_min,age_max[,gender]."
        )
    path_at = columns.index("path")
    age_at = columns.index("age_min" if groups else "age")
    high_at = columns.index("age_max") if groups else None
    gender_at = columns.index("gender") if "gender" in columns else None

    index = FileIndex(csv_path.parent)
    builder = ReportBuilder(REASONS)
    records: list[FaceRecord] = []
    seen: set[str] = set()
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue  # blank lines carry nothing to report
        where = f"{csv_path.name} line {rows.line_num}"

        def cell(at: int | None, row=row) -> str:
            return row[at].strip() if at is not None and at < len(row) else ""

        raw_path = cell(path_at)
        if not raw_path:
            builder.drop("missing_path", f"{where}: no path")
            continue
        path = relative_path(raw_path)
        if path is None:
            builder.drop("bad_path", f"{where}: {raw_path[:100]!r} {NOT_A_PATH_INSIDE}")
            continue
        age = _age(cell(age_at))
        if age is None:
            builder.drop(
                "bad_age",
                f"{where}: {columns[age_at]} {cell(age_at)!r} is not a whole number of years "
                f"in {MIN_AGE}..{MAX_AGE}",
            )
            continue
        age_high = _age(cell(high_at)) if high_at is not None else None
        if high_at is not None and (age_high is None or age_high < age):
            builder.drop(
                "bad_age",
                f"{where}: age_max {cell(high_at)!r} is not a whole number of years "
                f"in {age}..{MAX_AGE}",
            )
            continue
        gender = GENDERS.get(cell(gender_at).lower())
        if gender is None:
            builder.drop(
                "bad_gender", f"{where}: gender {cell(gender_at)!r} is not male, female or empty"
            )
            continue
        if path in seen:
            builder.drop("duplicate", f"{where}: {path} is listed on an earlier line")
            continue
        if not index.exists(path):
            builder.drop("missing_file", f"{where}: {path} does not exist")
            continue
        seen.add(path)
        records.append(
            FaceRecord(
                path=path,
                age=age,
                gender=gender,
                group=path,
                age_high=age_high if age_high != age else None,
            )
        )
    return records, builder.report(kept=len(records))


def _age(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value != int(value):
        return None
    age = int(value)
    return age if MIN_AGE <= age <= MAX_AGE else None
