"""Fine-tuning: the 101-class head, the loss, checkpoints, resume and cancel (tiny runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from predictor.vision.age_network import AgeNetwork
from training.pipeline.evaluation import age_metrics
from training.pipeline.fit import (
    CLASS_AGES,
    ExpectedAgeMAE,
    FitConfig,
    FitHooks,
    SoftLabelAgeLoss,
    build_training_model,
    fit,
    label_table,
    teacher_prior,
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


def one_hot(age: int) -> np.ndarray:
    probabilities = np.full((1, 101), 1e-6, np.float32)
    probabilities[0, age] = 1.0
    return probabilities / probabilities.sum()


def test_loss_prefers_the_true_age():
    loss = SoftLabelAgeLoss(sigma=2.0, l1_weight=0.1)
    truth = label_table({"ages": np.array([30])})
    assert float(loss(truth, one_hot(30))) < float(loss(truth, one_hot(33)))
    assert float(loss(truth, one_hot(33))) < float(loss(truth, one_hot(60)))


def test_an_exact_age_is_the_gaussian_soft_label_and_l1_of_before():
    """low == high with a flat prior: cross-entropy against N(age, sigma) plus |E - age|."""
    loss = SoftLabelAgeLoss(sigma=2.0, l1_weight=0.1)
    predicted = np.random.default_rng(0).dirichlet(np.ones(101), size=3).astype(np.float32)
    ages = np.array([5.0, 30.0, 71.0], np.float32)
    soft = np.exp(-0.5 * ((np.arange(101)[None, :] - ages[:, None]) / 2.0) ** 2)
    soft /= soft.sum(axis=1, keepdims=True)
    expected = (predicted * np.arange(101)).sum(axis=1)
    wanted = -(soft * np.log(predicted + 1e-7)).sum(axis=1) + 0.1 * np.abs(expected - ages)
    got = float(loss(label_table({"ages": ages}), predicted))
    assert got == pytest.approx(wanted.mean(), rel=1e-4)


def test_an_age_group_counts_any_age_inside_it_as_right():
    """FairFace's "20-29": every age inside the group costs the same L1 (none), and a
    distribution inside the group beats one outside it."""
    group = label_table({"ages": np.array([20]), "age_low": np.array([20]),
                         "age_high": np.array([29])})  # fmt: skip
    loss, mae = SoftLabelAgeLoss(sigma=2.0, l1_weight=0.1), ExpectedAgeMAE()
    assert float(loss(group, one_hot(22))) < float(loss(group, one_hot(35)))
    assert float(loss(group, one_hot(22))) == pytest.approx(float(loss(group, one_hot(27))), 1e-3)
    mae.update_state(group, one_hot(25))
    assert float(mae.result()) == pytest.approx(0.0, abs=0.02)
    mae.reset_state()
    mae.update_state(group, one_hot(35))
    assert float(mae.result()) == pytest.approx(6.0, abs=0.05)


def test_a_teacher_prior_shapes_the_target_inside_the_group_only():
    """With the starting network's distribution as the prior, the best prediction for a
    "20-29" face is the teacher's own inside the group: moving mass inside the group to
    where the teacher had it lowers the loss."""
    loss = SoftLabelAgeLoss(sigma=2.0, l1_weight=0.0)
    teacher = np.full((1, 101), 1e-3, np.float32)
    teacher[0, 23] = 1.0  # the teacher thinks 23 (and a little everywhere)
    split = {"ages": np.array([20]), "age_low": np.array([20]), "age_high": np.array([29])}
    shaped = label_table(split, teacher)
    assert float(loss(shaped, one_hot(23))) < float(loss(shaped, one_hot(28)))
    flat = label_table(split)
    assert float(loss(flat, one_hot(23))) == pytest.approx(float(loss(flat, one_hot(28))), 1e-3)


def test_the_prior_shapes_age_groups_only_not_exact_ages():
    """In a mix of exact ages (UTKFace) and groups (FairFace), the exact ages keep the plain
    Gaussian target whatever the teacher thought."""
    split = {
        "ages": np.array([30, 20]),
        "age_low": np.array([30, 20]),
        "age_high": np.array([30, 29]),
    }
    teacher = np.full((2, 101), 1e-3, np.float32)
    teacher[:, 60] = 1.0
    table = label_table(split, teacher)
    assert np.all(table[0, 2:] == 1.0)
    assert np.array_equal(table[1, 2:], teacher[1])


def test_distillation_mixes_the_teachers_whole_distribution_into_the_target():
    """``distill_weight`` w: the cross-entropy's target is (1 - w) * soft label + w * teacher,
    so a "20-29" face whose teacher says 45 is pulled towards 45 too; a row without a teacher
    (the validation split's) keeps the plain loss."""
    split = {"ages": np.array([20]), "age_low": np.array([20]), "age_high": np.array([29])}
    teacher = np.full((1, 101), 1e-4, np.float32)
    teacher[0, 45] = 1.0
    teacher /= teacher.sum()
    predicted = np.random.default_rng(1).dirichlet(np.ones(101), size=1).astype(np.float32)
    plain = SoftLabelAgeLoss(sigma=2.0, l1_weight=0.0)
    distilled = SoftLabelAgeLoss(sigma=2.0, l1_weight=0.0, distill_weight=0.25)
    with_teacher = label_table(split, None, teacher)
    assert with_teacher.shape == (1, 2 + 2 * 101)
    outside = np.maximum(20 - np.arange(101), 0) + np.maximum(np.arange(101) - 29, 0)
    soft = np.exp(-0.5 * (outside / 2.0) ** 2)  # flat inside the group, Gaussian fall-off
    soft /= soft.sum()
    target = 0.75 * soft + 0.25 * teacher[0]
    wanted = -(target * np.log(predicted[0] + 1e-7)).sum()
    assert float(distilled(with_teacher, predicted)) == pytest.approx(wanted, rel=1e-4)
    # The teacher's age, outside the group, now costs less than another age as far outside it.
    assert float(distilled(with_teacher, one_hot(45))) < float(distilled(with_teacher, one_hot(13)))
    assert float(plain(with_teacher, one_hot(45))) == pytest.approx(
        float(plain(label_table(split), one_hot(45))), rel=1e-5
    )
    without = label_table(split)
    assert float(distilled(without, predicted)) == pytest.approx(
        float(plain(without, predicted)), rel=1e-5
    )
    with pytest.raises(ValueError, match="teacher"):
        label_table(split, None, teacher[:, :50])


def test_a_distilled_fit_trains_and_its_checkpoint_keeps_the_weight(real_chips, tmp_path):
    from dataclasses import replace

    import keras

    train = {k: v[:32] for k, v in real_chips.items()}
    train["age_low"] = (train["ages"] // 10) * 10
    train["age_high"] = train["age_low"] + 9
    val = {k: v[32:48] for k, v in real_chips.items()}
    result = fit(train, val, replace(TINY, distill_weight=0.5), tmp_path)
    assert len(result.history) == 2 and all(np.isfinite(m["loss"]) for m in result.history)
    saved = keras.saving.load_model(tmp_path / "last.keras")
    assert saved.loss.distill_weight == 0.5
    with pytest.raises(ValueError, match="needs a teacher_model"):
        fit(train, val, replace(TINY, init="scratch", distill_weight=0.5), tmp_path / "scratch")


def test_teacher_prior_is_a_distribution_with_a_floor(real_chips):
    prior = teacher_prior(build_training_model("bundled"), real_chips["chips"][:8], floor=0.1)
    assert prior.shape == (8, 101)
    assert np.allclose(prior.sum(axis=1), 1.0, atol=1e-4)
    assert prior.min() >= 0.1 / 101 - 1e-7


def test_fit_learns_from_age_groups(real_chips, tmp_path):
    """A tiny run on interval labels (with the teacher prior) trains and reports interval MAE."""
    train = {k: v[:48] for k, v in real_chips.items()}
    train["age_low"] = (train["ages"] // 10) * 10
    train["age_high"] = train["age_low"] + 9
    val = {k: v[48:] for k, v in real_chips.items()}
    result = fit(train, val, TINY, tmp_path)
    assert len(result.history) == 2
    assert all(np.isfinite(m["loss"]) and m["mae"] >= 0 for m in result.history)


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


def test_a_fit_can_start_from_a_saved_model(real_chips, tmp_path):
    """init "active": the fine-tune starts exactly where the served model is."""
    start = AgeNetwork(build_training_model("scratch"), CLASS_AGES)
    path = start.save(tmp_path / "start.keras")
    loaded = AgeNetwork(build_training_model("active", str(path)), CLASS_AGES)
    chips = real_chips["chips"][:8]
    assert np.allclose(loaded.predict(chips).ages, start.predict(chips).ages, atol=1e-4)
    with pytest.raises(ValueError, match="needs the start model"):
        build_training_model("active")
    with pytest.raises(ValueError, match="init must be"):
        build_training_model("imagenet")


def test_a_fit_on_larger_chips_trains_a_network_of_that_size(real_chips, tmp_path):
    """96 px chips of age groups: the network is built for 96 px from the dlib weights, and the
    teacher prior comes from the dlib network reading the chips shrunk to the 64 px it knows."""
    from training.pipeline.fit import resize_chips

    large = resize_chips(real_chips["chips"], 96)
    assert large.shape == (len(large), 96, 96, 3) and large.dtype == np.uint8
    assert np.abs(resize_chips(large[:8], 64).astype(int) - real_chips["chips"][:8]).mean() < 4
    prior = teacher_prior(build_training_model("bundled"), large[:8])
    assert prior.shape == (8, 101) and np.allclose(prior.sum(axis=1), 1.0, atol=1e-4)

    train = {k: v[:48] for k, v in real_chips.items()}
    train["chips"] = large[:48]
    train["age_low"] = (train["ages"] // 10) * 10
    train["age_high"] = train["age_low"] + 9
    val = {k: v[48:] for k, v in real_chips.items()}
    val["chips"] = large[48:]
    result = fit(train, val, TINY, tmp_path)
    assert result.network.chip_size == 96 and len(result.history) == 2
    with pytest.raises(ValueError, match="reads 96 px chips, not 64"):
        build_training_model("active", str(tmp_path / "best.keras"), chip_size=64)


def test_the_teacher_may_be_another_network_reading_its_own_chip_size(real_chips, tmp_path):
    """``teacher_model``: the soft target inside a group follows that network on the same
    faces cut at its size (``teacher_chips``), not the start's distribution."""
    from dataclasses import replace

    from training.pipeline.fit import _teacher, resize_chips

    teacher = AgeNetwork(build_training_model("scratch"), CLASS_AGES)
    path = teacher.save(tmp_path / "teacher.keras")
    split = {k: v[:8] for k, v in real_chips.items()}
    split["age_low"], split["age_high"] = split["ages"] // 10 * 10, split["ages"] // 10 * 10 + 9
    split["teacher_chips"] = split["chips"]
    split["chips"] = resize_chips(split["chips"], 96)
    config = replace(TINY, teacher_model=str(path))
    np.testing.assert_allclose(
        _teacher(split, config), teacher_prior(teacher.model, split["teacher_chips"]), atol=1e-6
    )
    start = _teacher(split, TINY)  # the dlib start, reading the 96 px chips shrunk to 64
    assert np.abs(start - _teacher(split, config)).max() > 0.01


def test_a_resume_refuses_chips_of_another_size_than_its_checkpoint(real_chips, tmp_path):
    from dataclasses import replace

    from training.pipeline.fit import resize_chips

    split = {k: v[:16] for k, v in real_chips.items()}
    fit(split, split, replace(TINY, epochs=1, steps_per_epoch=1), tmp_path)
    larger = {**split, "chips": resize_chips(split["chips"], 96)}
    with pytest.raises(ValueError, match="reads 64 px chips, the training split has 96"):
        fit(larger, larger, TINY, tmp_path)


def test_low_resolution_augmentation_softens_a_share_of_the_chips_when_asked(real_chips):
    """``low_resolution`` p: about a share p of the augmented chips is shrunk and enlarged
    back (less fine detail), the others are exactly what augmentation gives without it; at
    0 nothing changes."""
    import tensorflow as tf

    from training.pipeline.fit import augment

    def detail(image) -> float:
        grey = tf.reduce_mean(image, axis=-1).numpy()
        return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())

    chip = tf.constant(real_chips["chips"][0])
    label = tf.zeros(3)
    softened = 0
    for i in range(40):
        seed = tf.constant([i, 7], tf.int64)
        plain, _ = augment(chip, label, seed)
        np.testing.assert_array_equal(plain, augment(chip, label, seed, 0.0)[0])
        blurred, _ = augment(chip, label, seed, 0.5)
        if not np.array_equal(plain, blurred):
            softened += 1
            assert detail(blurred) < detail(plain)
    assert 8 <= softened <= 32  # about half of 40


def test_scan_look_augmentation_changes_a_share_of_the_chips_when_asked(real_chips):
    """``scan`` q: about a share q of the augmented chips gets the look of a scanned print
    (a clear change, not rounding); the others are exactly what augmentation gives without
    it, so the other draws, low resolution's included, are not moved."""
    import tensorflow as tf

    from training.pipeline.fit import augment

    chip = tf.constant(real_chips["chips"][1])
    label = tf.zeros(3)
    changed = 0
    for i in range(40):
        seed = tf.constant([i, 11], tf.int64)
        plain, _ = augment(chip, label, seed, 0.5)
        looked, _ = augment(chip, label, seed, 0.5, 0.5)
        assert looked.shape == (64, 64, 3) and looked.dtype == tf.float32
        if not np.array_equal(plain, looked):
            changed += 1
            assert np.abs(looked.numpy() - plain.numpy()).mean() > 2
    assert 8 <= changed <= 32  # about half of 40


def test_scan_look_is_black_and_white_sepia_or_faded_and_repeatable(real_chips):
    """``scan_look``: the same seed gives the same look; the looks are drawn among black and
    white (the three channels alike, up to JPEG's rounding), sepia (warm: red over green
    over blue) and faded colour; every look stays in 0-255 and differs from the chip."""
    import tensorflow as tf

    from training.pipeline.fit import scan_look

    image = tf.cast(tf.constant(real_chips["chips"][2]), tf.float32)
    grey = sepia = 0
    for i in range(30):
        seed = tf.constant([i, 5], tf.int64)
        look = scan_look(image, seed).numpy()
        np.testing.assert_array_equal(look, scan_look(image, seed).numpy())
        assert look.min() >= 0 and look.max() <= 255 and look.shape == (64, 64, 3)
        assert np.abs(look - image.numpy()).mean() > 2
        red, green, blue = (look[..., c].mean() for c in range(3))
        if np.abs(look[..., 0] - look[..., 2]).mean() < 4:
            grey += 1
        elif 0.6 < blue / red < 0.78 and 0.82 < green / red < 0.95:
            sepia += 1
    assert 4 <= grey <= 18 and 4 <= sepia <= 18  # about a third each


def test_a_soup_is_one_network_with_the_mean_of_its_members_weights(real_chips, tmp_path):
    """``soup``: the networks' weights averaged, layer by layer; served like one network."""
    from training.pipeline.fit import soup

    train = {k: v[:48] for k, v in real_chips.items()}
    val = {k: v[48:] for k, v in real_chips.items()}
    members = [
        fit(train, val, FitConfig(**{**TINY.__dict__, "seed": seed}), tmp_path / str(seed)).network
        for seed in (0, 1)
    ]
    a, b = (m.model.get_weights() for m in members)
    assert any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))  # seeds differ
    mean = soup(members)
    for got, x, y in zip(mean.model.get_weights(), a, b, strict=True):
        np.testing.assert_allclose(got, (x + y) / 2, rtol=1e-6, atol=1e-7)
    assert mean.chip_size == 64 and np.array_equal(mean.class_ages, members[0].class_ages)
    # The members are left as they were, and the soup of one network is that network.
    np.testing.assert_array_equal(members[0].model.get_weights()[0], a[0])
    chips = real_chips["chips"][:8]
    alone = soup(members[:1])
    assert np.allclose(alone.predict(chips).ages, members[0].predict(chips).ages, atol=1e-4)
    # Only fine-tunes of one architecture mix.
    larger = AgeNetwork(build_training_model("bundled", chip_size=96), CLASS_AGES)
    with pytest.raises(ValueError, match="one architecture"):
        soup([members[0], larger])
    with pytest.raises(ValueError, match="at least one"):
        soup([])
    # Weighted: a share of each network's weights, as in an interpolation between two.
    quarter = soup(members, [0.25, 0.75]).model.get_weights()
    np.testing.assert_allclose(quarter[0], 0.25 * a[0] + 0.75 * b[0], rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="2 shares for 1 networks"):
        soup(members[:1], [0.5, 0.5])
