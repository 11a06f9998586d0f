"""Fine-tuning: the 101-class head, the loss, checkpoints, resume and cancel (tiny runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from predictor.vision.age_network import AgeNetwork
from training.pipeline.evaluation import age_metrics
from training.pipeline.fit import (
    CLASS_AGES,
    FitConfig,
    FitHooks,
    SoftLabelAgeLoss,
    build_training_model,
    fit,
)

TINY = FitConfig(epochs=2, batch_size=16, steps_per_epoch=2, learning_rate=1e-4, patience=5)


def test_101_class_head_starts_where_the_bundled_network_is(real_chips):
    bundled = AgeNetwork.bundled().predict(real_chips["chips"]).ages
    start = (
        AgeNetwork(build_training_model("bundled"), CLASS_AGES).predict(real_chips["chips"]).ages
    )
    assert np.abs(start - bundled).max() < 0.5
    scratch = AgeNetwork(build_training_model("scratch"), CLASS_AGES).predict(real_chips["chips"])
    assert np.abs(scratch.ages - bundled).mean() > 1.0  # random weights really are different


def test_loss_prefers_the_true_age():
    loss = SoftLabelAgeLoss(sigma=2.0, l1_weight=0.1)
    truth = np.array([30.0], dtype=np.float32)
    right = np.full((1, 101), 1e-4, np.float32)
    right[0, 30] = 1.0
    wrong = np.full((1, 101), 1e-4, np.float32)
    wrong[0, 60] = 1.0
    assert float(loss(truth, right)) < float(loss(truth, wrong))


def test_fit_checkpoints_every_epoch_and_resumes(real_chips, tmp_path):
    train = {k: v[:48] for k, v in real_chips.items()}
    val = {k: v[48:] for k, v in real_chips.items()}
    epochs_seen = []
    first = fit(train, val, TINY, tmp_path, FitHooks(on_epoch=epochs_seen.append))
    assert [m["epoch"] for m in first.history] == [1, 2] == [m["epoch"] for m in epochs_seen]
    assert (tmp_path / "last.keras").exists() and (tmp_path / "best.keras").exists()
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 2

    # Asking for more epochs with the same folder resumes after epoch 2.
    more = FitConfig(**{**TINY.__dict__, "epochs": 3})
    resumed = fit(train, val, more, tmp_path)
    assert [m["epoch"] for m in resumed.history] == [1, 2, 3]
    assert resumed.history[:2] == first.history
    assert resumed.images_seen == 1 * TINY.steps_per_epoch * TINY.batch_size


def test_fit_can_be_cancelled(real_chips, tmp_path):
    hooks = FitHooks(should_stop=lambda: True, report_every=1)
    result = fit(real_chips, real_chips, TINY, tmp_path, hooks)
    assert result.cancelled and result.history == []


def test_age_metrics():
    metrics = age_metrics(
        np.array([10.0, 22.0, 35.0, 70.0]), np.array([12, 20, 45, 71]), np.array([0, 1, 1, -1])
    )
    assert metrics["mae"] == pytest.approx((2 + 2 + 10 + 1) / 4)
    assert metrics["cs5"] == pytest.approx(0.75)
    assert metrics["mae_by_decade"]["40-49"] == {"mae": 10.0, "count": 1}
    assert metrics["mae_by_gender"]["male"]["mae"] == pytest.approx(6.0)
    assert metrics["mae_children_0_12"] == pytest.approx(2.0)
