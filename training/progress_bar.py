"""A one-line progress bar for management commands (no dependency)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, label: str, stream=None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int, suffix: str = "") -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and done < total:
            return
        self.last = now
        fraction = done / total if total else 1.0
        filled = int(self.width * fraction)
        elapsed = now - self.started
        eta = elapsed / done * (total - done) if done else 0
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {fraction:4.0%} "
            f"{done}/{total} ETA {int(eta // 60)}m{int(eta % 60):02d}s {suffix}   "
        )
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
