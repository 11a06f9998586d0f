"""Kill a training process with SIGKILL in the middle of an epoch, then resume it.

Real processes: `manage.py train` on a tiny real dataset, killed after its first checkpoint;
`manage.py train --resume` then finishes the run from that checkpoint, not from scratch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.datasets import REPO_ROOT, sample_utkface

pytestmark = pytest.mark.integration


def manage(env, *args, check=True, **kwargs):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=check,
        **kwargs,
    )


def test_a_killed_training_run_resumes_from_its_checkpoint(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    for path in sample_utkface(90, seed=21):
        (faces / path.name).symlink_to(path)
    env = dict(
        os.environ, FACEAGE_VAR_DIR=str(tmp_path / "var"), MEDIA_ROOT=str(tmp_path / "media")
    )
    env.pop("DATABASE_URL", None)
    env["FACEAGE_PREPARE_WORKERS"] = "1"
    manage(env, "migrate", "-v", "0")
    manage(env, "import_dataset", "tiny", str(faces), "--kind", "utkface")

    command = [
        sys.executable, "manage.py", "train", "--dataset", "tiny", "--epochs", "3",
        "--batch-size", "8", "--max-steps-per-epoch", "40", "--learning-rate", "1e-4",
    ]  # fmt: skip
    state_file = tmp_path / "var" / "training" / "run-1" / "state.json"
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and process.poll() is None:
        if state_file.exists() and json.loads(state_file.read_text())["epoch"] >= 1:
            break
        time.sleep(0.05)
    assert process.poll() is None, process.stdout.read().decode()[-3000:]
    time.sleep(0.5)  # into the second epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    first_epoch = json.loads(state_file.read_text())["history"][0]
    assert json.loads(state_file.read_text())["epoch"] == 1, "killed mid-epoch 2"

    resumed = manage(env, "train", "--resume", "1", "--dataset", "tiny")
    assert "run 1: succeeded" in resumed.stdout, resumed.stdout + resumed.stderr
    state = json.loads(state_file.read_text())
    assert [row["epoch"] for row in state["history"]] == [1, 2, 3]
    assert state["history"][0] == first_epoch  # epoch 1 was not trained again
    report = manage(
        env,
        "shell",
        "-c",
        "from training.models import TrainingRun as R; import json; r = R.objects.get(pk=1); "
        "print(json.dumps({'attempts': r.attempts, 'log': r.log, 'mv': r.model_version.name}))",
    )
    run = json.loads(report.stdout.strip().splitlines()[-1])
    assert run["attempts"] == 2 and "resumed" in run["log"]
    assert run["mv"] == "tiny-run1"
    assert Path(tmp_path / "media" / "models" / "tiny-run1.keras").exists()
