"""Plain-text tables for benchmark output."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render rows under headers; numbers right-aligned, text left-aligned.

    Floats are shown with two decimals; pre-format a value as a string to choose
    another precision.
    """
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row {row} has {len(row)} cells for {len(headers)} headers")
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    numeric = [
        all(isinstance(row[column], int | float) for row in rows) if rows else False
        for column in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(list(headers)), rule, *(line(row) for row in cells)])


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], file: TextIO | None = None
) -> None:
    """Print :func:`format_table` output followed by a newline (stdout by default)."""
    print(format_table(headers, rows), file=file or sys.stdout)
