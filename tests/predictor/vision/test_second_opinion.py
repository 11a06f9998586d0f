"""The second opinion: the mix of two age distributions, the weights fitted on validation
labels, the descriptor head's file, and the shipped network served with it on real faces."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from predictor.vision.bundled_models import (
    DEFAULT_SHIPPED_MODEL,
    shipped_head_path,
    shipped_model_card,
)
from predictor.vision.face_descriptor import LAYERS
from predictor.vision.second_opinion import (
    AGES,
    AgeHeads,
    DescriptorAgeHead,
    SecondOpinion,
    enlarge,
    fit_weights,
    from_settings,
    mix,
)
from tests.datasets import sample_utkface, utkface_age


def peaked(centres, spread: float = 3.0) -> np.ndarray:
    ages = np.arange(AGES)
    rows = np.exp(-0.5 * ((ages[None, :] - np.asarray(centres, float)[:, None]) / spread) ** 2)
    return rows / rows.sum(axis=1, keepdims=True)


def test_the_mix_is_the_normalised_weighted_product():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(AGES), 5), rng.dirichlet(np.ones(AGES), 5)
    np.testing.assert_allclose(mix(p, q, 1.0, 0.0), p, rtol=1e-5)
    np.testing.assert_allclose(mix(p, q, 0.0, 1.0), q, rtol=1e-5)
    product = p**0.4 * q**0.8
    np.testing.assert_allclose(
        mix(p, q, 0.4, 0.8), product / product.sum(1, keepdims=True), rtol=1e-4
    )
    assert mix(p, q, 0.4, 0.8).dtype == np.float32
    # An age either opinion rules out stays ruled out.
    p[:, 30] = 0
    assert np.all(mix(p, q, 0.5, 0.5)[:, 30] < 1e-6)


def test_the_weights_follow_the_opinion_that_knows_the_labels():
    rng = np.random.default_rng(1)
    true = rng.integers(5, 90, 300)
    knows, noise = peaked(true), peaked(rng.integers(5, 90, 300))
    # Exact ages: the informed opinion alone; the other is ruled out (weight 0).
    a, b = fit_weights(knows, noise, true, true)
    assert a > 0 and b == 0
    a, b = fit_weights(noise, knows, true, true)
    assert a == 0 and b > 0
    # Age groups: the decade around each age.
    low, high = true // 10 * 10, true // 10 * 10 + 9
    a, b = fit_weights(knows, noise, low, high)
    assert a > 0 and b == 0
    # Two half-informed opinions are both used.
    blurred_a, blurred_b = (
        peaked(true + rng.normal(0, 6, 300), 8),
        peaked(true + rng.normal(0, 6, 300), 8),
    )
    a, b = fit_weights(blurred_a, blurred_b, true, true)
    assert a > 0 and b > 0


@pytest.mark.parametrize(
    ("p_shape", "low", "high"),
    [((0, AGES), [], []), ((3, AGES), [1, 2], [1, 2]), ((3, AGES), [5, 5, 5], [4, 5, 6])],
)
def test_fitting_refuses_what_it_cannot_fit(p_shape, low, high):
    p = np.full(p_shape, 1 / AGES)
    with pytest.raises(ValueError):
        fit_weights(p, p, np.array(low), np.array(high))


def small_head(hidden: int = 4, seed: int = 0, reads: str = "descriptor") -> DescriptorAgeHead:
    rng = np.random.default_rng(seed)
    width = LAYERS[reads]
    return DescriptorAgeHead(
        mean=rng.normal(size=width).astype(np.float32),
        variance=rng.uniform(0.5, 2, width).astype(np.float32),
        hidden_kernel=rng.normal(size=(width, hidden)).astype(np.float32),
        hidden_bias=rng.normal(size=hidden).astype(np.float32),
        kernel=rng.normal(size=(hidden, AGES)).astype(np.float32),
        bias=rng.normal(size=AGES).astype(np.float32),
        reads=reads,
    )


def test_a_head_saves_loads_and_gives_distributions(tmp_path):
    head = small_head()
    loaded = DescriptorAgeHead.load(head.save(tmp_path / "head.npz"))
    descriptors = np.random.default_rng(2).normal(size=(6, 128)).astype(np.float32)
    out = loaded.predict(descriptors)
    np.testing.assert_allclose(out, head.predict(descriptors))
    assert out.shape == (6, AGES) and np.allclose(out.sum(axis=1), 1, atol=1e-5)
    # By hand: normalise, ReLU layer, softmax.
    x = (descriptors - head.mean) / np.sqrt(head.variance)
    logits = np.maximum(x @ head.hidden_kernel + head.hidden_bias, 0) @ head.kernel + head.bias
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(out, expected / expected.sum(1, keepdims=True), rtol=1e-4, atol=1e-7)


def test_a_broken_head_is_refused(tmp_path):
    head = small_head()
    with pytest.raises(ValueError, match="kernel"):
        DescriptorAgeHead(**{**head.__dict__, "kernel": head.kernel[:, :80]})
    with pytest.raises(ValueError, match="finite"):
        DescriptorAgeHead(**{**head.__dict__, "bias": np.full(AGES, np.nan, np.float32)})
    with pytest.raises(ValueError, match="variance"):
        DescriptorAgeHead(**{**head.__dict__, "variance": np.zeros(128, np.float32)})
    np.savez(tmp_path / "other.npz", mean=head.mean)
    with pytest.raises(ValueError, match="missing"):
        DescriptorAgeHead.load(tmp_path / "other.npz")


def test_heads_on_several_layers_answer_as_their_geometric_mean(tmp_path):
    heads = AgeHeads(
        (small_head(seed=1), small_head(seed=2, reads="final"), small_head(seed=3, reads="final"))
    )
    assert heads.reads == ("descriptor", "final")
    rng = np.random.default_rng(4)
    layers = {name: rng.normal(size=(5, LAYERS[name])).astype(np.float32) for name in heads.reads}
    loaded = AgeHeads.load(heads.save(tmp_path / "heads.npz"))
    assert [m.reads for m in loaded.members] == ["descriptor", "final", "final"]
    assert loaded.predict({name: v[:0] for name, v in layers.items()}).shape == (0, AGES)
    out = loaded.predict(layers)  # on onnxruntime
    assert out.shape == (5, AGES) and out.dtype == np.float32
    # In NumPy: the softmax of the members' mean log-probabilities.
    logs = np.mean([m.log_probabilities(layers[m.reads]) for m in heads.members], axis=0)
    expected = np.exp(logs - logs.max(axis=1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(out, expected, rtol=2e-3, atol=1e-6)
    each = [m.predict(layers[m.reads]).astype(np.float64) for m in heads.members]
    # Not the arithmetic mean, and not any one head's answer.
    assert np.abs(out - np.mean(each, axis=0)).max() > 1e-3
    assert all(np.abs(out - one).max() > 1e-3 for one in each)
    # One head in the file, as descriptor-age-v1.npz holds it: one member reading the descriptor.
    one = small_head(seed=5)
    np.savez(
        tmp_path / "first.npz",
        **{
            k: getattr(one, k)
            for k in ("mean", "variance", "hidden_kernel", "hidden_bias", "kernel", "bias")
        },
    )
    (member,) = AgeHeads.load(tmp_path / "first.npz").members
    assert member.reads == "descriptor"
    np.testing.assert_array_equal(member.kernel, one.kernel)
    assert DescriptorAgeHead.load(tmp_path / "first.npz").reads == "descriptor"
    # And one head on the descriptor is saved in that format, which earlier releases read.
    with np.load(one.save(tmp_path / "again.npz")) as saved:
        assert "members" not in saved and set(saved) == set(np.load(tmp_path / "first.npz"))
    with pytest.raises(ValueError, match="not one"):
        DescriptorAgeHead.load(tmp_path / "heads.npz")


def test_heads_saved_in_half_precision_read_back_close_and_half_the_size(tmp_path):
    """``save(half=True)`` stores the weight matrices as float16 (faceage-v8's twelve heads:
    11 MB, not 22) and the normalisation as it is; they read back as float32 heads whose
    answers are within float16's rounding of the originals'."""

    def trained_scale(head: DescriptorAgeHead) -> DescriptorAgeHead:
        # Weights of a trained head's size (Glorot's), so that logits stay within a few units.
        width, hidden = head.hidden_kernel.shape
        return dataclasses.replace(
            head,
            hidden_kernel=head.hidden_kernel / np.float32(np.sqrt(width)),
            kernel=head.kernel / np.float32(np.sqrt(hidden)),
        )

    heads = AgeHeads(
        (
            trained_scale(small_head(hidden=64, seed=6)),
            trained_scale(small_head(hidden=64, seed=7, reads="final")),
        )
    )
    full = heads.save(tmp_path / "full.npz")
    half = heads.save(tmp_path / "half.npz", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    with np.load(half) as saved:
        assert saved["0.kernel"].dtype == saved["1.hidden_kernel"].dtype == np.float16
        assert saved["0.variance"].dtype == saved["1.mean"].dtype == np.float32
    loaded = AgeHeads.load(half)
    assert [m.reads for m in loaded.members] == ["descriptor", "final"]
    assert all(m.kernel.dtype == np.float32 for m in loaded.members)
    # The matrices are the originals rounded to float16, the rest exactly the originals.
    for got, was in zip(loaded.members, heads.members, strict=True):
        np.testing.assert_array_equal(got.kernel, was.kernel.astype(np.float16))
        np.testing.assert_array_equal(got.variance, was.variance)
        assert not np.array_equal(got.hidden_kernel, was.hidden_kernel)
    rng = np.random.default_rng(8)
    layers = {name: rng.normal(size=(20, LAYERS[name])).astype(np.float32) for name in heads.reads}
    np.testing.assert_allclose(loaded.predict(layers), heads.predict(layers), atol=2e-3)
    # A weight float16 cannot hold is refused, and nothing is written.
    huge = dataclasses.replace(heads.members[0], kernel=heads.members[0].kernel * 1e6)
    with pytest.raises(ValueError, match="head 0 kernel: beyond float16's range"):
        AgeHeads((huge,)).save(tmp_path / "huge.npz", half=True)
    assert not (tmp_path / "huge.npz").exists()
    # One head on the descriptor in half precision is written in the format with members.
    with np.load(AgeHeads((small_head(seed=9),)).save(tmp_path / "one.npz", half=True)) as saved:
        assert "members" in saved and saved["0.kernel"].dtype == np.float16


def test_a_head_on_a_layer_it_cannot_read_is_refused(tmp_path):
    final = small_head(reads="final")
    with pytest.raises(ValueError, match="reads one of"):
        DescriptorAgeHead(**{**final.__dict__, "reads": "pixels"})
    with pytest.raises(ValueError, match=r"mean: expected finite \(128,\), got \(1024,\)"):
        # The descriptor's 128 numbers are not the final layer's 1,024.
        DescriptorAgeHead(**{**final.__dict__, "reads": "descriptor"})
    with pytest.raises(ValueError, match="one head or more"):
        AgeHeads(())
    heads = AgeHeads((small_head(), final))
    heads.save(tmp_path / "heads.npz")
    with np.load(tmp_path / "heads.npz") as saved:
        arrays = {k: saved[k] for k in saved if not k.startswith("1.")}
    np.savez(tmp_path / "short.npz", **arrays)
    with pytest.raises(ValueError, match="head 1 lacks"):
        AgeHeads.load(tmp_path / "short.npz")


def test_settings_are_checked():
    head = small_head()
    # One head is an ensemble of one; anything else is refused.
    assert SecondOpinion("x", head, 1.0, 1.0).head.members == (head,)
    with pytest.raises(TypeError, match="AgeHeads"):
        SecondOpinion("x", "descriptor", 1.0, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SecondOpinion("x", head, -0.1, 1.0)
    with pytest.raises(ValueError):
        SecondOpinion("x", head, 0.0, 0.0)
    with pytest.raises(ValueError):
        from_settings({"head": "descriptor-age-v1", "network_weight": 1})
    with pytest.raises(FileNotFoundError):
        from_settings({"head": "no-such-head", "network_weight": 1, "descriptor_weight": 1})
    for name in ("../faceage-v5", "", ".hidden"):
        with pytest.raises(FileNotFoundError):
            shipped_head_path(name)


def test_chips_are_enlarged_to_the_descriptors_size():
    chips = np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    big = enlarge(chips)
    assert big.shape == (2, 150, 150, 3) and big.dtype == np.uint8
    assert abs(float(big.mean()) - float(chips.mean())) < 2
    assert np.array_equal(enlarge(big), big)


@pytest.fixture(scope="module")
def utk_faces(utkface_dir):
    from tests.predictor.test_shipped_model import chips_of

    paths = sample_utkface(60, seed=91)
    return chips_of(paths, 64), np.array([utkface_age(path) for path in paths])


def test_the_shipped_default_is_served_with_its_second_opinion(utk_faces):
    """The default's card names a head that ships, and a network served with it answers the
    mix of its own distribution and the head's, which differs from the network alone."""
    from predictor.vision.age_network import AgeNetwork

    card = shipped_model_card(DEFAULT_SHIPPED_MODEL)
    opinion = from_settings(card["second_opinion"])
    # faceage-v8's twelve heads, their weight matrices in float16: 10.8 MB (faceage-v7's four
    # in float32: 7.2 MB; the network's own limit is 40 MiB, test_shipped_model.py).
    assert shipped_head_path(opinion.name).stat().st_size < 12 * 1024 * 1024
    served = AgeNetwork.shipped(DEFAULT_SHIPPED_MODEL)
    assert served.second_opinion.settings() == opinion.settings() == card["second_opinion"]
    alone = AgeNetwork.shipped(card["weights"])
    assert alone.second_opinion is None
    chips, _ = utk_faces
    p = alone.predict(chips).probabilities
    expected = mix(
        p, opinion.head_probabilities(chips), opinion.network_weight, opinion.descriptor_weight
    )
    got = served.predict(chips)
    np.testing.assert_allclose(got.probabilities, expected, atol=1e-5)
    assert np.abs(got.ages - alone.predict(chips).ages).mean() > 0.3
    # An empty batch stays empty.
    assert served.predict(chips[:0]).probabilities.shape == (0, AGES)


def test_the_heads_describe_a_batch_of_chips_at_a_time(utk_faces, monkeypatch):
    """The heads see a whole split's chips at once in a training run; they are enlarged and
    described a batch at a time (memory bounded), with the same answers in the same order."""
    import predictor.vision.second_opinion as module

    opinion = from_settings(shipped_model_card(DEFAULT_SHIPPED_MODEL)["second_opinion"])
    chips, _ = utk_faces
    whole = opinion.head_probabilities(chips)
    descriptor, sizes = module.shared_descriptor(), []

    class Counting:
        def layers(self, enlarged, names):
            sizes.append(len(enlarged))
            return descriptor.layers(enlarged, names)

    monkeypatch.setattr(module, "BATCH", 25)
    monkeypatch.setattr(module, "shared_descriptor", lambda: Counting())
    np.testing.assert_allclose(opinion.head_probabilities(chips), whole, atol=1e-5)
    assert sizes == [25, 25, len(chips) - 50]


def test_the_second_opinion_improves_real_aligned_crops(utk_faces):
    """UTKFace faces, never trained on: the head alone reads age, and the mix is closer to the
    true ages than the network alone (docs/benchmarks.md has the full figures)."""
    from predictor.vision.age_network import AgeNetwork

    chips, true = utk_faces
    card = shipped_model_card(DEFAULT_SHIPPED_MODEL)
    served, alone = AgeNetwork.shipped(DEFAULT_SHIPPED_MODEL), AgeNetwork.shipped(card["weights"])
    head = served.second_opinion.head_probabilities(chips) @ np.arange(AGES)
    errors = {
        "served": np.abs(np.round(served.predict(chips).ages) - true).mean(),
        "alone": np.abs(np.round(alone.predict(chips).ages) - true).mean(),
        "head": np.abs(np.round(head) - true).mean(),
    }
    # On these 60 faces (faceage-v8): served 6.30, the network alone 6.82, the heads alone 6.50
    # (faceage-v7's four heads: 6.52, faceage-v6's one head: 6.83); answering
    # the faces' median age every time would be 15.9 years off.
    assert errors["head"] < 0.6 * np.abs(true - np.median(true)).mean()  # it reads age
    assert errors["served"] < errors["alone"], errors


@pytest.mark.django_db
def test_workers_load_a_version_with_the_second_opinion_it_stores():
    from predictor.models import ModelVersion
    from predictor.serving import load_network

    default = ModelVersion.active()
    assert default.second_opinion == shipped_model_card(DEFAULT_SHIPPED_MODEL)["second_opinion"]
    opinion = load_network(default).second_opinion
    assert opinion.settings() == default.second_opinion
    assert "_session" in opinion.head.__dict__  # built at load, not on the first face
    before = ModelVersion.objects.get(name=shipped_model_card(DEFAULT_SHIPPED_MODEL)["weights"])
    assert before.second_opinion == {} and load_network(before).second_opinion is None


@pytest.mark.django_db
def test_a_run_from_the_active_model_keeps_its_second_opinion_refitted(
    settings, tmp_path, utk_faces
):
    """A fine-tune of the active model is measured and served with the active model's second
    opinion, its weights fitted again on the run's validation split; a run from the dlib
    network has none."""
    from predictor.models import ModelVersion
    from predictor.vision.age_network import AgeNetwork
    from training import runner
    from training.models import Dataset, TrainingRun

    settings.FACEAGE_TRAINING_DIR = str(tmp_path)
    dataset = Dataset.objects.create(name="utk", kind="utkface", source="/x", status="succeeded")
    run = TrainingRun.objects.create(dataset=dataset)
    runner.starting_point(run)
    chips, ages = utk_faces
    val = {"chips": chips, "ages": ages}
    network = AgeNetwork.shipped(shipped_model_card(DEFAULT_SHIPPED_MODEL)["weights"])
    found = runner.start_second_opinion(run, network, val)
    assert found["head"] == ModelVersion.active().second_opinion["head"]
    fitted = fit_weights(
        network.predict(chips).probabilities,
        from_settings(found).head_probabilities(chips),
        ages,
        ages,
    )
    assert (found["network_weight"], found["descriptor_weight"]) == fitted
    ModelVersion.objects.get(name=ModelVersion.BUNDLED_NAME).activate()
    other = TrainingRun.objects.create(dataset=dataset)
    runner.starting_point(other)
    assert runner.start_second_opinion(other, network, val) == {}
    scratch = TrainingRun.objects.create(dataset=dataset, init=TrainingRun.Init.SCRATCH)
    assert runner.start_second_opinion(scratch, network, val) == {}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("opinion", "message"),
    [
        ({"head": "descriptor-age-v1", "network_weight": 0.4}, "Give"),
        ({"head": "descriptor-age-v1", "network_weight": -1, "descriptor_weight": 1}, "Give"),
        ({"head": "descriptor-age-v1", "network_weight": 0, "descriptor_weight": 0}, "Give"),
        ({"head": "descriptor-age-v1", "network_weight": "1", "descriptor_weight": 1}, "Give"),
        ({"head": "../faceage-v5", "network_weight": 1, "descriptor_weight": 1}, "No head"),
        ([1, 2], "Give"),
        ("descriptor-age-v1", "Give"),
    ],
)
def test_a_version_refuses_a_second_opinion_no_worker_could_serve(opinion, message):
    from django.core.exceptions import ValidationError

    from predictor.models import ModelVersion

    version = ModelVersion(name="x", artifact="models/x.keras", second_opinion=opinion)
    with pytest.raises(ValidationError, match=message):
        version.full_clean()
    version.second_opinion = {
        "head": "descriptor-age-v1",
        "network_weight": 1,
        "descriptor_weight": 0.5,
    }
    version.full_clean()
    version.second_opinion = {}
    version.full_clean()
    # The dlib network's 81 ages cannot be mixed with the head's 101.
    bundled = ModelVersion(
        name="y",
        artifact=ModelVersion.BUNDLED_ARTIFACT,
        second_opinion={"head": "descriptor-age-v1", "network_weight": 1, "descriptor_weight": 1},
    )
    with pytest.raises(ValidationError, match="Give"):
        bundled.full_clean()


@pytest.mark.django_db
def test_a_worker_serves_an_edited_second_opinion_without_reloading_the_network():
    from predictor import serving
    from predictor.models import ModelVersion

    version = ModelVersion.active()
    network = serving.estimator_for(version).network
    version.second_opinion = {**version.second_opinion, "network_weight": 1.0}
    version.save(update_fields=["second_opinion"])
    again = serving.estimator_for(ModelVersion.objects.get(pk=version.pk)).network
    assert again is network and again.second_opinion.settings() == version.second_opinion
    version.second_opinion = {}
    version.save(update_fields=["second_opinion"])
    assert serving.estimator_for(ModelVersion.objects.get(pk=version.pk)).network is network
    assert network.second_opinion is None


@pytest.mark.django_db
def test_a_second_opinion_on_the_dlib_network_is_refused_when_loaded():
    """Its 81 ages cannot be mixed with the head's 101 (the admin refuses it too)."""
    from predictor.models import ModelVersion
    from predictor.serving import load_network

    bundled = ModelVersion.ensure_bundled()
    bundled.second_opinion = shipped_model_card(DEFAULT_SHIPPED_MODEL)["second_opinion"]
    with pytest.raises(ValueError, match="needs a network of 101 ages"):
        load_network(bundled)
