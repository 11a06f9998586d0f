"""FairFace: age groups as interval labels, from the CSV to the chip cache and the metrics."""

from __future__ import annotations

import csv
import random

import numpy as np
import pytest
from django.core.management import call_command

from tests.datasets import require_dataset
from training.datasets import DatasetError, read_dataset
from training.models import Dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_fairface(tmp_path):
    """60 real FairFace photos (symlinks: the data is never copied) and their labels."""
    root = require_dataset("fairface")
    with open(root / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = random.Random(2).sample(rows, 60)
    folder = tmp_path / "fairface"
    for sub in ("train", "val"):
        (folder / sub).mkdir(parents=True)
    for row in chosen:
        (folder / row["path"]).symlink_to(root / row["path"])
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return folder, chosen


def test_groups_become_intervals(small_fairface):
    folder, rows = small_fairface
    records, report = read_dataset("fairface", folder)
    assert report.kept == len(records) == 60 and report.dropped == {
        "bad_age_group": 0,
        "bad_path": 0,
        "missing_file": 0,
    }
    by_path = {record.path: record for record in records}
    for row in rows:
        record = by_path[row["path"]]
        if row["age_group"] == "70+":
            assert (record.age, record.age_high) == (70, 100)
        else:
            low, high = (int(v) for v in row["age_group"].split("-"))
            assert (record.age, record.age_high) == (low, high)
        assert record.gender == row["gender"].lower()
        assert record.race == row["race"].replace("_", " ")  # Latino_Hispanic: Latino Hispanic


def test_bad_rows_are_dropped_with_the_row_named(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "1.jpg").write_bytes(b"not opened by the reader")
    long_path = "train/" + "a" * 600 + ".jpg"
    # A spreadsheet's byte-order mark before the header.
    (tmp_path / "labels.csv").write_text(
        "\ufeffpath,age_group,gender,race\n"
        "train/1.jpg,20-29,Male,White\n"
        "train/2.jpg,about 30,Male,White\n"
        "../etc/passwd,20-29,Male,White\n"
        "train/3.jpg,20-29,Male,White\n"
        f"{long_path},20-29,Male,White\n"
        "train/\x00.jpg,20-29,Male,White\n",
        encoding="utf-8",
    )
    records, report = read_dataset("fairface", tmp_path)
    assert [r.path for r in records] == ["train/1.jpg"]
    assert report.dropped == {"bad_age_group": 1, "bad_path": 3, "missing_file": 1}
    assert any("row 3" in problem and "about 30" in problem for problem in report.problems)
    assert any("row 5" in problem and "does not exist" in problem for problem in report.problems)
    with pytest.raises(DatasetError, match=r"labels\.csv"):
        read_dataset("fairface", tmp_path / "nowhere")


@pytest.mark.parametrize(
    "content, error",
    [
        ("path,age_group\ntrain/\xe9.jpg,20-29\n".encode("latin-1"), "not UTF-8"),
        (b"path,age_group\ntrain/1.jpg," + b"x" * 200_000 + b"\n", "malformed CSV"),
    ],
)
def test_a_labels_file_that_cannot_be_read_is_refused_with_its_name(tmp_path, content, error):
    (tmp_path / "labels.csv").write_bytes(content)
    with pytest.raises(DatasetError, match=rf"labels\.csv.*{error}"):
        read_dataset("fairface", tmp_path)


def test_import_command_stores_groups_and_marks_a_benchmark(small_fairface):
    folder, _ = small_fairface
    call_command("import_dataset", "ff", str(folder), "--kind", "fairface", "--benchmark")
    dataset = Dataset.objects.get(name="ff")
    assert dataset.status == Dataset.Status.READY and dataset.is_benchmark
    assert dataset.items.count() == 60
    assert all(
        item.age_high is not None and item.age_high >= item.age for item in dataset.items.all()
    )


def test_chip_cache_keeps_the_groups_and_metrics_use_them(small_fairface, tmp_path):
    from training.pipeline.chips import ChipSource
    from training.pipeline.evaluation import group_metrics
    from training.pipeline.tfrecords import build_chip_cache, load_split

    folder, _ = small_fairface
    records, _ = read_dataset("fairface", folder)
    sources = [
        ChipSource(r.path, r.age, r.gender, "test", None, r.age_high, r.race) for r in records
    ]
    cache_dir, manifest = build_chip_cache(sources, folder, tmp_path / "cache", workers=1)
    test = load_split(cache_dir, manifest, "test")
    assert manifest["counts"]["test"] == 60
    by_low = {r.age: r.age_high for r in records}
    assert all(
        by_low[low] == high for low, high in zip(test["ages"], test["age_high"], strict=True)
    )
    # Predicting each group's middle is always right; 5 years past its end never is.
    middle = (test["age_low"] + test["age_high"]) / 2
    assert group_metrics(middle, test["age_low"], test["age_high"])["accuracy"] == 1.0
    wrong = group_metrics(test["age_high"] + 5, test["age_low"], test["age_high"])
    assert wrong["accuracy"] == 0.0 and wrong["mae"] == pytest.approx(5.0)
    assert np.isclose(wrong["balanced_accuracy"], 0.0)
    # The race labels travel with the chips, for the fairness report only.
    by_path_race = sorted(r.race for r in records)
    assert sorted(test["races"].tolist()) == by_path_race

    # A network that reads larger chips gets a cache of its own, of the same faces.
    large_dir, large = build_chip_cache(
        sources, folder, tmp_path / "cache", workers=1, chip_size=96
    )
    assert large_dir != cache_dir and large["chip_size"] == 96 and manifest["chip_size"] == 64
    large_test = load_split(large_dir, large, "test")
    assert large_test["chips"].shape == (60, 96, 96, 3) and test["chips"].shape[1:3] == (64, 64)
    np.testing.assert_array_equal(large_test["age_high"], test["age_high"])
    assert build_chip_cache(sources, folder, tmp_path / "cache", chip_size=96)[0] == large_dir


def test_the_fairness_report_gives_accuracy_per_gender_and_race():
    from training.pipeline.evaluation import group_metrics

    low = np.array([20, 20, 20, 30, 30, 0])
    high = low + 9
    served = np.array([25, 25, 40, 35, 10, 1])  # right, right, wrong, right, wrong, right
    genders = np.array([0, 1, 1, 0, 1, -1])
    races = np.array(["White", "White", "Black", "Black", "Black", "Indian"])
    report = group_metrics(served, low, high, genders, races)
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["accuracy_by_race"] == {
        "Black": {
            "accuracy": pytest.approx(1 / 3),
            "mae": pytest.approx((11 + 20) / 3),
            "count": 3,
        },
        "Indian": {"accuracy": 1.0, "mae": 0.0, "count": 1},
        "White": {"accuracy": 1.0, "mae": 0.0, "count": 2},
    }
    by_gender = report["accuracy_by_gender"]
    assert by_gender["female"]["accuracy"] == 1.0 and by_gender["female"]["count"] == 2
    assert by_gender["male"]["accuracy"] == pytest.approx(1 / 3)
    assert by_gender["unknown"]["count"] == 1
    # A dataset without race labels (IMDB-WIKI) has no race report, not an empty-named group.
    assert "accuracy_by_race" not in group_metrics(served, low, high, genders, np.full(6, ""))


def test_exact_ages_get_mae_per_race():
    from training.pipeline.evaluation import age_metrics

    report = age_metrics(
        np.array([10.0, 22.0, 30.0]),
        np.array([12, 20, 40]),
        np.array([0, 1, 1]),
        races=np.array(["Asian", "Asian", "Others"]),
    )
    assert report["mae_by_race"]["Asian"] == {"mae": 2.0, "cs5": 1.0, "count": 2}
    assert report["mae_by_race"]["Others"]["mae"] == 10.0
    assert report["mae_by_gender"]["male"]["count"] == 2


def test_importing_again_fills_in_race_for_items_imported_before_it_existed(small_fairface):
    folder, rows = small_fairface
    call_command("import_dataset", "ff", str(folder), "--kind", "fairface")
    dataset = Dataset.objects.get(name="ff")
    splits = dict(dataset.items.values_list("path", "split"))
    dataset.items.update(race="")  # as imported before the field existed
    call_command("import_dataset", "ff", str(folder), "--kind", "fairface")
    races = dict(dataset.items.values_list("path", "race"))
    assert races == {row["path"]: row["race"].replace("_", " ") for row in rows}
    assert dict(dataset.items.values_list("path", "split")) == splits  # nothing else moved
    assert dataset.items.count() == 60


def test_an_image_over_pillows_pixel_limit_is_skipped_not_the_run(tmp_path):
    """A decompression bomb in a dataset costs its own face, not the whole training run."""
    from tests import images
    from training.pipeline.chips import ChipSource, cut_chip

    (tmp_path / "bomb.png").write_bytes(images.png_header_only(20000, 20000))
    result = cut_chip(ChipSource("bomb.png", 30, "", "train"), tmp_path, None, None)
    assert result.chip is None and result.how == "too large"
