from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.datasets import datasets_dir, require_dataset

# Tests import datasets from temporary folders (links to ../shared): allow them there, for this
# process (below) and for the processes the tests start (the environment).
TEST_IMPORT_ROOTS = [datasets_dir(), Path(tempfile.gettempdir())]
os.environ["FACEAGE_IMPORT_ROOTS"] = ",".join(str(root) for root in TEST_IMPORT_ROOTS)


@pytest.fixture(autouse=True)
def import_roots(settings):
    settings.FACEAGE_IMPORT_ROOTS = TEST_IMPORT_ROOTS


@pytest.fixture(autouse=True)
def default_language(settings):
    """Every test starts in the site's default language, whatever an earlier test (or a
    request it made) left active in this thread: stored messages render in it."""
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture(scope="session")
def utkface_dir() -> Path:
    return require_dataset("utkface")


@pytest.fixture(scope="session")
def wiki_sample_dir() -> Path:
    return require_dataset("wiki_sample")


@pytest.fixture(autouse=True)
def fresh_cache(settings, tmp_path):
    """Rate-limit counters start empty in every test."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": str(tmp_path),
        }
    }
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Every test writes uploads to its own temporary MEDIA_ROOT."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def enqueued(monkeypatch):
    """Record the predictions sent to the broker instead of needing one."""
    from predictor.tasks import predict

    sent: list[str] = []
    monkeypatch.setattr(predict, "apply_async", lambda args, **kw: sent.append(args[0]))
    return sent


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="correct-horse-9")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password="battery-staple-7")


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
