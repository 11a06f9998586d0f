"""Training runs: claiming, the sweeper, the staff-only pages and the admin's start form."""

from __future__ import annotations

import socket
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from training import runner, tasks
from training.models import Dataset, TrainingRun

pytestmark = pytest.mark.django_db
Status = TrainingRun.Status


@pytest.fixture
def dataset():
    return Dataset.objects.create(name="d", kind="utkface", source="/tmp", status="succeeded")


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_claim_is_idempotent_and_recovers_dead_workers(dataset):
    run = TrainingRun.objects.create(dataset=dataset)
    claimed = runner.claim_run(run.pk)
    assert claimed.status == Status.RUNNING and claimed.attempts == 1
    TrainingRun.objects.filter(pk=run.pk).update(claimed_by=f"{socket.gethostname()}:1")
    assert runner.claim_run(run.pk) is None  # pid 1 is alive: a redelivery does nothing
    TrainingRun.objects.filter(pk=run.pk).update(claimed_by=f"{socket.gethostname()}:{dead_pid()}")
    again = runner.claim_run(run.pk)
    assert again is not None and again.attempts == 2
    assert "resumed" in TrainingRun.objects.get(pk=run.pk).log


def test_sweeper_requeues_dead_runs_and_fails_exhausted_ones(dataset, monkeypatch, settings):
    sent = []
    monkeypatch.setattr(tasks.train, "apply_async", lambda args, **kw: sent.append(args[0]))
    host = socket.gethostname()
    orphan = TrainingRun.objects.create(
        dataset=dataset, status=Status.RUNNING, attempts=1, claimed_by=f"{host}:{dead_pid()}"
    )
    exhausted = TrainingRun.objects.create(
        dataset=dataset,
        status=Status.RUNNING,
        attempts=settings.FACEAGE_TRAINING_MAX_ATTEMPTS,
        claimed_by=f"{host}:{dead_pid()}",
    )
    silent = TrainingRun.objects.create(
        dataset=dataset,
        status=Status.RUNNING,
        attempts=1,
        claimed_by="other-host:42",
        heartbeat_at=timezone.now() - timedelta(hours=2),
    )
    alive = TrainingRun.objects.create(
        dataset=dataset,
        status=Status.RUNNING,
        attempts=1,
        claimed_by=f"{host}:1",
        heartbeat_at=timezone.now(),
    )
    counts = tasks.sweep_stale_runs.run()
    assert counts == {"requeued": 0, "recovered": 2, "failed": 1}
    assert sorted(sent) == sorted([orphan.pk, silent.pk])
    assert TrainingRun.objects.get(pk=orphan.pk).status == Status.QUEUED
    assert TrainingRun.objects.get(pk=exhausted.pk).status == Status.FAILED
    assert TrainingRun.objects.get(pk=alive.pk).status == Status.RUNNING


def test_a_queued_run_behind_a_long_one_gets_few_duplicate_messages(dataset, monkeypatch, settings):
    """A run waiting hours behind another is re-sent with a doubling interval (2, 4, 8, ...
    64 minutes at the default), not every 150 s: 9 messages in 5 hours, not 120."""
    sent = []
    monkeypatch.setattr(tasks.train, "apply_async", lambda args, **kw: sent.append(args[0]))
    start = timezone.now()
    run = TrainingRun.objects.create(dataset=dataset, created_at=start)
    assert tasks.enqueue_run(run.pk)
    clock = {"now": start}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])
    TrainingRun.objects.filter(pk=run.pk).update(enqueued_at=start)
    for sweep in range(1, 5 * 3600 // 30 + 1):  # every 30 s for 5 hours
        clock["now"] = start + timedelta(seconds=30 * sweep)
        tasks.sweep_stale_runs.run()
    assert len(sent) == 9, sent
    assert TrainingRun.objects.get(pk=run.pk).sends == 9


def test_run_pages_are_for_staff_only(client, admin_client, dataset, user):
    run = TrainingRun.objects.create(
        dataset=dataset,
        history=[{"epoch": 1, "loss": 3.0, "mae": 6.0, "val_loss": 3.1, "val_mae": 6.2}],
    )
    for url in (f"/training/runs/{run.pk}/", f"/training/runs/{run.pk}/progress.json"):
        assert client.get(url).status_code == 302  # to the login page
        client.force_login(user)
        assert client.get(url).status_code == 302  # not staff
        client.logout()
        assert admin_client.get(url).status_code == 200
    page = admin_client.get(f"/training/runs/{run.pk}/").content.decode()
    assert "<progress" in page and "Cancel this run" in page
    svg = admin_client.get(f"/training/runs/{run.pk}/curves.svg")
    assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content
    assert (
        admin_client.get(f"/training/runs/{run.pk}/progress.json").json()["history"][0]["epoch"]
        == 1
    )


def test_cancel(admin_client, dataset):
    queued = TrainingRun.objects.create(dataset=dataset)
    admin_client.post(f"/training/runs/{queued.pk}/cancel/")
    assert TrainingRun.objects.get(pk=queued.pk).status == Status.CANCELLED
    running = TrainingRun.objects.create(dataset=dataset, status=Status.RUNNING)
    admin_client.post(f"/training/runs/{running.pk}/cancel/")
    assert TrainingRun.objects.get(pk=running.pk).cancel_requested


def test_admin_start_form_queues_a_run(
    admin_client, dataset, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(tasks.train, "apply_async", lambda args, **kw: sent.append(args[0]))
    assert admin_client.get("/admin/training/trainingrun/start/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/training/trainingrun/start/",
            {
                "dataset": dataset.pk,
                "epochs": 2,
                "batch_size": 32,
                "learning_rate": 0.001,
                "init": "bundled",
            },
        )
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/training/runs/{run.pk}/"
    assert sent == [run.pk] and run.epochs == 2
    bad = admin_client.post(
        "/admin/training/trainingrun/start/", {"dataset": dataset.pk, "epochs": 0}
    )
    assert bad.status_code == 200 and TrainingRun.objects.count() == 1


def test_non_staff_cannot_use_the_training_admin(client, user):
    client.force_login(user)
    assert client.get("/admin/training/trainingrun/start/").status_code == 302


def test_the_row_keeps_an_epoch_checkpointed_just_before_a_crash(dataset, monkeypatch):
    """A worker killed between an epoch's checkpoint (state.json) and its row update: the
    resumed fit starts after that epoch, so only the checkpoint still has its metrics."""
    from types import SimpleNamespace

    import numpy as np

    from training.pipeline import fit as fit_module
    from training.pipeline import tfrecords

    epoch = {"loss": 3.0, "mae": 6.0, "val_loss": 3.1, "val_mae": 6.2}
    first, second, third = ({"epoch": n, **epoch} for n in (1, 2, 3))
    run = TrainingRun.objects.create(dataset=dataset, epochs=3, attempts=1, history=[first])

    def resumed_fit(train, val, config, checkpoint_dir, hooks):
        hooks.on_epoch(third)  # epoch 2 was checkpointed, then the old worker died
        return SimpleNamespace(cancelled=True, history=[first, second, third])

    split = {"ages": np.array([30]), "chips": np.zeros((1, 64, 64, 3), np.uint8)}
    monkeypatch.setattr(runner, "prepare_chips", lambda *a, **k: (None, {"counts": {}, "how": {}}))
    monkeypatch.setattr(tfrecords, "load_split", lambda *a: split)
    monkeypatch.setattr(fit_module, "fit", resumed_fit)
    runner.execute_run(run)
    assert TrainingRun.objects.get(pk=run.pk).history == [first, second, third]


def test_a_run_starts_from_the_active_model_and_keeps_that_start_on_resume(
    dataset, settings, tmp_path
):
    from predictor.models import ModelVersion

    settings.FACEAGE_TRAINING_DIR = str(tmp_path)
    run = TrainingRun.objects.create(dataset=dataset)
    assert run.init == TrainingRun.Init.ACTIVE  # the default
    init, start, name = runner.starting_point(run)
    assert (init, name) == ("active", ModelVersion.DEFAULT_NAME)
    assert start.endswith("start.keras")
    # Promoting another model meanwhile does not change a resumed run's start.
    ModelVersion.objects.get(name=ModelVersion.BUNDLED_NAME).activate()
    assert runner.starting_point(run) == (init, start, name)
    # A new run with the dlib network active starts from the bundled weights.
    assert runner.starting_point(TrainingRun.objects.create(dataset=dataset))[:2] == (
        "bundled",
        None,
    )
