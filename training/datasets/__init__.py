"""Dataset readers for training: IMDB-WIKI, UTKFace, FairFace and CSV, all without Django.

Every reader returns ``(records, report)``: a list of :class:`FaceRecord` (paths relative to
the dataset's folder, ages in years) and an :class:`ImportReport` of what was kept and what
was dropped, by reason. A source that cannot be read at all raises :class:`DatasetError`.
"""

from __future__ import annotations

from pathlib import Path

from training.datasets.csv_reader import read_csv
from training.datasets.fairface import read_fairface
from training.datasets.imdb_wiki import read_imdb_wiki
from training.datasets.records import DatasetError, FaceRecord, ImportReport
from training.datasets.splits import assign_splits, split_counts
from training.datasets.utkface import read_utkface

KINDS = ("imdb_wiki", "utkface", "fairface", "csv")

__all__ = [
    "KINDS",
    "DatasetError",
    "FaceRecord",
    "ImportReport",
    "assign_splits",
    "read_csv",
    "read_dataset",
    "read_fairface",
    "read_imdb_wiki",
    "read_utkface",
    "split_counts",
]


def read_dataset(kind: str, source: Path) -> tuple[list[FaceRecord], ImportReport]:
    """Read ``source`` with the reader for ``kind``: ``"imdb_wiki"``, ``"utkface"``,
    ``"fairface"`` or ``"csv"``.

    ``source`` is the IMDB-WIKI, UTKFace or FairFace folder, or the CSV file. Raises
    :class:`DatasetError` for an unknown kind or an unreadable source.
    """
    source = Path(source)
    if kind == "imdb_wiki":
        return read_imdb_wiki(source)
    if kind == "utkface":
        return read_utkface(source)
    if kind == "fairface":
        return read_fairface(source)
    if kind == "csv":
        return read_csv(source)
    raise DatasetError(f"Unknown dataset kind {kind!r}: expected one of {', '.join(KINDS)}.")
