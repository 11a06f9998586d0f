"""dlib's face-recognition network read from its file and run on onnxruntime, against dlib
itself on real faces; and the reader's refusals of files that are not that network."""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
import pytest
from PIL import Image

from predictor.vision.alignment import FaceAligner
from predictor.vision.centerface import default_face_detector
from predictor.vision.face_descriptor import (
    CHIP_PADDING,
    CHIP_SIZE,
    DESCRIPTOR_SIZE,
    LAYERS,
    FaceDescriptor,
    build_onnx_model,
    face_recognition_model_path,
    read_face_recognition_network,
)
from tests.datasets import require_dataset


@pytest.fixture(scope="module")
def descriptor() -> FaceDescriptor:
    return FaceDescriptor()


@pytest.fixture(scope="module")
def chips() -> np.ndarray:
    """150 px chips of 12 real in-the-wild faces (FairFace validation photos), cut by the
    product's detector and aligner at the descriptor's padding."""
    root = require_dataset("fairface") / "val"
    detector = default_face_detector()
    aligner = FaceAligner(chip_size=CHIP_SIZE, padding=CHIP_PADDING)
    out = []
    for path in sorted(root.glob("*.jpg"))[:12]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        boxes = detector.detect(rgb)
        assert boxes, path
        out.append(aligner.align(rgb, max(boxes, key=lambda b: b.width * b.height)))
    return np.stack(out)


def test_descriptors_equal_dlibs_own(descriptor, chips):
    dlib_network = dlib.face_recognition_model_v1(str(face_recognition_model_path()))
    expected = np.stack([np.asarray(dlib_network.compute_face_descriptor(chip)) for chip in chips])
    found = descriptor.describe(chips)
    assert found.shape == (len(chips), DESCRIPTOR_SIZE)
    assert found.dtype == np.float32
    np.testing.assert_allclose(found, expected, atol=1e-5)
    # Different faces, different descriptors: the comparison above is not of constants.
    distances = np.linalg.norm(expected[:, None] - expected[None], axis=-1)
    assert distances[~np.eye(len(chips), dtype=bool)].min() > 0.2


def test_inner_layers_are_those_the_descriptor_is_made_of(descriptor, chips):
    """The layers the age heads read come from the same pass as the descriptor: the descriptor
    is dlib's last matrix applied to ``final`` averaged over its 2 x 2 positions, which is also
    the 256-channel 2 px part of ``stages``; ``stage256`` averaged is its 4 px part."""
    layers = descriptor.layers(chips, tuple(LAYERS))
    assert {name: value.shape for name, value in layers.items()} == {
        name: (len(chips), width) for name, width in LAYERS.items()
    }
    network = read_face_recognition_network()
    matrix = next(weights for (kind, _), weights in network.layers if kind == "fc")
    pooled = layers["final"].reshape(len(chips), 256, 4).mean(axis=2)
    np.testing.assert_allclose(pooled @ matrix, layers["descriptor"], atol=1e-4)
    # stages: 32 channels at 35 and 72 px, 64 at 17, 128 at 8, then 256 at 1, 2, 3 and 4 px.
    np.testing.assert_allclose(layers["stages"][:, 512:768], pooled, atol=1e-5)
    np.testing.assert_allclose(
        layers["stages"][:, 1024:],
        layers["stage256"].reshape(len(chips), 256, 16).mean(2),
        atol=1e-5,
    )
    for name in ("stages", "stage256", "final"):  # ReLU outputs, and not all zero
        assert layers[name].min() >= 0 and (layers[name] > 0).mean() > 0.2, name
    # A subset is the same numbers; no chips, no rows; a name that is no layer is refused.
    np.testing.assert_allclose(
        descriptor.layers(chips[:3], ("final",))["final"], layers["final"][:3], atol=1e-5
    )
    empty = descriptor.layers(np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8), ("stages",))
    assert empty["stages"].shape == (0, LAYERS["stages"])
    with pytest.raises(ValueError, match="no such layers"):
        descriptor.layers(chips[:1], ("pixels",))


def test_batch_order_and_dtypes_do_not_matter(descriptor, chips):
    one_by_one = np.concatenate([descriptor.describe(chip[None]) for chip in chips[:4]])
    np.testing.assert_allclose(
        descriptor.describe(chips[:4].astype(np.float32)), one_by_one, atol=1e-5
    )
    np.testing.assert_allclose(descriptor.describe(chips[3::-1]), one_by_one[::-1], atol=1e-5)


def test_chips_go_through_the_graph_a_batch_at_a_time(descriptor, chips, monkeypatch):
    """A training run describes its whole validation split at once; the graph runs on at most
    BATCH chips a time, so memory stays bounded, and the rows come back in order."""
    import predictor.vision.face_descriptor as module

    whole = descriptor.layers(chips, ("descriptor", "final"))
    session, sizes = descriptor._session, []

    class Counting:
        def run(self, outputs, feeds):
            sizes.append(len(feeds["chips"]))
            return session.run(outputs, feeds)

    monkeypatch.setattr(module, "BATCH", 5)
    monkeypatch.setattr(descriptor, "_session", Counting())
    batched = descriptor.layers(chips, ("descriptor", "final"))
    assert sizes == [5, 5, 2]
    for name, value in whole.items():
        np.testing.assert_allclose(batched[name], value, atol=1e-5)


def test_no_chips_no_descriptors(descriptor):
    assert descriptor.describe(np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)).shape == (0, 128)


@pytest.mark.parametrize("shape", [(150, 150, 3), (1, 64, 64, 3), (2, 150, 150, 1)])
def test_chips_of_another_shape_are_refused(descriptor, shape):
    with pytest.raises(ValueError, match="expected chips of shape"):
        descriptor.describe(np.zeros(shape, np.uint8))


def test_the_file_is_read_whole_with_batch_norms_folded():
    network = read_face_recognition_network()
    kinds = [kind for (kind, _), _ in network.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds[-1] == "fc"
    assert network.channel_means == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    for (kind, argument), weights in network.layers:
        if kind == "con":
            filters, kernel, _ = argument
            assert weights[0].shape[0] == filters and weights[0].shape[2:] == (kernel, kernel)
        elif kind == "affine":
            assert np.isfinite(weights[0]).all() and np.isfinite(weights[1]).all()
    assert network.layers[-1][1].shape == (256, DESCRIPTOR_SIZE)
    assert build_onnx_model(network).graph.output[0].name == "descriptors"


def test_a_truncated_file_is_refused(tmp_path):
    data = face_recognition_model_path().read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="ends in the middle"):
        read_face_recognition_network(cut)


def test_bytes_after_the_network_are_refused(tmp_path):
    longer = tmp_path / "longer.dat"
    longer.write_bytes(face_recognition_model_path().read_bytes() + b"\x00")
    with pytest.raises(ValueError, match="1 bytes left"):
        read_face_recognition_network(longer)


def test_another_dlib_network_is_refused():
    # dlib's CNN face detector: a dlib network too, with another loss and other layers.
    other = face_recognition_model_path().with_name("mmod_human_face_detector.dat")
    with pytest.raises(ValueError):
        read_face_recognition_network(other)


def test_a_file_that_is_not_a_network_is_refused(tmp_path):
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError):
        read_face_recognition_network(junk)


def test_the_installed_file_is_found():
    path = face_recognition_model_path()
    assert path.is_file() and path.name == "dlib_face_recognition_resnet_model_v1.dat"
    assert Path(path).stat().st_size > 20_000_000
