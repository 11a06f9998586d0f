"""Fuzzing the upload path with mutated real photos: the only allowed outcomes are a typed
rejection (4xx with the error shape) or an accepted upload. bench/fuzz.py runs 10,000+."""

from __future__ import annotations

import io
import random

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from predictor.vision.image_loading import ImageRejected, load_photo
from predictor.vision.mutations import mutate
from tests.datasets import sample_utkface


@pytest.fixture(scope="module")
def seeds():
    photo = Image.open(sample_utkface(1, seed=2)[0]).convert("RGB")
    encoded = []
    for fmt in ("JPEG", "PNG", "WEBP"):
        buffer = io.BytesIO()
        photo.save(buffer, format=fmt)
        encoded.append(buffer.getvalue())
    return encoded


def test_mutated_images_are_loaded_or_rejected_with_a_code(seeds):
    rng = random.Random(0)
    outcomes = {"accepted": 0}
    for _ in range(600):
        data = mutate(rng.choice(seeds), rng)
        try:
            image = load_photo(data)
        except ImageRejected as rejected:
            outcomes[rejected.code] = outcomes.get(rejected.code, 0) + 1
        else:
            assert image.mode == "RGB" and min(image.size) >= 32
            outcomes["accepted"] += 1
    assert outcomes["accepted"] > 0 and len(outcomes) > 2, outcomes


@pytest.mark.django_db
def test_mutated_uploads_get_202_or_a_4xx_in_the_error_shape(api_client, enqueued, seeds):
    rng = random.Random(1)
    codes = set()
    for _ in range(60):
        data = mutate(rng.choice(seeds), rng)
        response = api_client.post(
            "/api/v1/predictions/",
            {"image": SimpleUploadedFile("fuzz.jpg", data)},
            format="multipart",
        )
        codes.add(response.status_code)
        if response.status_code != 202:
            assert 400 <= response.status_code < 500
            assert response.json()["error"]["code"]
    assert codes <= {202, 400, 413}


def test_mutated_large_jpegs_are_reduced_or_rejected_with_a_code():
    """The worker's reduced decode (predictor.vision.photo) of mutated large JPEGs: a photo
    whose pixels match its size at its scale, or a typed rejection, for the reduced decode and
    for the full-size one it may need later."""
    from predictor.vision.image_loading import PhotoLimits
    from predictor.vision.photo import decode_photo

    face = Image.open(sample_utkface(1, seed=3)[0]).convert("RGB")
    seed = io.BytesIO()
    face.resize((2600, 1950)).save(seed, format="JPEG", quality=85)
    limits = PhotoLimits(max_bytes=None)
    rng = random.Random(2)
    outcomes: dict[str, int] = {}
    for _ in range(120):
        data = mutate(seed.getvalue(), rng)
        try:
            photo = decode_photo(data, limits)
            height, width = photo.full().shape[:2]
        except ImageRejected as rejected:
            outcomes[rejected.code] = outcomes.get(rejected.code, 0) + 1
            continue
        assert (width, height) == photo.size
        assert photo.pixels.shape[:2] == (-(-height // photo.scale), -(-width // photo.scale))
        outcomes[f"scale {photo.scale}"] = outcomes.get(f"scale {photo.scale}", 0) + 1
    # Both ways were taken: reduced photos and rejections.
    assert outcomes.get("scale 2", 0) > 0 and outcomes.get("corrupt_image", 0) > 0, outcomes
