"""Importing datasets into the database: stored split, idempotent re-runs, clear failures."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from tests.datasets import sample_utkface
from training.datasets import DatasetError
from training.importing import import_dataset
from training.models import Dataset, DatasetItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_utkface(tmp_path):
    """A folder of 120 real UTKFace files (symlinks: the data is never copied)."""
    folder = tmp_path / "utk"
    folder.mkdir()
    for path in sample_utkface(120, seed=5):
        (folder / path.name).symlink_to(path)
    return folder


def test_import_stores_items_with_a_group_respecting_split(small_utkface):
    dataset = Dataset.objects.create(name="utk", kind="utkface", source=str(small_utkface))
    import_dataset(dataset)
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.READY and dataset.content_hash
    assert dataset.items.count() == dataset.report["kept"] > 100
    counts = dataset.split_counts()
    assert set(counts) == {"train", "val", "test"} and counts["train"] > counts["test"]
    groups = {}
    for item in dataset.items.all():
        groups.setdefault(item.group, set()).add(item.split)
    assert all(len(splits) == 1 for splits in groups.values())


def test_an_interrupted_import_finishes_without_duplicates(small_utkface):
    dataset = Dataset.objects.create(name="utk", kind="utkface", source=str(small_utkface))
    import_dataset(dataset)
    total, digest = dataset.items.count(), dataset.content_hash
    # Simulate a crash half-way: some rows are missing, the status never reached "ready".
    DatasetItem.objects.filter(pk__in=dataset.items.values_list("pk", flat=True)[:40]).delete()
    Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.IMPORTING)
    import_dataset(dataset)
    assert dataset.items.count() == total
    assert dataset.content_hash == digest and dataset.status == Dataset.Status.READY


def test_a_bad_source_fails_with_a_message(tmp_path):
    bad = tmp_path / "wiki"
    bad.mkdir()
    dataset = Dataset.objects.create(name="bad", kind="imdb_wiki", source=str(bad))
    with pytest.raises(DatasetError):
        import_dataset(dataset)
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.FAILED and str(bad) in dataset.error


def test_wiki_sample_import_command_keeps_exactly_the_clean_rows(wiki_sample_dir, capsys):
    import csv

    call_command("import_dataset", "wiki", str(wiki_sample_dir), kind="imdb_wiki")
    dataset = Dataset.objects.get(name="wiki")
    expected = {}
    with open(wiki_sample_dir / "expected_labels.csv") as handle:
        for row in csv.DictReader(handle):
            if row["note"] in ("clean", "no_gender"):
                expected[row["full_path"]] = int(row["age"])
    stored = {
        path.removeprefix("wiki_crop/"): age
        for path, age in dataset.items.values_list("path", "age")
    }
    assert stored == expected
    assert "kept" in capsys.readouterr().out


def test_import_command_rejects_a_missing_folder(tmp_path):
    with pytest.raises(CommandError):
        call_command("import_dataset", "x", str(tmp_path / "absent"), kind="utkface")
