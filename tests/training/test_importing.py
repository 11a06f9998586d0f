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
    assert dataset.status == Dataset.Status.FAILED and str(bad) in dataset.error_message


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


@pytest.fixture
def confined(settings, tmp_path):
    """Imports allowed under tmp_path/roots only."""
    root = tmp_path / "roots"
    root.mkdir()
    settings.FACEAGE_IMPORT_ROOTS = [root]
    return root


def test_the_admin_form_refuses_a_source_outside_the_import_roots(admin_client, confined):
    from training.forms import DatasetForm

    def errors(source: str) -> list[str]:
        form = DatasetForm({"name": "x", "kind": "csv", "source": source, "split_seed": 0})
        assert not form.is_valid()
        return form.errors["source"]

    outside = errors("/etc/passwd")
    assert "only from under" in outside[0] and str(confined) in outside[0]
    # The same answer for a path that does not exist: the form tells nothing about the disk.
    assert errors("/no/such/file.csv") == outside
    assert errors(f"{confined}/../../etc/passwd") == outside
    # Inside a root, a missing file is named as such.
    assert "does not exist" in errors(f"{confined}/missing.csv")[0]
    page = admin_client.post(
        "/admin/training/dataset/add/",
        {"name": "leak", "kind": "csv", "source": "/etc/shadow", "split_seed": 0},
    )
    assert page.status_code == 200 and not Dataset.objects.filter(name="leak").exists()


def test_a_stored_source_outside_the_roots_fails_without_reading_it(confined):
    dataset = Dataset.objects.create(name="old", kind="csv", source="/etc/passwd")
    with pytest.raises(DatasetError, match="only from under"):
        import_dataset(dataset)
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.FAILED
    assert "root:" not in dataset.error_message and "only from under" in dataset.error_message


def test_the_import_command_refuses_a_source_outside_the_roots(confined):
    with pytest.raises(CommandError, match="only from under"):
        call_command("import_dataset", "x", "/etc", "--kind", "utkface")


def test_a_folder_linked_into_a_root_is_imported(confined, small_utkface):
    (confined / "utk").symlink_to(small_utkface)
    call_command("import_dataset", "linked", str(confined / "utk"), "--kind", "utkface")
    assert Dataset.objects.get(name="linked").items.count() > 100


def test_a_file_that_is_not_a_csv_is_not_quoted_in_the_error(confined):
    secret = confined / "secret.csv"
    secret.write_text("root:$y$j9T$abcdefgh:19000:0:99999:7:::\nline two\n")
    dataset = Dataset.objects.create(name="s", kind="csv", source=str(secret))
    with pytest.raises(DatasetError) as failure:
        import_dataset(dataset)
    assert "abcdefgh" not in str(failure.value) and "path,age" in str(failure.value)


def test_every_row_dropped_fails_the_import_with_the_reasons(tmp_path):
    csv_path = tmp_path / "groups.csv"
    csv_path.write_text("path,age_min,age_max\na.jpg,30,20\n")
    with pytest.raises(CommandError, match=r"No usable faces.*bad_age 1.*line 2"):
        call_command("import_dataset", "minmax", str(csv_path), "--kind", "csv")
    dataset = Dataset.objects.get(name="minmax")
    assert dataset.status == Dataset.Status.FAILED
    assert dataset.report["dropped"]["bad_age"] == 1 and "line 2" in dataset.report["problems"][0]


def test_a_reader_failure_no_check_foresaw_fails_the_row_at_once(small_utkface, monkeypatch):
    """The command's import ends failed with the reason, as a worker's would, instead of
    staying running until the sweeper finds it."""
    import training.importing

    def broken(kind, source):
        raise IndexError("index out of range")

    monkeypatch.setattr(training.importing, "read_dataset", broken)
    with pytest.raises(CommandError, match="IndexError: index out of range"):
        call_command("import_dataset", "utk", str(small_utkface), "--kind", "utkface")
    dataset = Dataset.objects.get(name="utk")
    assert dataset.status == Dataset.Status.FAILED
    assert "IndexError: index out of range" in dataset.error_message


@pytest.mark.parametrize("seed", ["-1", "2147483648"])
def test_the_import_command_refuses_a_seed_no_dataset_can_store(small_utkface, seed):
    with pytest.raises(CommandError, match="--seed"):
        call_command(
            "import_dataset", "utk", str(small_utkface), "--kind", "utkface", "--seed", seed
        )
    assert not Dataset.objects.exists()


def test_evaluating_on_a_split_without_faces_says_so_and_stores_nothing(tmp_path):
    from predictor.models import ModelVersion

    dataset = Dataset.objects.create(
        name="one", kind="csv", source=str(tmp_path / "x.csv"), status=Dataset.Status.READY
    )
    DatasetItem.objects.create(dataset=dataset, path="a.jpg", age=30, split="train")
    version = ModelVersion.objects.get(name="dlib-age-v1")
    before = version.metrics
    with pytest.raises(CommandError, match="no usable faces in its test split"):
        call_command("evaluate", "--model-version", version.name, "--dataset", "one")
    with pytest.raises(CommandError, match="no usable faces in its test split"):
        call_command("export_model", version.name, "--evaluate-on", "one")
    version.refresh_from_db()
    assert version.metrics == before
