"""The web process never imports TensorFlow (nor dlib): it is slow to import and not fork-safe."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.datasets import REPO_ROOT

SCRIPT = r"""
import io, json, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.test import Client
from PIL import Image
import faceage_site.wsgi  # what gunicorn loads
from django.urls import get_resolver
get_resolver().url_patterns  # import every view module
buffer = io.BytesIO()
Image.new("RGB", (120, 90), "red").save(buffer, "JPEG")
buffer.seek(0)
buffer.name = "photo.jpg"
client = Client()
upload = client.post("/api/v1/predictions/", {"image": buffer})
paths = ("/", "/history/", "/api/schema/", "/admin/login/")
pages = [client.get(path).status_code for path in paths]
detail = client.get(upload.json()["url"]).status_code
forbidden = ("tensorflow", "keras", "dlib", "onnxruntime")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
print(json.dumps({"upload": upload.status_code, "pages": pages, "detail": detail, "heavy": heavy}))
"""


def test_web_process_never_imports_tensorflow(tmp_path):
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="faceage_site.settings",
        FACEAGE_VAR_DIR=str(tmp_path),
        # No broker is running: the upload must still be accepted (the sweeper re-sends it).
        REDIS_URL=f"redis+socket://{tmp_path}/absent.sock",
    )
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["upload"] == 202
    assert report["pages"] == [200, 200, 200, 200]
    assert report["detail"] == 200
    assert report["heavy"] == []
