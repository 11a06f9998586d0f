"""Training on several datasets at once, with sampling weights: the admin form, the command
line, and the mix a run learns from."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from training import runner, tasks
from training.mixes import MixError, parse_mix
from training.models import Dataset, RunDataset, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def datasets():
    return [
        Dataset.objects.create(name=name, kind="utkface", source=f"/{name}", status="succeeded")
        for name in ("utk", "ff", "wiki")
    ]


def split(size: int, age: int) -> dict:
    return {
        "chips": np.full((size, 64, 64, 3), age, np.uint8),
        "ages": np.full(size, age, np.int32),
        "age_low": np.full(size, age, np.int32),
        "age_high": np.full(size, age + 9, np.int32),
        "genders": np.zeros(size, np.int32),
        "races": np.full(size, f"group {age}"),
    }


def test_parse_mix_reads_names_and_weights(datasets):
    mix = parse_mix(["utk", " ff:2 ", "wiki:0.5"])
    assert [(d.name, w) for d, w in mix] == [("utk", 1.0), ("ff", 2.0), ("wiki", 0.5)]
    for bad, message in [
        (["ff:0"], "positive number"),
        (["ff:-1"], "positive number"),
        (["ff:lots"], "positive number"),
        (["ff:nan"], "positive number"),
        (["nope"], "No ready dataset named 'nope'"),
        (["ff", "ff:3"], "named twice"),
    ]:
        with pytest.raises(MixError, match=message):
            parse_mix(bad)
    Dataset.objects.filter(name="wiki").update(status="running")
    with pytest.raises(MixError, match="No ready dataset"):
        parse_mix(["wiki"])


def test_mix_splits_draws_each_dataset_in_proportion_to_its_weight():
    small, large = split(100, 10), split(900, 50)
    mixed = runner.mix_splits([small, large], [1.0, 1.0])
    assert len(mixed["ages"]) == 1000
    assert (mixed["ages"] == 10).sum() == 500 and (mixed["ages"] == 50).sum() == 500
    assert set(mixed) == set(runner.SPLIT_KEYS)
    assert (mixed["races"] == "group 10").sum() == 500  # the report labels travel along
    tilted = runner.mix_splits([small, large], [1.0, 3.0])
    assert (tilted["ages"] == 10).sum() == 250
    # Groups survive the mix with their rows.
    assert np.all(tilted["age_high"] == tilted["ages"] + 9)
    assert runner.mix_splits([small], [2.0]) is small


def test_a_run_learns_from_every_dataset_but_is_tested_on_its_own(datasets, monkeypatch):
    from types import SimpleNamespace

    from training.pipeline import fit as fit_module
    from training.pipeline import tfrecords

    utk, ff, _ = datasets
    ages = {"utk": 30, "ff": 60}

    def prepare(dataset, progress=None, chip_size=64):
        return dataset.name, {"counts": {}, "how": {}}

    monkeypatch.setattr(runner, "prepare_chips", prepare)
    monkeypatch.setattr(tfrecords, "load_split", lambda name, m, s: split(40, ages[name]))
    seen = {}

    def fake_fit(train, val, config, checkpoint_dir, hooks):
        seen.update(train=train, val=val)
        return SimpleNamespace(cancelled=True, history=[])

    monkeypatch.setattr(fit_module, "fit", fake_fit)
    run = TrainingRun.objects.create(dataset=utk, epochs=1, status="running")
    RunDataset.objects.create(run=run, dataset=ff, weight=3.0)
    runner.execute_run(run)
    assert (seen["train"]["ages"] == 30).sum() == 20 and (seen["train"]["ages"] == 60).sum() == 60
    assert len(seen["val"]["ages"]) == 80  # every dataset's validation faces, unweighted
    assert "training on utk (weight 1), ff (weight 3)" in TrainingRun.objects.get(pk=run.pk).log


def test_a_run_on_several_datasets_calibrates_on_each_ones_validation_faces(datasets, monkeypatch):
    """The run tells the calibration which dataset each validation face is from, so that the
    80% interval holds on each (training.pipeline.calibration.calibrate's ``parts``)."""
    from types import SimpleNamespace

    from training.pipeline import calibration, evaluation, tfrecords
    from training.pipeline import fit as fit_module

    utk, ff, _ = datasets
    ages = {"utk": 30, "ff": 60}
    monkeypatch.setattr(
        runner,
        "prepare_chips",
        lambda d, progress=None, chip_size=64: (d.name, {"counts": {}, "how": {}}),
    )
    monkeypatch.setattr(tfrecords, "load_split", lambda name, m, s: split(40, ages[name]))
    monkeypatch.setattr(
        fit_module,
        "fit",
        lambda *a, **k: SimpleNamespace(cancelled=False, history=[], network=SimpleNamespace()),
    )
    monkeypatch.setattr(runner, "start_second_opinion", lambda run, network, val: {})
    monkeypatch.setattr(evaluation, "evaluate_network", lambda network, split: {})
    seen = {}

    class Stop(Exception):
        pass

    def fake_calibrate(network, val, test, parts=None):
        seen.update(val=val, parts=parts)
        raise Stop

    monkeypatch.setattr(calibration, "calibrate", fake_calibrate)
    run = TrainingRun.objects.create(dataset=utk, epochs=1, status="running")
    RunDataset.objects.create(run=run, dataset=ff, weight=3.0)
    with pytest.raises(Stop):
        runner.execute_run(run)
    assert list(seen["parts"]) == ["utk"] * 40 + ["ff"] * 40
    assert list(seen["val"]["ages"]) == [30] * 40 + [60] * 40  # the names line up


def test_train_command_takes_several_datasets(datasets, monkeypatch):
    started = []
    monkeypatch.setattr(runner, "execute_run", lambda run, **kw: started.append(run) or run)
    call_command("train", "--dataset", "utk:2", "--dataset", "ff", "--dataset", "wiki:4")
    run = TrainingRun.objects.get()
    assert run.dataset.name == "utk" and started[0].pk == run.pk
    weights = {row.dataset.name: row.weight for row in run.extra_datasets.all()}
    assert weights == {"ff": 0.5, "wiki": 2.0}  # relative to the first dataset's weight
    with pytest.raises(CommandError, match="positive number"):
        call_command("train", "--dataset", "utk", "--dataset", "ff:0")
    with pytest.raises(CommandError, match="name a dataset"):
        call_command("train")


def test_admin_start_form_takes_further_datasets(
    admin_client, datasets, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(tasks.train, "apply_async", lambda args, **kw: None)
    form = {
        "dataset": datasets[0].pk,
        "epochs": 2,
        "batch_size": 32,
        "learning_rate": 0.001,
        "init": "bundled",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/training/trainingrun/start/", {**form, "further_datasets": "ff:1, wiki:0.5"}
        )
    assert response.status_code == 302
    run = TrainingRun.objects.get()
    assert sorted((r.dataset.name, r.weight) for r in run.extra_datasets.all()) == [
        ("ff", 1.0),
        ("wiki", 0.5),
    ]
    page = admin_client.get(f"/training/runs/{run.pk}/").content.decode()
    assert "<strong>ff</strong> (weight 1.0)" in page
    for bad in ("ff:zero", "utk", "nope"):
        refused = admin_client.post(
            "/admin/training/trainingrun/start/", {**form, "further_datasets": bad}
        )
        assert refused.status_code == 200 and TrainingRun.objects.count() == 1, bad


@pytest.mark.parametrize(
    "option, value",
    [
        ("--epochs", "-1"),
        ("--epochs", "99999999999"),
        ("--batch-size", "0"),
        ("--learning-rate", "nan"),
        ("--learning-rate", "1e30"),
        ("--max-train-images", "-1"),
        ("--max-steps-per-epoch", "99999999999"),
    ],
)
def test_the_train_command_keeps_to_the_admin_forms_bounds(datasets, option, value):
    with pytest.raises(CommandError, match=option):
        call_command("train", "--dataset", "utk", option, value)
    assert not TrainingRun.objects.exists()


def test_a_run_the_command_cannot_finish_ends_failed_with_its_reason(datasets, monkeypatch):
    def broken(run, **kw):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(runner, "execute_run", broken)
    with pytest.raises(CommandError, match="division by zero"):
        call_command("train", "--dataset", "utk")
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.Status.FAILED and run.error_code == "failed"
    assert "ZeroDivisionError: division by zero" in run.error_message
