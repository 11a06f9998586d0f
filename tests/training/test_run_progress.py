"""A training run's page moves from its first minute: the chip stage's own count, a
heartbeat, the loss every few steps before the first epoch ends, and a log in sentences
that reads in the reader's language."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.translation import override

from training import runner
from training.messages import Stage
from training.models import Dataset, TrainingRun
from training.views import progress_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def run():
    dataset = Dataset.objects.create(name="utk", kind=Dataset.Kind.UTKFACE, status="succeeded")
    return TrainingRun.objects.create(dataset=dataset, status=TrainingRun.Status.RUNNING)


def test_chip_cutting_shows_its_own_count_and_a_heartbeat(run):
    reporter = runner._RunReporter(run)
    reporter.stage(Stage.PREPARING)
    reporter.preparing(5200, 18454)
    run.refresh_from_db()
    payload = progress_payload(run)
    assert payload["stage_display"] == "preparing chips: 5,200 of 18,454"
    assert payload["progress"] == 0.0  # the run's own progress has not moved...
    assert payload["stage_progress"] == pytest.approx(5200 / 18454)  # ...the stage's bar has
    assert 0 <= payload["heartbeat_seconds"] <= 5
    with override("zh-hans"):
        assert progress_payload(run)["stage_display"] == "正在准备人脸切片：5,200 / 18,454"
    TrainingRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=40)
    )
    run.refresh_from_db()
    assert 39 <= progress_payload(run)["heartbeat_seconds"] <= 45


def test_the_run_page_shows_no_step_0_of_0_while_chips_are_cut(run, admin_client):
    reporter = runner._RunReporter(run)
    reporter.stage(Stage.PREPARING)
    reporter.preparing(5200, 18454)
    html = admin_client.get(f"/training/runs/{run.pk}/").content.decode()
    assert "step 0 of 0" not in html and "5,200 of 18,454" in html
    # The stage's own bar, shown and labelled with its count: 5,200 of 18,454 chips.
    assert '<div id="run-stage">' in html and 'id="run-stage-bar" max="1" value="0.28' in html
    TrainingRun.objects.filter(pk=run.pk).update(
        steps_per_epoch=100, step=20, epoch=1, stage=Stage.TRAINING, stage_done=0, stage_total=0
    )
    html = admin_client.get(f"/training/runs/{run.pk}/").content.decode()
    assert "step 20 of 100" in html and '<div id="run-stage" hidden>' in html


def test_the_loss_is_kept_every_few_steps_before_the_first_epoch_ends(run, monkeypatch):
    monkeypatch.setattr(runner, "STEP_LOSS_POINTS", 8)
    reporter = runner._RunReporter(run)
    reporter.last_write = -1e9
    info = {"epoch": 1, "steps_per_epoch": 100, "progress": 0.0, "eta_seconds": 10.0}
    for step in range(10, 110, 10):  # ten reports inside epoch 1
        reporter.last_write = -1e9  # write each one (the reporter writes every 2 s)
        reporter.training({**info, "step": step, "loss": 5.0 - step / 100, "mae": 9.0})
        if step == 50:  # a diverging step: not a number, never stored (JSON has no NaN)
            reporter.training({**info, "step": 55, "loss": float("nan"), "mae": 9.0})
    run.refresh_from_db()
    steps = [point[0] for point in run.step_losses]
    # Past 8 points the curve is thinned to every other point, the latest always kept.
    assert len(steps) <= 8 and steps[-1] == 100 and steps == sorted(steps) and 55 not in steps
    assert run.step_losses[-1][1] == pytest.approx(4.0)
    assert progress_payload(run)["step_losses"] == run.step_losses


def test_the_log_is_sentences_in_the_readers_language(run):
    run.append_log(
        runner.gettext_noop(
            "%(name)s: %(train)s training, %(val)s validation and %(test)s test faces "
            "(the detector found %(detected)s, the dataset's box gave %(dataset_box)s, the "
            "whole image %(whole_image)s; %(skipped)s skipped)"
        ),
        name="utk",
        train=80,
        val=10,
        test=10,
        detected=95,
        dataset_box=0,
        whole_image=3,
        skipped=2,
    )
    run.append_log(runner._FINISHED[TrainingRun.Status.SUCCEEDED])
    run.refresh_from_db()
    assert "utk: 80 training, 10 validation and 10 test faces" in run.log
    assert "{" not in run.log  # no Python dict
    english = run.translated_log()
    assert english[1].endswith("finished: succeeded")
    with override("zh-hans"):
        chinese = run.translated_log()
    assert "训练" in chinese[0] and "80" in chinese[0] and "完成" in chinese[1]
    # A run logged before entries existed still shows its text.
    TrainingRun.objects.filter(pk=run.pk).update(log_entries=[])
    run.refresh_from_db()
    assert run.translated_log() == run.log.splitlines()


def test_a_loss_that_is_no_longer_a_number_stops_the_run_with_what_to_do(run):
    """JSON has no NaN (PostgreSQL refused the epoch's history), and a run whose loss is
    NaN learns nothing more: it stops, saying to lower the learning rate."""
    reporter = runner._RunReporter(run)
    done = {"epoch": 1, "loss": 2.5, "mae": 7.0, "val_mae": float("nan")}
    reporter.epoch_done(done)
    run.refresh_from_db()
    assert run.history == [{**done, "val_mae": None}]
    with pytest.raises(runner.TrainingDiverged, match="lower"):
        reporter.epoch_done({**done, "epoch": 2, "loss": float("nan")})
    run.refresh_from_db()
    assert len(run.history) == 1


def test_the_finished_runs_history_is_stored_as_json_can_hold_it():
    """The run's last write stores fit's own history (runner.execute_run), not the copies
    epoch_done stored: a NaN there was refused by both databases' JSON."""
    epoch = {"epoch": 3, "loss": 1.5, "mae": float("inf"), "val_mae": float("nan")}
    assert runner._storable_metrics(epoch) == {
        "epoch": 3,
        "loss": 1.5,
        "mae": None,
        "val_mae": None,
    }
