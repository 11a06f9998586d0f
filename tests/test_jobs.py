"""The job layer (jobs/): one lifecycle for predictions, training runs, dataset imports and
model exports, and messages stored as codes with their values."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.translation import override

from jobs import lifecycle
from jobs.legacy import code_of
from jobs.messages import render
from jobs.models import JobStatus
from predictor.messages import PREDICTION_MESSAGES
from predictor.models import ModelVersion
from training import messages
from training.models import Dataset, ModelExport, TrainingRun

pytestmark = pytest.mark.django_db


def live_claimant() -> str:
    """``host:pid`` of another process of this host that is alive (this test's parent)."""
    import os
    import socket

    return f"{socket.gethostname()}:{os.getppid()}"


def dead_claimant() -> str:
    """``host:pid`` of a process of this host that has exited."""
    import socket

    process = subprocess.Popen(["true"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


@pytest.fixture
def sent(monkeypatch):
    """The import and export messages sent, instead of a broker."""
    from training import tasks
    from training.export import tasks as export_tasks

    calls: list = []
    monkeypatch.setattr(
        tasks.import_dataset, "apply_async", lambda args, **kw: calls.append(("import", *args))
    )
    monkeypatch.setattr(
        export_tasks.build_model_export,
        "apply_async",
        lambda args, **kw: calls.append(("export", *args)),
    )
    return calls


def test_an_import_whose_worker_died_is_queued_again_and_then_given_up(sent):
    from training.tasks import sweep_stale_imports_and_exports

    dataset = Dataset.objects.create(
        name="d", kind="utkface", source="/x", status=JobStatus.RUNNING, attempts=1,
        claimed_by=dead_claimant(), started_at=timezone.now(), heartbeat_at=timezone.now(),
    )  # fmt: skip
    counts = sweep_stale_imports_and_exports.run()
    assert counts["imports"]["recovered"] == 1
    dataset.refresh_from_db()
    assert (dataset.status, dataset.claimed_by) == (JobStatus.QUEUED, "")
    assert sent == [("import", dataset.pk)] and dataset.sends == 1

    # Out of attempts, the next dead worker fails it, with a reason a person can read.
    Dataset.objects.filter(pk=dataset.pk).update(
        status=JobStatus.RUNNING, attempts=3, claimed_by=dead_claimant()
    )
    counts = sweep_stale_imports_and_exports.run()
    dataset.refresh_from_db()
    assert counts["imports"]["failed"] == 1
    assert (dataset.status, dataset.error_code, dataset.error_params) == (
        JobStatus.FAILED,
        messages.IMPORT_GAVE_UP,
        {"attempts": 3},
    )
    assert dataset.error_message == "The import stopped unexpectedly 3 times."


def test_a_live_import_is_left_alone_and_a_silent_one_past_its_deadline_is_not(sent, settings):
    from training.tasks import sweep_stale_imports_and_exports

    live = Dataset.objects.create(
        name="live", kind="utkface", source="/x", status=JobStatus.RUNNING, attempts=1,
        claimed_by="another-host:1", heartbeat_at=timezone.now(),
    )  # fmt: skip
    silent = Dataset.objects.create(
        name="silent", kind="utkface", source="/y", status=JobStatus.RUNNING, attempts=1,
        claimed_by="another-host:2",
        heartbeat_at=timezone.now() - timedelta(seconds=settings.FACEAGE_IMPORT_TIME_LIMIT + 61),
    )  # fmt: skip
    sweep_stale_imports_and_exports.run()
    live.refresh_from_db()
    silent.refresh_from_db()
    assert live.status == JobStatus.RUNNING and live.claimed_by == "another-host:1"
    assert silent.status == JobStatus.QUEUED and sent == [("import", silent.pk)]


def test_the_import_task_claims_its_dataset_and_a_duplicate_message_does_nothing(
    monkeypatch, tmp_path, settings
):
    from training import tasks

    settings.FACEAGE_IMPORT_ROOTS = [str(tmp_path)]
    calls = []
    monkeypatch.setattr(
        "training.importing.import_dataset", lambda dataset, progress=None: calls.append(dataset)
    )
    dataset = Dataset.objects.create(name="d", kind="utkface", source=str(tmp_path))
    tasks.import_dataset.run(dataset.pk)
    dataset.refresh_from_db()
    assert [row.pk for row in calls] == [dataset.pk]
    assert dataset.status == JobStatus.RUNNING and dataset.attempts == 1  # (the fake left it)
    Dataset.objects.filter(pk=dataset.pk).update(claimed_by=live_claimant())
    tasks.import_dataset.run(dataset.pk)  # a duplicate while a live worker holds it
    assert len(calls) == 1


def test_an_export_whose_worker_died_is_built_again(sent):
    from training.tasks import sweep_stale_imports_and_exports

    version = ModelVersion.ensure_bundled()
    row = ModelExport.objects.create(
        version=version, key="k", status=JobStatus.RUNNING, attempts=1,
        claimed_by=dead_claimant(), heartbeat_at=timezone.now(),
    )  # fmt: skip
    counts = sweep_stale_imports_and_exports.run()
    assert counts["exports"]["recovered"] == 1
    row.refresh_from_db()
    assert row.status == JobStatus.QUEUED and sent == [("export", version.pk, row.pk)]


def test_a_build_queued_for_an_out_of_date_key_ends_cancelled(monkeypatch):
    """New weights or card metrics since it was queued: the row ends, the current key's is
    built by the next request (no row is left queued for the sweeper to send for ever)."""
    from training.export import tasks as export_tasks

    monkeypatch.setattr(
        "training.export.build.build_exports",
        lambda version: pytest.fail("an out-of-date key must not be built"),
    )
    version = ModelVersion.ensure_bundled()
    stale = ModelExport.objects.create(version=version, key="an-old-key")
    export_tasks.build_model_export.run(version.pk, stale.pk)
    stale.refresh_from_db()
    assert stale.status == JobStatus.CANCELLED and stale.finished_at is not None


def test_a_build_that_fails_outside_the_export_step_records_why(monkeypatch):
    from training.export import tasks as export_tasks

    def broken(version):
        raise OSError("card template missing")

    monkeypatch.setattr("training.export.build.build_exports", broken)
    version = ModelVersion.ensure_bundled()
    export_tasks.build_model_export.run(version.pk)
    row = ModelExport.objects.get(version=version)
    assert row.status == JobStatus.FAILED and row.error_code == "export_failed"
    assert row.error_message == "The export could not be built: OSError: card template missing"


def test_a_run_claimed_then_failed_stores_a_code_and_renders_it_per_language():
    dataset = Dataset.objects.create(name="d", kind="utkface", source="/x", status="succeeded")
    run = TrainingRun.objects.create(dataset=dataset)
    claimed = lifecycle.claim(TrainingRun, run.pk)
    assert claimed is not None and claimed.status == JobStatus.RUNNING
    TrainingRun.objects.filter(pk=run.pk).update(claimed_by=live_claimant())
    assert lifecycle.claim(TrainingRun, run.pk) is None  # held by a live worker
    assert lifecycle.fail(TrainingRun, run.pk, messages.TOO_SLOW, {"seconds": 60})
    run.refresh_from_db()
    assert (run.error_code, run.error_params) == ("too_slow", {"seconds": 60})
    assert run.error_payload() == {"code": "too_slow", "message": "Training took longer than 60 s."}
    with override("zh-hans"):
        assert "60" in run.error_message and "Training" not in run.error_message
    # A terminal row is never failed again, nor claimed.
    assert not lifecycle.fail(TrainingRun, run.pk, messages.FAILED, {"error": "late"})
    assert lifecycle.claim(TrainingRun, run.pk) is None


def test_render_fills_values_and_shows_an_unknown_code_as_its_detail():
    assert render(PREDICTION_MESSAGES, "gave_up", {"attempts": 2}) == (
        "Processing stopped unexpectedly 2 times, so we gave up."
    )
    assert render(PREDICTION_MESSAGES, "", {}) == ""
    assert render(PREDICTION_MESSAGES, "from_the_future", {"detail": "as stored"}) == "as stored"
    assert render(PREDICTION_MESSAGES, "from_the_future", {}) == "from_the_future"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("", {})),
        (
            "Processing stopped unexpectedly 3 times, so we gave up.",
            ("gave_up", {"attempts": "3"}),
        ),
        (
            "Processing stopped unexpectedly 3 times, so we gave up. "
            "The photo may be unusually large; try a smaller copy.",
            ("gave_up_large", {"attempts": "3"}),
        ),
        (
            "The image is 9000x8000 pixels; at most 40,000,000 pixels are accepted. "
            "Resize it and upload again.",
            ("too_many_pixels", {"width": "9000", "height": "8000", "max_pixels": "40,000,000"}),
        ),
        ("The uploaded photo is missing from storage. Upload it again.", ("photo_missing", {})),
        (
            "Something nobody wrote a template for",
            ("unknown", {"detail": "Something nobody wrote a template for"}),
        ),
    ],
)
def test_old_sentences_become_codes_without_a_regex(text, expected):
    """What the migrations do with the English sentences stored before codes."""
    from predictor.messages import PREDICTION_MESSAGES as templates

    assert code_of(text, templates, "unknown") == expected


def test_a_model_page_only_looks_at_the_export_it_never_queues_one(client):
    """Builds start when someone asks for a download, not when a page (or a crawler) looks."""
    version = ModelVersion.ensure_bundled()
    assert client.get(f"/models/{version.name}/").status_code == 200
    assert not ModelExport.objects.exists()
