"""Server-side SVG charts (matplotlib, no JavaScript library, no CDN)."""

from __future__ import annotations

import io
import warnings

import matplotlib
from django.utils.translation import gettext as _

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt

plt.rcParams.update({"svg.fonttype": "none", "font.size": 10})


def svg_text(figure) -> str:
    """The figure as an inline SVG element (closed afterwards)."""
    buffer = io.StringIO()
    with warnings.catch_warnings():
        # Labels stay text in the SVG (the browser draws them in its own fonts), so a
        # Chinese label needs no glyph in matplotlib's font: only its width is guessed.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def error_by_decade(
    by_decade: dict, baseline: dict | None = None, names: tuple[str, str] | None = None
) -> str:
    """Bar chart of MAE per age decade, with the baseline's bars beside it; ``names`` label
    the two (default: this model, the active model)."""
    ours_name, theirs_name = names or (_("this model"), _("active model"))
    labels = list(by_decade)
    figure, axis = plt.subplots(figsize=(7, 3))
    positions = range(len(labels))
    width = 0.4 if baseline else 0.8
    shift = width / 2 if baseline else 0.0
    ours = [by_decade[k]["mae"] for k in labels]
    axis.bar([p - shift for p in positions], ours, width, label=ours_name)
    if baseline:
        theirs = [baseline.get(k, {}).get("mae", 0) for k in labels]
        axis.bar([p + shift for p in positions], theirs, width, label=theirs_name)
        axis.legend()
    axis.set_xticks(list(positions), labels, rotation=30)
    axis.set_ylabel(_("MAE (years)"))
    axis.set_xlabel(_("true age"))
    axis.grid(axis="y", alpha=0.3)
    return svg_text(figure)


def predicted_vs_true(points: list[list[float]]) -> str:
    figure, axis = plt.subplots(figsize=(4, 4))
    if points:
        true, predicted = zip(*points, strict=True)
        axis.scatter(true, predicted, s=4, alpha=0.4)
    axis.plot([0, 100], [0, 100], "k--", linewidth=1)
    axis.set_xlim(0, 100)
    axis.set_ylim(0, 100)
    axis.set_xlabel(_("true age"))
    axis.set_ylabel(_("predicted age"))
    return svg_text(figure)
