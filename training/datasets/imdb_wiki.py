"""Reading IMDB-WIKI: ``wiki.mat`` with ``wiki_crop/``, or ``imdb.mat`` with ``imdb_crop/``.

The labels follow the rules of the dataset's authors (Rothe, Timofte and Van Gool):

* ``dob`` is a Matlab datenum, i.e. a Python ordinal plus 366 (any fraction is the time of
  day and is ignored);
* age in years = ``photo_taken`` minus the birth year, minus one more when the birth month
  is July or later, because ``photo_taken`` is only a year and mid-year is its best guess;
* a row is dropped when its ``face_score`` is ``-inf`` (``no_face``: the crop is a 1x1-pixel
  placeholder) or below 1 (``low_score``), when its ``second_face_score`` is not NaN
  (``second_face``: the label may belong to the other face), when the age falls outside
  0..100 (``bad_age``), when its path repeats an earlier row's (``duplicate``), and, when
  files are checked, when its crop is missing (``missing_file``). A row is counted under the
  first of these reasons that applies, in that order.

Memory. ``imdb.mat`` is large, and ``scipy.io.loadmat`` cannot read one field of a struct: a
MAT v5 struct is a single (compressed) element. So the reader

1. asks ``whosmat`` (headers only) which variable is there, and loads only that variable
   (``variable_names=[db]``);
2. loads with ``squeeze_me=True``, which squeezes each cell as it is read, so a path is held
   as one ``str`` rather than a ``str`` wrapped in a 1x1 array;
3. loads with ``struct_as_record=False``, so that each field is a plain attribute it can
   delete: fields it does not use (``name`` and ``celeb_names`` for imdb) are freed first,
   and every other field is freed as soon as it is turned into a compact array or list.

The peak is therefore the loaded struct itself; afterwards only compact columns remain.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import matlab

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

DBS = ("wiki", "imdb")
REASONS = (
    "no_face",
    "low_score",
    "second_face",
    "bad_age",
    "bad_path",
    "duplicate",
    "missing_file",
)
MIN_FACE_SCORE = 1.0
# Matlab's datenum counts from year 0; Python's ordinal from year 1, a leap year later.
DATENUM_OFFSET = 366

_COMMON_FIELDS = (
    "dob",
    "photo_taken",
    "full_path",
    "gender",
    "face_location",
    "face_score",
    "second_face_score",
)
# wiki falls back to the person's name when a file name has no numeric id; imdb has ids.
REQUIRED_FIELDS = {"wiki": (*_COMMON_FIELDS, "name"), "imdb": (*_COMMON_FIELDS, "celeb_id")}
_WIKI_ID = re.compile(r"(\d+)_")


def read_imdb_wiki(
    root: Path, db: str | None = None, check_files: bool = True
) -> tuple[list[FaceRecord], ImportReport]:
    """Read an IMDB-WIKI folder (``wiki.mat`` + ``wiki_crop/``, or ``imdb.mat`` + ``imdb_crop/``).

    ``root`` is the folder holding the ``.mat`` file and the crop folder (a path to the
    ``.mat`` file itself is accepted too). ``db`` is ``"wiki"`` or ``"imdb"``; when ``None`` it
    is taken from the file's variable name. Record paths are relative to ``root``, e.g.
    ``wiki_crop/39/10461139_1977-07-09_2006.jpg``; ages are in years; face boxes are the
    ``face_location`` (left, top, right, bottom) in pixels of the crop. ``group`` is the person:
    the numeric id in a wiki file name (else the name), or the imdb ``celeb_id``. Images are
    not opened. With ``check_files`` the crops are checked to exist (``missing_file``).

    Raises :class:`DatasetError`, naming the file and field, when the ``.mat`` file is
    missing, unreadable or not laid out as IMDB-WIKI.
    """
    mat_path, db = locate_mat(Path(root), db)
    columns = _load_columns(mat_path, db)
    folder = mat_path.parent
    crop = f"{db}_crop"
    if check_files and columns.count and not (folder / crop).is_dir():
        raise DatasetError(f"{folder / crop} not found: the crops must sit next to {mat_path}.")

    index = FileIndex(folder)
    builder = ReportBuilder(REASONS)
    records: list[FaceRecord] = []
    seen: set[str] = set()
    scores = columns.face_score.tolist()
    seconds = columns.second_face_score.tolist()
    dobs = columns.dob.tolist()
    taken = columns.photo_taken.tolist()
    genders = columns.gender.tolist()
    for i, full_path in enumerate(columns.full_path):
        # Row numbers are 1-based, as Matlab shows them.
        where = f"{mat_path.name} row {i + 1} ({full_path})"
        score = scores[i]
        if score == -math.inf:
            builder.drop("no_face", f"{where}: face_score is -inf (no face found)")
            continue
        if not score >= MIN_FACE_SCORE:
            builder.drop("low_score", f"{where}: face_score {score:.3g} is below {MIN_FACE_SCORE}")
            continue
        if not math.isnan(seconds[i]):
            builder.drop("second_face", f"{where}: second face found (score {seconds[i]:.3g})")
            continue
        age = matlab_age(dobs[i], taken[i])
        if age is None or not MIN_AGE <= age <= MAX_AGE:
            builder.drop(
                "bad_age",
                f"{where}: born {_datenum_text(dobs[i])}, photo taken {taken[i]:g}: "
                f"age {age} is outside {MIN_AGE}..{MAX_AGE}",
            )
            continue
        path = relative_path(_relative_path(crop, full_path))
        if path is None:
            builder.drop("bad_path", f"{where}: full_path {NOT_A_PATH_INSIDE}")
            continue
        if path in seen:
            builder.drop("duplicate", f"{where}: the same path appears in an earlier row")
            continue
        if check_files and not index.exists(path):
            builder.drop("missing_file", f"{where}: {path} does not exist")
            continue
        seen.add(path)
        gender = _gender(genders[i])
        if gender is None:
            builder.note(f"{where}: gender {genders[i]!r} is not 0, 1 or NaN; kept as unknown")
            gender = ""
        records.append(
            FaceRecord(
                path=path,
                age=age,
                gender=gender,
                group=columns.group(i),
                face_box=columns.box(i),
            )
        )
    return records, builder.report(kept=len(records))


def matlab_age(dob: float, photo_taken: float) -> int | None:
    """Age in years from a Matlab datenum birth date and the year a photo was taken.

    ``None`` when either value is not a usable date or year.
    """
    try:
        birth = date.fromordinal(int(dob) - DATENUM_OFFSET)
        year = int(photo_taken)
    except (ValueError, OverflowError, TypeError):
        return None
    return year - birth.year - (1 if birth.month >= 7 else 0)


def _datenum_text(dob: float) -> str:
    try:
        return date.fromordinal(int(dob) - DATENUM_OFFSET).isoformat()
    except (ValueError, OverflowError):
        return f"on an invalid date (dob {dob!r})"


def locate_mat(root: Path, db: str | None = None) -> tuple[Path, str]:
    """Find the ``.mat`` file under ``root`` and which database (``"wiki"``/``"imdb"``) it holds."""
    if db is not None and db not in DBS:
        raise DatasetError(f"Unknown IMDB-WIKI database {db!r}: expected one of {', '.join(DBS)}.")
    if root.is_file():
        mat_path = root
    elif not root.is_dir():
        raise DatasetError(f"{root} does not exist.")
    elif db is not None:
        mat_path = root / f"{db}.mat"
        if not mat_path.is_file():
            raise DatasetError(f"{mat_path} not found.")
    else:
        found = [root / f"{name}.mat" for name in DBS if (root / f"{name}.mat").is_file()]
        if not found:
            found = sorted(root.glob("*.mat"))
        if len(found) != 1:
            names = ", ".join(path.name for path in found) or "none"
            raise DatasetError(
                f"Expected one wiki.mat or imdb.mat in {root} (found: {names}); pass db."
            )
        mat_path = found[0]

    variables = {name: kind for name, _shape, kind in _whosmat(mat_path)}
    if db is None:
        present = [name for name in DBS if name in variables]
        if len(present) != 1:
            raise DatasetError(
                f"{mat_path}: expected a variable named 'wiki' or 'imdb', "
                f"found {', '.join(sorted(variables)) or 'none'}."
            )
        db = present[0]
    elif db not in variables:
        raise DatasetError(
            f"{mat_path}: no variable {db!r} (found {', '.join(sorted(variables)) or 'none'})."
        )
    if variables[db] != "struct":
        raise DatasetError(f"{mat_path}: variable {db!r} is a {variables[db]}, expected a struct.")
    return mat_path, db


# (A file cut off inside its header fails in scipy's reader with an IndexError.)
_READ_ERRORS = (
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    OSError,
    EOFError,
    zlib.error,
    matlab.MatReadError,
)


def _whosmat(mat_path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    try:
        version = matlab.matfile_version(str(mat_path))[0]
        variables = None if version == 2 else matlab.whosmat(str(mat_path))
    except _READ_ERRORS as error:
        raise DatasetError(f"{mat_path} is not a readable MATLAB file: {error}") from error
    if variables is None:
        raise DatasetError(f"{mat_path} is a MATLAB v7.3 (HDF5) file; re-save it with -v7.")
    return variables


@dataclass
class _Columns:
    """The fields of one IMDB-WIKI struct as compact, equally long columns."""

    db: str
    full_path: list[str]
    dob: np.ndarray
    photo_taken: np.ndarray
    gender: np.ndarray
    face_score: np.ndarray
    second_face_score: np.ndarray
    face_location: np.ndarray  # (n, 4) float64, NaN rows where no usable box
    person: list[str] | np.ndarray  # wiki: names; imdb: celeb_id as float64

    @property
    def count(self) -> int:
        return len(self.full_path)

    def group(self, i: int) -> str:
        name = self.full_path[i].rsplit("/", 1)[-1]
        if self.db == "wiki":
            match = _WIKI_ID.match(name)
            if match:
                return match.group(1)
            return str(self.person[i]) or self.full_path[i]
        celeb_id = float(self.person[i])
        if math.isfinite(celeb_id):
            return str(int(celeb_id))
        # imdb file names start with the person's IMDb id (nm0000001_...).
        return name.split("_", 1)[0] or self.full_path[i]

    def box(self, i: int) -> tuple[float, float, float, float] | None:
        left, top, right, bottom = self.face_location[i].tolist()
        if not all(math.isfinite(v) for v in (left, top, right, bottom)):
            return None
        return (left, top, right, bottom)


def _load_columns(mat_path: Path, db: str) -> _Columns:
    try:
        loaded = matlab.loadmat(
            str(mat_path), variable_names=[db], squeeze_me=True, struct_as_record=False
        )
    except _READ_ERRORS as error:
        raise DatasetError(f"{mat_path}: cannot read variable {db!r}: {error}") from error
    struct = loaded.pop(db, None)
    del loaded
    if not isinstance(struct, matlab.mat_struct):
        raise DatasetError(f"{mat_path}: variable {db!r} is not a 1x1 struct.")

    required = REQUIRED_FIELDS[db]
    fields = list(struct._fieldnames)
    missing = [name for name in required if name not in fields]
    if missing:
        raise DatasetError(
            f"{mat_path}: struct {db!r} has no field {', '.join(repr(m) for m in missing)} "
            f"(it has {', '.join(fields)})."
        )
    for name in fields:
        if name not in required:
            delattr(struct, name)

    def take(name: str) -> Any:
        value = getattr(struct, name)
        delattr(struct, name)
        return value

    face_score = _numeric(mat_path, db, "face_score", take("face_score"))
    count = len(face_score)

    def numeric(name: str) -> np.ndarray:
        return _check_length(mat_path, db, name, _numeric(mat_path, db, name, take(name)), count)

    full_path = [
        _text(mat_path, db, "full_path", i, value, allow_empty=False)
        for i, value in enumerate(_cells(mat_path, db, "full_path", take("full_path"), count))
    ]
    if db == "wiki":
        person: list[str] | np.ndarray = [
            _text(mat_path, db, "name", i, value, allow_empty=True)
            for i, value in enumerate(_cells(mat_path, db, "name", take("name"), count))
        ]
    else:
        person = numeric("celeb_id")
    return _Columns(
        db=db,
        full_path=full_path,
        dob=numeric("dob"),
        photo_taken=numeric("photo_taken"),
        gender=numeric("gender"),
        face_score=face_score,
        second_face_score=numeric("second_face_score"),
        face_location=_boxes(_cells(mat_path, db, "face_location", take("face_location"), count)),
        person=person,
    )


def _numeric(mat_path: Path, db: str, name: str, value: Any) -> np.ndarray:
    try:
        return np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()
    except (ValueError, TypeError) as error:
        raise DatasetError(f"{mat_path}: field {db}.{name} is not numeric ({error}).") from error


def _check_length(mat_path: Path, db: str, name: str, values: Any, count: int) -> Any:
    if len(values) != count:
        raise DatasetError(
            f"{mat_path}: field {db}.{name} has {len(values)} entries "
            f"but {db}.face_score has {count}."
        )
    return values


def _cells(mat_path: Path, db: str, name: str, value: Any, count: int) -> list[Any]:
    """The entries of a cell (or char-matrix) field, one per row.

    ``squeeze_me`` turns a one-row cell array into its only entry, so with one row anything
    but a list of cells is that entry.
    """
    is_list = isinstance(value, np.ndarray) and value.ndim >= 1 and value.dtype.kind in "OU"
    if count == 1 and not (is_list and value.size != 1):
        entries = [value.ravel()[0] if is_list and value.size == 1 else value]
    elif is_list:
        entries = list(value.ravel())
    elif isinstance(value, np.ndarray) and value.size == 0:
        entries = []
    else:
        raise DatasetError(f"{mat_path}: field {db}.{name} is not a cell array.")
    return _check_length(mat_path, db, name, entries, count)


def _text(mat_path: Path, db: str, name: str, i: int, value: Any, allow_empty: bool) -> str:
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, np.ndarray) and value.size == 0:
        text = ""
    else:
        raise DatasetError(
            f"{mat_path}: {db}.{name} row {i + 1} is a {type(value).__name__}, not text."
        )
    if not text and not allow_empty:
        raise DatasetError(f"{mat_path}: {db}.{name} row {i + 1} is empty.")
    return text


def _boxes(entries: list[Any]) -> np.ndarray:
    boxes = np.full((len(entries), 4), np.nan)
    for i, entry in enumerate(entries):
        try:
            values = np.asarray(entry, dtype=np.float64).ravel()
        except (ValueError, TypeError):
            continue  # a malformed box only costs the hint; the chip cutter detects instead
        if values.size == 4:
            boxes[i] = values
    return boxes


def _gender(value: float) -> str | None:
    if math.isnan(value):
        return ""
    if value == 1.0:
        return "male"
    if value == 0.0:
        return "female"
    return None


def _relative_path(crop: str, full_path: str) -> str:
    path = full_path.replace("\\", "/").lstrip("/")
    if path.startswith(f"{crop}/"):
        return path
    return f"{crop}/{path}"
