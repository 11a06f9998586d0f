from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.datasets import sample_utkface, utkface_age


@pytest.fixture(scope="session")
def real_chips():
    """64 real aligned chips (uint8 NHWC) with their true ages, cut by the serving aligner."""
    from predictor.vision.alignment import FaceAligner
    from predictor.vision.face_detection import FaceBox
    from predictor.vision.image_loading import as_array

    aligner = FaceAligner()
    files = sample_utkface(64, seed=3)
    chips = []
    for path in files:
        rgb = as_array(Image.open(path))
        box = FaceBox(0, 0, rgb.shape[1], rgb.shape[0], 0.0, "whole")
        chips.append(aligner.align(rgb, box))
    ages = np.array([utkface_age(p) for p in files], dtype=np.int32)
    return {"chips": np.stack(chips), "ages": ages, "genders": np.zeros(len(ages), np.int32)}
