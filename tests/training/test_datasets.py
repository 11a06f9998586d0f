"""The dataset readers (IMDB-WIKI, UTKFace, CSV) and the group-preserving splits.

Plain tests: no database. The real-data tests use ``wiki_sample_dir`` and ``utkface_dir``,
which skip when ``../shared/datasets`` is absent.
"""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from training.datasets import (
    DatasetError,
    FaceRecord,
    assign_splits,
    read_csv,
    read_dataset,
    read_imdb_wiki,
    read_utkface,
    split_counts,
)
from training.datasets.imdb_wiki import matlab_age

NOTE_REASON = {
    "no_face": "no_face",
    "second_face": "second_face",
    "low_score": "low_score",
    "bad_dob": "bad_age",
}


# --- helpers ---------------------------------------------------------------------------------


def datenum(day: date, fraction: float = 0.0) -> float:
    """Matlab's datenum for ``day`` (plus a time of day)."""
    return day.toordinal() + 366 + fraction


def cells(values: list) -> np.ndarray:
    """A 1xN object array, which savemat writes as a cell array (as IMDB-WIKI has)."""
    array = np.empty((1, len(values)), dtype=object)
    for i, value in enumerate(values):
        array[0, i] = value
    return array


def row(
    full_path: str,
    born: date,
    taken: int,
    *,
    gender: float = 1.0,
    score: float = 4.0,
    second: float = math.nan,
    name: str = "Some One",
    celeb_id: int = 1,
    fraction: float = 0.0,
) -> dict:
    return {
        "full_path": full_path,
        "dob": datenum(born, fraction),
        "photo_taken": taken,
        "gender": gender,
        "face_score": score,
        "second_face_score": second,
        "name": name,
        "celeb_id": celeb_id,
    }


def write_mat(
    folder: Path,
    db: str,
    rows: list[dict],
    *,
    without: str | None = None,
    file_name: str | None = None,
    create_files: bool = True,
) -> Path:
    """Write ``<db>.mat`` laid out like IMDB-WIKI, and empty crops for every row."""
    fields = {
        "dob": np.array([[r["dob"] for r in rows]], dtype=np.float64),
        "photo_taken": np.array([[r["photo_taken"] for r in rows]], dtype=np.uint16),
        "full_path": cells([r["full_path"] for r in rows]),
        "gender": np.array([[r["gender"] for r in rows]], dtype=np.float64),
        "name": cells([r["name"] for r in rows]),
        "face_location": cells([np.array([[10.0, 20.0, 110.0, 120.0]]) for _ in rows]),
        "face_score": np.array([[r["face_score"] for r in rows]], dtype=np.float64),
        "second_face_score": np.array([[r["second_face_score"] for r in rows]]),
    }
    if db == "imdb":
        fields["celeb_id"] = np.array([[r["celeb_id"] for r in rows]], dtype=np.float64)
        fields["celeb_names"] = cells(["Some One", "Other One"])
    if without:
        del fields[without]
    mat_path = folder / (file_name or f"{db}.mat")
    savemat(mat_path, {db: fields})
    if create_files:
        for r in rows:
            image = folder / f"{db}_crop" / r["full_path"]
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(b"")
    return mat_path


# --- IMDB-WIKI on the real sample --------------------------------------------------------------


@pytest.fixture(scope="module")
def wiki_sample(wiki_sample_dir: Path):
    records, report = read_imdb_wiki(wiki_sample_dir)
    with (wiki_sample_dir / "expected_labels.csv").open(newline="") as handle:
        expected = list(csv.DictReader(handle))
    return records, report, expected


def test_wiki_sample_keeps_exactly_the_clean_rows_with_their_ages(wiki_sample):
    records, _report, expected = wiki_sample
    kept = {(r.path.removeprefix("wiki_crop/"), r.age) for r in records}
    wanted = {
        (row["full_path"], int(row["age"]))
        for row in expected
        if row["note"] in ("clean", "no_gender")
    }
    assert len(records) == len(kept)  # no duplicates hiding in the set
    assert kept == wanted


def test_wiki_sample_dropped_counts_match_the_notes(wiki_sample):
    records, report, expected = wiki_sample
    notes = Counter(row["note"] for row in expected)
    # In this sample every noisy row is noisy in exactly one way (one note per row, and the
    # rules flag no row for two reasons), so each reason's count equals its note's count.
    assert report.dropped == {
        "no_face": notes["no_face"],
        "low_score": notes["low_score"],
        "second_face": notes["second_face"],
        "bad_age": notes["bad_dob"],
        "bad_path": 0,
        "duplicate": 0,
        "missing_file": 0,
    }
    assert report.kept == len(records) == notes["clean"] + notes["no_gender"]
    assert report.total == len(expected) == 3000
    assert 0 < len(report.problems) <= 50


def test_wiki_sample_labels_groups_and_boxes(wiki_sample, wiki_sample_dir):
    records, _report, expected = wiki_sample
    no_gender = {row["full_path"] for row in expected if row["note"] == "no_gender"}
    for record in records:
        short = record.path.removeprefix("wiki_crop/")
        assert record.path.startswith("wiki_crop/")
        assert (wiki_sample_dir / record.path).is_file()
        assert record.gender in (("",) if short in no_gender else ("male", "female"))
        assert record.group == short.split("/")[1].split("_")[0]
        assert record.face_box is not None and record.face_box[0] < record.face_box[2]


# --- IMDB-WIKI rules on synthetic files ----------------------------------------------------


def test_age_rule_july_and_later_counts_one_year_less():
    assert matlab_age(datenum(date(1980, 6, 30)), 2010) == 30
    assert matlab_age(datenum(date(1980, 7, 1)), 2010) == 29
    assert matlab_age(datenum(date(1980, 12, 31), 0.99), 2010) == 29
    assert matlab_age(math.nan, 2010) is None
    assert matlab_age(0.0, 2010) is None


def test_wiki_rules_on_a_synthetic_file(tmp_path):
    rows = [
        row("01/101_1980-06-30_2010.jpg", date(1980, 6, 30), 2010, fraction=0.5),
        row("02/102_1980-07-01_2010.jpg", date(1980, 7, 1), 2010, gender=0.0),
        row("03/103_1990-01-01_2000.jpg", date(1990, 1, 1), 2000, gender=math.nan, score=1.0),
        row("04/104.jpg", date(1990, 1, 1), 2000, score=-math.inf),
        row("05/105.jpg", date(1990, 1, 1), 2000, score=0.999),
        row("06/106.jpg", date(1990, 1, 1), 2000, second=2.5),
        row("07/107.jpg", date(1900, 1, 1), 2002),  # 102 years old
        row("08/108.jpg", date(2005, 1, 1), 2000),  # photo before birth
        row("09/alice.jpg", date(1970, 1, 1), 2000, name="Alice"),
    ]
    write_mat(tmp_path, "wiki", rows)
    records, report = read_imdb_wiki(tmp_path)
    by_path = {r.path: r for r in records}
    assert by_path == {
        "wiki_crop/01/101_1980-06-30_2010.jpg": FaceRecord(
            "wiki_crop/01/101_1980-06-30_2010.jpg", 30, "male", "101", (10.0, 20.0, 110.0, 120.0)
        ),
        "wiki_crop/02/102_1980-07-01_2010.jpg": FaceRecord(
            "wiki_crop/02/102_1980-07-01_2010.jpg", 29, "female", "102", (10.0, 20.0, 110.0, 120.0)
        ),
        "wiki_crop/03/103_1990-01-01_2000.jpg": FaceRecord(
            "wiki_crop/03/103_1990-01-01_2000.jpg", 10, "", "103", (10.0, 20.0, 110.0, 120.0)
        ),
        "wiki_crop/09/alice.jpg": FaceRecord(
            "wiki_crop/09/alice.jpg", 30, "male", "Alice", (10.0, 20.0, 110.0, 120.0)
        ),
    }
    assert report.dropped == {
        "no_face": 1,
        "low_score": 1,
        "second_face": 1,
        "bad_age": 2,
        "bad_path": 0,
        "duplicate": 0,
        "missing_file": 0,
    }
    assert any("row 4 (04/104.jpg)" in p for p in report.problems)


def test_a_wiki_path_that_climbs_out_of_its_folder_is_dropped(tmp_path):
    """A full_path with ``..`` would have training read a file outside the import roots."""
    folder = tmp_path / "data"
    folder.mkdir()
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"a face that is not the dataset's")
    rows = [
        row("01/1_a.jpg", date(1980, 1, 1), 2000),
        row("../../outside.jpg", date(1980, 1, 1), 2000),
        row("01/" + "b" * 600 + ".jpg", date(1980, 1, 1), 2000),
    ]
    write_mat(folder, "wiki", rows, create_files=False)
    (folder / "wiki_crop" / "01").mkdir(parents=True)
    (folder / "wiki_crop" / "01" / "1_a.jpg").write_bytes(b"")
    records, report = read_imdb_wiki(folder)
    assert [r.path for r in records] == ["wiki_crop/01/1_a.jpg"]
    assert report.dropped["bad_path"] == 2
    assert all(len(problem) <= 300 for problem in report.problems)


def test_missing_crop_is_counted_as_missing_file(tmp_path):
    rows = [
        row("01/1_a.jpg", date(1980, 1, 1), 2000),
        row("02/2_b.jpg", date(1980, 1, 1), 2000),
    ]
    write_mat(tmp_path, "wiki", rows)
    (tmp_path / "wiki_crop" / "02" / "2_b.jpg").unlink()
    records, report = read_imdb_wiki(tmp_path)
    assert [r.path for r in records] == ["wiki_crop/01/1_a.jpg"]
    assert report.dropped["missing_file"] == 1
    assert any("wiki_crop/02/2_b.jpg does not exist" in p for p in report.problems)

    records, report = read_imdb_wiki(tmp_path, check_files=False)
    assert len(records) == 2 and report.dropped["missing_file"] == 0


def test_imdb_uses_celeb_id_and_is_detected_from_the_variable_name(tmp_path):
    rows = [
        row("01/nm01_rm1_1980-1-1_2000.jpg", date(1980, 1, 1), 2000, celeb_id=7),
        row("01/nm01_rm2_1980-1-1_2001.jpg", date(1980, 1, 1), 2001, celeb_id=7),
        row("02/nm02_rm3_1950-8-1_2000.jpg", date(1950, 8, 1), 2000, celeb_id=9),
    ]
    mat_path = write_mat(tmp_path, "imdb", rows, file_name="labels.mat")
    records, report = read_imdb_wiki(tmp_path)  # the only .mat file; its variable says imdb
    assert [(r.path, r.age, r.group) for r in records] == [
        ("imdb_crop/01/nm01_rm1_1980-1-1_2000.jpg", 20, "7"),
        ("imdb_crop/01/nm01_rm2_1980-1-1_2001.jpg", 21, "7"),
        ("imdb_crop/02/nm02_rm3_1950-8-1_2000.jpg", 49, "9"),
    ]
    assert report.kept == 3
    assert read_imdb_wiki(mat_path, db="imdb")[0] == records
    with pytest.raises(DatasetError, match="no variable 'wiki'"):
        read_imdb_wiki(mat_path, db="wiki")


def test_a_single_row_file_reads(tmp_path):
    # squeeze_me turns one-row cell arrays into their only entry.
    write_mat(tmp_path, "wiki", [row("01/5_x.jpg", date(1980, 1, 1), 2000)])
    records, _ = read_dataset("imdb_wiki", tmp_path)
    assert records == [FaceRecord("wiki_crop/01/5_x.jpg", 20, "male", "5", (10, 20, 110, 120))]


@pytest.mark.parametrize("field", ["face_score", "second_face_score", "full_path", "dob"])
def test_a_missing_field_names_the_file_and_field(tmp_path, field):
    write_mat(tmp_path, "wiki", [row("01/1_a.jpg", date(1980, 1, 1), 2000)] * 2, without=field)
    with pytest.raises(DatasetError, match=rf"wiki\.mat.*no field '{field}'"):
        read_imdb_wiki(tmp_path)


def test_imdb_without_celeb_id_is_a_layout_error(tmp_path):
    write_mat(tmp_path, "imdb", [row("01/a.jpg", date(1980, 1, 1), 2000)], without="celeb_id")
    with pytest.raises(DatasetError, match="celeb_id"):
        read_imdb_wiki(tmp_path)


def test_fields_of_different_lengths_are_a_layout_error(tmp_path):
    rows = [row(f"01/{i}_a.jpg", date(1980, 1, 1), 2000) for i in range(3)]
    mat_path = write_mat(tmp_path, "wiki", rows)
    fields = {
        "dob": np.array([[r["dob"] for r in rows]]),
        "photo_taken": np.array([[2000, 2000]], dtype=np.uint16),  # one short
        "full_path": cells([r["full_path"] for r in rows]),
        "gender": np.ones((1, 3)),
        "name": cells(["a", "b", "c"]),
        "face_location": cells([np.zeros((1, 4))] * 3),
        "face_score": np.full((1, 3), 3.0),
        "second_face_score": np.full((1, 3), np.nan),
    }
    savemat(mat_path, {"wiki": fields})
    with pytest.raises(DatasetError, match=r"wiki\.mat: field wiki\.photo_taken has 2 entries"):
        read_imdb_wiki(tmp_path)


def test_unreadable_or_misnamed_mat_files(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_imdb_wiki(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"Expected one wiki\.mat or imdb\.mat"):
        read_imdb_wiki(tmp_path)
    (tmp_path / "wiki.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DatasetError, match=r"wiki\.mat"):
        read_imdb_wiki(tmp_path)
    savemat(tmp_path / "wiki.mat", {"faces": np.zeros((2, 2))})
    with pytest.raises(DatasetError, match="expected a variable named 'wiki' or 'imdb'"):
        read_imdb_wiki(tmp_path)
    savemat(tmp_path / "wiki.mat", {"wiki": np.zeros((2, 2))})
    with pytest.raises(DatasetError, match="expected a struct"):
        read_imdb_wiki(tmp_path)


def test_missing_crop_folder_is_a_clear_error(tmp_path):
    write_mat(tmp_path, "wiki", [row("01/1.jpg", date(1980, 1, 1), 2000)], create_files=False)
    with pytest.raises(DatasetError, match="wiki_crop not found"):
        read_imdb_wiki(tmp_path)


# --- UTKFace ---------------------------------------------------------------------------------


def test_utkface_real_folder(utkface_dir: Path):
    files = [p for p in utkface_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
    records, report = read_utkface(utkface_dir)
    assert len(files) == 18473
    assert report.kept + sum(report.dropped.values()) == len(files)
    assert set(report.dropped) == {"unreadable_name", "bad_age"}
    assert report.kept == len(records) > 18000
    for record in records:
        age, gender, race, rest = record.path.split("_")
        assert record.age == int(age) and 0 <= record.age <= 100
        assert record.gender == {"0": "male", "1": "female"}[gender]
        assert record.race == ["White", "Black", "Asian", "Indian", "Others"][int(race)]
        assert record.group == rest.split(".")[0] and record.group.isdigit()
        assert record.face_box is None
    ages = [p.name.split("_")[0] for p in files]
    over_100 = sum(1 for age in ages if age.isdigit() and int(age) > 100)
    assert report.dropped["bad_age"] == over_100
    # Faces cut from one photo share its timestamp: some groups hold several faces.
    assert max(Counter(r.group for r in records).values()) > 1


def test_utkface_malformed_names(tmp_path):
    names = [
        "25_0_2_20170116174525125.jpg.chip.jpg",
        "26_1_0_20170116174525125.jpg.chip.jpg",
        "30_1_3_20170104200000000.jpg",
        "117_0_0_20170104200000001.jpg.chip.jpg",
        "39_1_20170116174525125.jpg.chip.jpg",
        "55_0_0_20170116232725357jpg.chip.jpg",
        "24_0_1_20170116220224657 .jpg.chip.jpg",
        "notes.txt",
    ]
    for name in [*names, ".DS_Store"]:
        (tmp_path / name).write_bytes(b"")
    records, report = read_utkface(tmp_path)
    assert [(r.path, r.age, r.gender, r.group) for r in records] == [
        ("25_0_2_20170116174525125.jpg.chip.jpg", 25, "male", "20170116174525125"),
        ("26_1_0_20170116174525125.jpg.chip.jpg", 26, "female", "20170116174525125"),
        ("30_1_3_20170104200000000.jpg", 30, "female", "20170104200000000"),
    ]
    assert report.dropped == {"unreadable_name": 4, "bad_age": 1}
    assert any(p.startswith("39_1_20170116174525125.jpg.chip.jpg:") for p in report.problems)
    with pytest.raises(DatasetError):
        read_utkface(tmp_path / "nowhere")


# --- CSV -------------------------------------------------------------------------------------


def test_csv_bad_rows_are_dropped_and_named(tmp_path):
    (tmp_path / "img").mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        (tmp_path / "img" / name).write_bytes(b"")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(
        "\ufeffPath,Age,Gender\n"  # a spreadsheet's byte-order mark and capitals
        "img/a.jpg,31,female\n"
        "img/b.jpg,7.0,m\n"
        "./img/c.jpg,44,\n"
        ",30,male\n"
        "img/d.jpg,thirty,male\n"
        "img/d.jpg,12.5,male\n"
        "img/d.jpg,101,male\n"
        "img/d.jpg,20,robot\n"
        "img/missing.jpg,20,male\n"
        "../outside.jpg,20,male\n"
        "img/a.jpg,32,female\n"
        "img/\x00.jpg,20,male\n"  # os.listdir refuses a NUL (ValueError); PostgreSQL too
        f"img/{'e' * 600}.jpg,20,male\n"  # longer than a stored path may be
        "\n",
        encoding="utf-8",
    )
    records, report = read_csv(csv_path)
    assert records == [
        FaceRecord("img/a.jpg", 31, "female", "img/a.jpg", None),
        FaceRecord("img/b.jpg", 7, "male", "img/b.jpg", None),
        FaceRecord("img/c.jpg", 44, "", "img/c.jpg", None),
    ]
    assert report.dropped == {
        "missing_path": 1,
        "bad_path": 3,
        "bad_age": 3,
        "bad_gender": 1,
        "duplicate": 1,
        "missing_file": 1,
    }
    assert report.problems[0] == "labels.csv line 5: no path"
    assert any(p.startswith("labels.csv line 6: age 'thirty'") for p in report.problems)
    assert any("line 10: img/missing.jpg does not exist" in p for p in report.problems)
    assert read_dataset("csv", csv_path) == (records, report)


def test_csv_age_groups_as_age_min_and_age_max(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"):
        (tmp_path / name).write_bytes(b"")
    csv_path = tmp_path / "groups.csv"
    csv_path.write_text(
        "path,age_min,age_max,gender\n"
        "a.jpg,20,29,female\n"
        "b.jpg,7,7,male\n"  # an exact age, written as a group of one year
        "c.jpg,30,20,male\n"  # upside down
        "d.jpg,70,,male\n"
        "e.jpg,60,120,male\n",
        encoding="utf-8",
    )
    records, report = read_csv(csv_path)
    assert [(r.path, r.age, r.age_high) for r in records] == [("a.jpg", 20, 29), ("b.jpg", 7, None)]
    assert report.dropped["bad_age"] == 3
    assert any("line 4: age_max '20'" in p for p in report.problems)


def test_csv_without_age_column_raises(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("path,years\na.jpg,3\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"labels\.csv.*no 'age' column"):
        read_csv(csv_path)
    csv_path.write_text("", encoding="utf-8")
    with pytest.raises(DatasetError, match="empty"):
        read_csv(csv_path)


# --- splits and dispatch ---------------------------------------------------------------------


def synthetic_records(groups: int, per_group: int = 3) -> list[FaceRecord]:
    return [
        FaceRecord(f"g{g}/{i}.jpg", 30, "", f"person-{g}", None)
        for g in range(groups)
        for i in range(per_group)
    ]


def test_splits_are_deterministic_and_keep_groups_together():
    records = synthetic_records(3000)
    first = assign_splits(records, seed=0)
    assert first == assign_splits(list(reversed(records)), seed=0)
    assert set(first) == {r.path for r in records}
    sides = defaultdict(set)
    for record in records:
        sides[record.group].add(first[record.path])
    assert all(len(s) == 1 for s in sides.values())
    counts = split_counts(first)
    assert sum(counts.values()) == len(records)
    for split, fraction in zip(("train", "val", "test"), (0.8, 0.1, 0.1), strict=True):
        assert counts[split] / len(records) == pytest.approx(fraction, abs=0.03)
    # A group's side depends only on the group: removing records moves no one.
    subset = records[::7]
    assert assign_splits(subset, seed=0) == {r.path: first[r.path] for r in subset}
    assert assign_splits(records, seed=1) != first


def test_splits_on_utkface_keep_photos_together(utkface_dir: Path):
    records, _ = read_utkface(utkface_dir)
    splits = assign_splits(records, fractions=(0.7, 0.15, 0.15), seed=3)
    sides = defaultdict(set)
    for record in records:
        sides[record.group].add(splits[record.path])
    assert all(len(s) == 1 for s in sides.values())
    counts = split_counts(splits)
    assert counts["train"] / len(records) == pytest.approx(0.7, abs=0.02)
    assert counts["val"] / len(records) == pytest.approx(0.15, abs=0.02)


def test_split_fractions_are_checked():
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(synthetic_records(2), fractions=(0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match="non-negative"):
        assign_splits(synthetic_records(2), fractions=(1.1, -0.1, 0.0))
    assert split_counts({}) == {"train": 0, "val": 0, "test": 0}


def test_unknown_kind_raises(tmp_path):
    with pytest.raises(DatasetError, match="Unknown dataset kind 'parquet'"):
        read_dataset("parquet", tmp_path)
