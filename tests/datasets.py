"""Where the real face data lives, and how tests that need it skip without it.

The data sits outside the repository (``../shared/datasets`` by default, or
``FACEAGE_DATASETS_DIR``) and is never copied in. ``.ci/run`` sets
``FACEAGE_REQUIRE_DATASETS=1`` so that a missing folder fails CI instead of
skipping quietly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def datasets_dir() -> Path:
    return Path(os.environ.get("FACEAGE_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets"))


def require_dataset(name: str) -> Path:
    """Return the dataset folder, or skip (fail under CI) with the reason."""
    path = datasets_dir() / name
    if not path.is_dir():
        reason = f"real face data not found at {path} (set FACEAGE_DATASETS_DIR)"
        if os.environ.get("FACEAGE_REQUIRE_DATASETS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def utkface_age(path: Path) -> int:
    """UTKFace names are AGE_GENDER_RACE_TIMESTAMP.jpg.chip.jpg."""
    return int(path.name.split("_", 1)[0])


def sample_utkface(count: int, seed: int = 0) -> list[Path]:
    """A deterministic sample of UTKFace chips spread over the ages."""
    import random

    folder = require_dataset("utkface")
    files = sorted(folder.glob("*.jpg"))
    return random.Random(seed).sample(files, count)
