"""The secret key of an install that was given none: random, made once, kept in ``var/``.

The key signs sessions, messages and password-reset links, so a key anyone can read (one in
the repository) lets anyone forge them. Settings use this when ``SECRET_KEY`` is unset outside
production; production refuses to start without one, and only the tests use the repository's.

No Django imports beyond the exception: settings import this module.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

SECRET_KEY_FILE_NAME = "secret_key"


def per_install_secret_key(var_dir: Path) -> str:
    """The key in ``var_dir/secret_key``, created (mode 0600) with 64 random bytes if absent.

    Web, workers and beat start at the same moment and must agree on one key: the file is
    written whole under a temporary name and linked into place, which fails if another process
    got there first, and then that process's key is read instead."""
    path = var_dir / SECRET_KEY_FILE_NAME
    try:
        try:
            return _read(path)
        except FileNotFoundError:
            pass
        var_dir.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=var_dir, prefix=".secret_key.")  # 0600
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(64) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
        return _read(path)
    except OSError as error:
        raise ImproperlyConfigured(
            f"SECRET_KEY is not set and no key could be kept in {path} ({error}); "
            "set SECRET_KEY or make that folder writable"
        ) from error


def _read(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty; delete it to have a new key made")
    return key
