"""manage.py build_second_opinion refuses options it cannot build with, before it reads a
photo or trains anything (the build itself runs in docs/benchmarks.md, not in tests)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--layers", "descriptor,pixels"], r"^--layers: comma-separated names among descriptor"),
        (["--layers", ""], r"^--layers: comma-separated names among"),
        (["--name", "faceage-v6", "--replaces", "faceage-v6"], r"^--replaces names the version"),
        (["--hidden", "0"], r"^--hidden and --epochs must be at least 1"),
        (["--network", "faceage-v0"], r"^--network: no shipped network 'faceage-v0'"),
    ],
)
def test_options_it_cannot_build_with_are_refused(options, message, tmp_path):
    with pytest.raises(CommandError, match=message):
        call_command("build_second_opinion", *options, "--out", str(tmp_path))
    assert not any(tmp_path.iterdir())  # nothing written
