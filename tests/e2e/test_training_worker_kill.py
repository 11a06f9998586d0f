"""Kill a Celery training worker (its whole process group) in the middle of a run.

Real processes: an embedded Redis, a web server, an inference worker running beat (whose
``sweep_stale_runs`` notices that the run's worker is gone and queues the run again), and
a training worker that is SIGKILLed after the run's first checkpoint. A new training worker
then resumes the run from that checkpoint: it ends ``succeeded`` on its second attempt,
with the epochs trained before the kill kept as they were.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.datasets import sample_utkface
from tests.e2e.stack import kill_pool_children
from tests.support.stack import BASE_DIR, LocalStack, local_stack, stop_process_group

pytestmark = pytest.mark.integration

# A fast sweeper; the dead worker is noticed by its pid (same host), not by the heartbeat.
FAST_SWEEP = {
    "FACEAGE_SWEEP_INTERVAL_SECONDS": "5",
    "FACEAGE_REQUEUE_AFTER_SECONDS": "5",
    "FACEAGE_PREPARE_WORKERS": "1",
}
EPOCHS = 3


def shell(stack: LocalStack, code: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=BASE_DIR,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def read_run(stack: LocalStack, run_id: int) -> dict:
    """The run's row, read straight from the stack's SQLite file (cheap enough to poll)."""
    database = stack.workdir / "var" / "db.sqlite3"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute(
            "SELECT status, attempts, epoch, history, log, error_code, error_params, claimed_by,"
            " model_version_id"
            " FROM training_trainingrun WHERE id = ?",
            (run_id,),
        ).fetchone()
    run = dict(row)
    run["history"] = json.loads(run["history"])
    run["error"] = (run.pop("error_code"), json.loads(run.pop("error_params")))
    return run


def wait_for(stack: LocalStack, run_id: int, condition, timeout: float, what: str, processes=()):
    deadline = time.monotonic() + timeout
    run: dict = {}
    while time.monotonic() < deadline:
        try:
            run = read_run(stack, run_id)
        except sqlite3.OperationalError:  # locked by a writer for a moment
            time.sleep(0.2)
            continue
        if condition(run):
            return run
        for process in processes:
            assert process.poll() is None, f"a worker exited ({process.returncode}) {tail(stack)}"
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not after {timeout} s; run {run} {tail(stack)}")


def wait_for_first_epoch(stack: LocalStack, run_id: int, worker) -> dict:
    """Until the run's first checkpoint is recorded (it then trains epoch 2)."""
    return wait_for(
        stack,
        run_id,
        lambda run: run["status"] == "running" and len(run["history"]) >= 1,
        600,
        "the first epoch",
        processes=[worker],
    )


def wait_for_the_end(stack: LocalStack, run_id: int, worker) -> dict:
    """Until the (resumed) run is finished, one way or another."""
    return wait_for(
        stack,
        run_id,
        lambda run: run["status"] in ("succeeded", "failed", "cancelled"),
        600,
        "the resumed run to finish",
        processes=[worker],
    )


def tail(stack: LocalStack) -> str:
    logs = [stack.worker_log, *sorted(stack.workdir.glob("training-*.log"))]
    return "".join(
        f"\n--- {log.name}\n{log.read_text(errors='replace')[-2500:]}"
        for log in logs
        if log.exists()
    )


def tiny_faces(tmp_path: Path) -> Path:
    faces = tmp_path / "faces"
    faces.mkdir()
    for path in sample_utkface(90, seed=21):
        (faces / path.name).symlink_to(path)
    return faces


def start_run(stack: LocalStack, faces: Path) -> int:
    """Import the faces as a dataset and send a tiny training run to the training queue."""
    stack.manage("import_dataset", "tiny", str(faces), "--kind", "utkface", "-v", "0")
    return int(
        shell(
            stack,
            "from training.models import Dataset, TrainingRun; "
            "from training.tasks import enqueue_run; "
            "run = TrainingRun.objects.create(dataset=Dataset.objects.get(name='tiny'), "
            f"epochs={EPOCHS}, batch_size=8, max_steps_per_epoch=40, learning_rate=1e-4); "
            "assert enqueue_run(run.pk); print(run.pk)",
        )
    )


@pytest.mark.timeout(1800)  # above the sum of the waits below; a normal run takes ~2 min
def test_a_killed_training_worker_is_replaced_and_the_run_resumes(tmp_path):
    faces = tiny_faces(tmp_path)
    with local_stack(extra_env=FAST_SWEEP, beat=True) as stack:
        run_id = start_run(stack, faces)
        state_file = stack.workdir / "var" / "training" / f"run-{run_id}" / "state.json"
        first = stack.start_training_worker(stack.workdir / "training-1.log")
        second = None
        try:
            # Wait for the first checkpoint (epoch 1 finished and recorded), then kill the
            # worker and its pool child while they train epoch 2.
            wait_for_first_epoch(stack, run_id, first)
            assert state_file.exists()
            time.sleep(0.5)
            stop_process_group(first, signal.SIGKILL)
            at_kill = read_run(stack, run_id)
            # (queued already, if the sweeper ran in the instant since the kill)
            assert at_kill["status"] in ("running", "queued"), at_kill
            assert at_kill["attempts"] == 1, at_kill
            done_before = len(at_kill["history"])
            assert 1 <= done_before < EPOCHS, "the kill came too late to test anything"

            # The sweeper (beat, on the inference worker) sees that the claimant is gone and
            # queues the run again; nothing is training it in the meantime.
            wait_for(
                stack,
                run_id,
                lambda run: run["status"] != "running",
                120,
                "the sweeper to notice the dead worker",
            )
            recovered = read_run(stack, run_id)
            assert recovered["status"] == "queued", recovered
            wait_for(  # the sweeper logs just after moving the row
                stack,
                run_id,
                lambda run: "its worker stopped" in run["log"],
                30,
                "the sweeper's log line",
            )

            second = stack.start_training_worker(stack.workdir / "training-2.log")
            run = wait_for_the_end(stack, run_id, second)
        finally:
            stop_process_group(first, signal.SIGKILL)
            stop_process_group(second)

        # One kill leaves attempts to spare (3 by default): it must succeed, not give up.
        assert run["status"] == "succeeded", (run["error"], run["log"])
        assert run["attempts"] == 2, run
        assert "resumed by" in run["log"] and "(attempt 2)" in run["log"], run["log"]
        assert [row["epoch"] for row in run["history"]] == list(range(1, EPOCHS + 1)), run
        # The epochs finished before the kill were not trained again.
        assert run["history"][:done_before] == at_kill["history"], run["history"]
        state = json.loads(state_file.read_text())
        assert state["history"] == run["history"]
        assert run["model_version_id"] is not None
        models = stack.workdir / "media" / "models"
        assert (models / f"tiny-run{run_id}.keras").exists(), list(models.glob("*"))
        for log in stack.workdir.glob("training-*.log"):
            assert "Traceback" not in log.read_text(errors="replace"), tail(stack)


@pytest.mark.timeout(1500)
def test_a_killed_training_pool_child_is_replaced_and_the_run_resumes(tmp_path):
    """SIGKILL only the training worker's pool child in epoch 2 (the OOM killer's choice),
    and start nothing by hand: the worker's new child takes the redelivered message and
    resumes the run from its checkpoint."""
    faces = tiny_faces(tmp_path)
    strict = {**FAST_SWEEP, "FACEAGE_WORKER_PROC_ALIVE_TIMEOUT": "1"}
    with local_stack(extra_env=strict, beat=True) as stack:
        run_id = start_run(stack, faces)
        worker = stack.start_training_worker(stack.workdir / "training-1.log")
        try:
            wait_for_first_epoch(stack, run_id, worker)
            kill_pool_children(worker.pid)
            at_kill = read_run(stack, run_id)
            done_before = len(at_kill["history"])
            assert 1 <= done_before < EPOCHS, "the kill came too late to test anything"
            run = wait_for_the_end(stack, run_id, worker)
        finally:
            stop_process_group(worker)
        assert run["status"] == "succeeded", (run["error"], run["log"])
        assert run["attempts"] == 2, run
        assert run["history"][:done_before] == at_kill["history"], run["history"]
        log = (stack.workdir / "training-1.log").read_text(errors="replace")
        assert "Timed out waiting for UP message" not in log, log[-3000:]


@pytest.mark.timeout(900)
def test_a_run_whose_worker_dies_once_too_often_fails_with_a_reason(tmp_path):
    """With its attempts used up, a run whose worker was killed is failed by the sweeper,
    with the reason; it does not stay `running` and is not started again."""
    faces = tiny_faces(tmp_path)
    attempts = {**FAST_SWEEP, "FACEAGE_TRAINING_MAX_ATTEMPTS": "1"}
    with local_stack(extra_env=attempts, beat=True) as stack:
        run_id = start_run(stack, faces)
        worker = stack.start_training_worker(stack.workdir / "training-1.log")
        try:
            wait_for(
                stack,
                run_id,
                lambda run: run["status"] == "running" and run["claimed_by"],
                300,
                "the run to be claimed",
                processes=[worker],
            )
            stop_process_group(worker, signal.SIGKILL)
            run = wait_for(
                stack, run_id, lambda run: run["status"] != "running", 120, "the sweeper"
            )
        finally:
            stop_process_group(worker, signal.SIGKILL)
        assert run["status"] == "failed", run
        assert run["attempts"] == 1, run
        assert run["error"] == ("gave_up", {"attempts": 1}), run
        assert run["model_version_id"] is None
