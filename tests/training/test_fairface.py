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


def test_bad_rows_are_dropped_with_the_row_named(tmp_path):
    (tmp_path / "labels.csv").write_text(
        "path,age_group,gender,race\n"
        "train/1.jpg,20-29,Male,White\n"
        "train/2.jpg,about 30,Male,White\n"
        "../etc/passwd,20-29,Male,White\n"
    )
    records, report = read_dataset("fairface", tmp_path)
    assert [r.path for r in records] == ["train/1.jpg"]
    assert report.dropped == {"bad_age_group": 1, "bad_path": 1}
    assert any("row 3" in problem and "about 30" in problem for problem in report.problems)
    with pytest.raises(DatasetError, match=r"labels\.csv"):
        read_dataset("fairface", tmp_path / "nowhere")


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
    sources = [ChipSource(r.path, r.age, r.gender, "test", None, r.age_high) for r in records]
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
