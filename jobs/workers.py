"""Which worker process holds a job, and whether that process is gone.

A job row records ``host:pid`` when a worker claims it (``jobs.lifecycle.claim``): every
kind of job uses this to tell a redelivered message for a live job (ignore it) from one whose
worker died (take it over).
"""

from __future__ import annotations

import os
import socket


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claimant_is_gone(claimed_by: str) -> bool:
    """True when the claiming process ran on this host and no longer exists (or is this
    very process, which in the prefork pool runs one task at a time). Processes on
    other hosts cannot be checked: their jobs fall back on deadlines and heartbeats."""
    host, _, pid_text = claimed_by.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
