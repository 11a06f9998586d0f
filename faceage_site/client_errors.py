"""Logging a request the client got wrong as a warning, not as a fault of ours."""

from __future__ import annotations

import logging


class ClientErrorAsWarning(logging.Filter):
    """Turn an ERROR with a traceback about a 400 into a one-line WARNING.

    Django logs every SuspiciousOperation (a Host header not in ALLOWED_HOSTS, a body over
    the limit, too many fields) at ERROR, with the traceback, on ``django.security.<Name>``.
    Scanners send such requests all day; as errors they bury the real faults and page whoever
    watches ERROR. The record keeps its message, logger name and request, so it is still
    there to count. Set on the loggers of those client errors only (settings.LOGGING)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING and getattr(record, "status_code", None) == 400:
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True
