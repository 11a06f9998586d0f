"""The feedback dataset: people's consented labels as training data and as a benchmark, with
the worker's own chips, split by account, snapshotted per run (issue 12, item 2)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from PIL import Image

from predictor.models import AgeLabel, Face, Prediction
from training import feedback, runner
from training.models import Dataset, TrainingRun

pytestmark = pytest.mark.django_db


def jpeg(chip: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(chip).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def labelled_faces(owner, chips: np.ndarray, ages, consent=True) -> list[AgeLabel]:
    """One photo of ``owner`` per chip, its face labelled with the age."""
    labels = []
    for chip, age in zip(chips, ages, strict=True):
        prediction = Prediction(owner=owner, status=Prediction.Status.SUCCEEDED)
        prediction.image.save("p.jpg", ContentFile(b"\xff\xd8x"), save=False)
        prediction.save()
        face = Face.objects.create(
            prediction=prediction, index=0, left=0, top=0, right=63, bottom=63,
            age=float(age) + 3, age_std=4, chip_jpeg=jpeg(chip),
        )  # fmt: skip
        labels.append(AgeLabel.give(face, owner, int(age), consent))
    return labels


@pytest.fixture
def people(django_user_model):
    return [django_user_model.objects.create_user(f"person{n}") for n in range(12)]


@pytest.fixture
def feedback_dataset():
    return Dataset.objects.create(name="fb", kind=Dataset.Kind.FEEDBACK, source="")


def test_only_consented_faces_are_taken_and_each_account_stays_on_one_side(
    people, real_chips, feedback_dataset
):
    for n, person in enumerate(people):
        labelled_faces(person, real_chips["chips"][n * 4 : n * 4 + 4], real_chips["ages"][:4])
    refused = labelled_faces(people[0], real_chips["chips"][60:62], [30, 40], consent=False)
    dataset = feedback.snapshot(feedback_dataset)
    assert dataset.status == Dataset.Status.READY
    items = list(dataset.items.all())
    assert len(items) == 48
    assert {f"labels/{label.pk}" for label in refused}.isdisjoint(i.path for i in items)
    sides: dict[str, set[str]] = {}
    for item in items:
        sides.setdefault(item.group, set()).add(item.split)
    assert all(len(found) == 1 for found in sides.values())  # no account on two sides
    assert len(sides) == 12 and {"train", "test"} <= {s for found in sides.values() for s in found}


def test_withdrawn_and_deleted_faces_leave_the_next_snapshot(people, real_chips, feedback_dataset):
    labels = labelled_faces(people[0], real_chips["chips"][:3], [20, 30, 40])
    labels += labelled_faces(people[1], real_chips["chips"][3:5], [50, 60])
    first = {i.path: i.split for i in feedback.snapshot(feedback_dataset).items.all()}
    labels[0].withdraw_consent()
    labels[3].face.prediction.delete_with_files()
    second = {i.path: i.split for i in feedback.snapshot(feedback_dataset).items.all()}
    assert set(second) == {f"labels/{labels[n].pk}" for n in (1, 2, 4)}
    assert all(first[path] == side for path, side in second.items())  # no face changes side


def test_a_run_keeps_its_snapshot_and_a_resume_drops_only_withdrawn_faces(
    people, real_chips, feedback_dataset
):
    labels = labelled_faces(people[0], real_chips["chips"][:4], [20, 30, 40, 50])
    run = TrainingRun.objects.create(dataset=feedback_dataset)
    feedback.freeze_for_run(run, [feedback_dataset])
    taken = sorted(label.pk for label in labels)
    assert TrainingRun.objects.get(pk=run.pk).feedback_snapshot == {str(feedback_dataset.pk): taken}
    # Later: another face is given with consent, and one is withdrawn. The resumed run
    # keeps its snapshot without the withdrawn face and takes no new one.
    newcomer = labelled_faces(people[1], real_chips["chips"][4:5], [70])[0]
    labels[1].withdraw_consent()
    feedback.freeze_for_run(TrainingRun.objects.get(pk=run.pk), [feedback_dataset])
    assert feedback.label_ids(feedback_dataset) == [pk for pk in taken if pk != labels[1].pk]
    assert TrainingRun.objects.get(pk=run.pk).feedback_snapshot[str(feedback_dataset.pk)] == taken
    # A new run takes the consented faces of its own start, the newcomer included.
    later = TrainingRun.objects.create(dataset=feedback_dataset)
    feedback.freeze_for_run(later, [feedback_dataset])
    assert newcomer.pk in feedback.label_ids(feedback_dataset)
    assert labels[1].pk not in feedback.label_ids(feedback_dataset)


def test_the_chips_are_the_ones_the_worker_cut(
    people, real_chips, feedback_dataset, settings, tmp_path
):
    from training.pipeline.tfrecords import load_split

    settings.FACEAGE_CHIP_CACHE_DIR = str(tmp_path / "chips")
    for n, person in enumerate(people):
        labelled_faces(
            person, real_chips["chips"][n * 5 : n * 5 + 5], real_chips["ages"][n * 5 : n * 5 + 5]
        )
    dataset = feedback.snapshot(feedback_dataset)
    cache_dir, manifest = runner.prepare_chips(dataset)
    assert sum(manifest["counts"].values()) == 60 and manifest["how"] == {"stored_chip": 60}
    loaded = [load_split(cache_dir, manifest, split) for split in ("train", "val", "test")]
    chips = np.concatenate([split["chips"] for split in loaded])
    ages = np.concatenate([split["ages"] for split in loaded])
    assert sorted(ages.tolist()) == sorted(real_chips["ages"][:60].tolist())  # the real ages
    stored = [
        np.asarray(Image.open(io.BytesIO(bytes(label.face.chip_jpeg))).convert("RGB")).tobytes()
        for label in AgeLabel.objects.select_related("face")
    ]
    assert sorted(chip.tobytes() for chip in chips) == sorted(stored)  # the very same pixels


def test_the_import_command_and_form_need_no_source_for_it(people, real_chips, admin_client):
    with pytest.raises(CommandError, match="consented"):
        call_command("import_dataset", "fb", "--kind", "feedback")
    labelled_faces(people[0], real_chips["chips"][:2], [30, 31])
    call_command("import_dataset", "fb", "--kind", "feedback", "--benchmark")
    dataset = Dataset.objects.get(name="fb")
    assert dataset.is_benchmark and dataset.items.count() == 2 and dataset.source == ""
    with pytest.raises(CommandError, match="needs a source"):
        call_command("import_dataset", "utk", "--kind", "utkface")
    from training.forms import DatasetForm

    form = DatasetForm({"name": "fb2", "kind": "feedback", "source": "", "split_seed": 0})
    assert form.is_valid(), form.errors
    form = DatasetForm({"name": "x", "kind": "utkface", "source": "", "split_seed": 0})
    assert not form.is_valid() and "source" in form.errors


def test_people_s_labels_train_a_model_that_the_gate_judges(
    django_user_model, real_chips, settings, tmp_path
):
    """The loop on tiny data: 64 real faces labelled through the API by 32 people, a run on
    the feedback dataset (also a benchmark), the gate's verdict on the suite."""
    people = [django_user_model.objects.create_user(f"labeller{n}") for n in range(32)]
    from rest_framework.test import APIClient

    settings.FACEAGE_CHIP_CACHE_DIR = str(tmp_path / "chips")
    settings.FACEAGE_TRAINING_DIR = str(tmp_path / "runs")
    settings.MEDIA_ROOT = str(tmp_path / "media")
    for n, chip in enumerate(real_chips["chips"]):
        owner = people[n % len(people)]
        (face,) = [label.face for label in labelled_faces(owner, chip[None], [30])]
        AgeLabel.objects.filter(face=face).delete()  # given again below, through the API
        api = APIClient()
        api.force_authenticate(owner)
        url = f"/api/v1/predictions/{face.prediction_id}/faces/0/label/"
        given = api.post(url, {"age": int(real_chips["ages"][n]), "consent": True}, format="json")
        assert given.status_code == 200
    call_command("import_dataset", "fb", "--kind", "feedback", "--benchmark")
    call_command(
        "train", "--dataset", "fb", "--epochs", "1", "--batch-size", "8",
        "--max-steps-per-epoch", "2",
    )  # fmt: skip
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error_message
    assert len(run.feedback_snapshot[str(Dataset.objects.get(name="fb").pk)]) == 64
    judged = run.model_version.metrics["benchmarks"]["fb"]
    assert judged["candidate"]["count"] == judged["active"]["count"] > 0
    assert "regressions" in judged


def test_a_withdrawn_or_deleted_face_leaves_the_chip_caches_at_once(
    people, real_chips, feedback_dataset, settings, tmp_path
):
    settings.FACEAGE_CHIP_CACHE_DIR = str(tmp_path / "chips")
    labels = labelled_faces(people[0], real_chips["chips"][:3], [20, 30, 40])
    labels += labelled_faces(people[1], real_chips["chips"][3:6], [50, 60, 70])
    dataset = feedback.snapshot(feedback_dataset)
    first, _ = runner.prepare_chips(dataset)
    assert first.is_dir()
    labels[0].withdraw_consent()
    assert not first.exists()  # gone now, not at the next run
    second, manifest = runner.prepare_chips(dataset)
    assert sum(manifest["counts"].values()) == 5  # the withdrawn face is not in the new one
    labels[4].face.prediction.delete_with_files()
    assert not second.exists()
    third, manifest = runner.prepare_chips(dataset)
    assert sum(manifest["counts"].values()) == 4
    assert [path.name for path in feedback.cache_root(dataset).iterdir()] == [third.name]
