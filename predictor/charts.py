"""Server-side SVG charts (matplotlib, no JavaScript library, no CDN)."""

from __future__ import annotations

import io
import warnings

import matplotlib
from django.utils.translation import gettext as _

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

plt.rcParams.update({"svg.fonttype": "none", "font.size": 10})


def _svg(figure) -> str:
    buffer = io.StringIO()
    with warnings.catch_warnings():
        # Labels stay text in the SVG (the browser draws them in its own fonts), so a
        # Chinese label needs no glyph in matplotlib's font: only its width is guessed.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def learning_curves(history: list[dict]) -> str:
    """Train and validation loss and MAE per epoch, side by side."""
    figure, (loss_axis, mae_axis) = plt.subplots(1, 2, figsize=(8, 3))
    epochs = [row["epoch"] for row in history]
    for axis, key, title in ((loss_axis, "loss", _("Loss")), (mae_axis, "mae", _("MAE (years)"))):
        axis.plot(epochs, [row.get(key) for row in history], "o-", label=_("train"))
        axis.plot(epochs, [row.get(f"val_{key}") for row in history], "s-", label=_("validation"))
        axis.set_title(title)
        axis.set_xlabel(_("epoch"))
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.2
        axis.grid(alpha=0.3)
    if history:
        mae_axis.legend()
    else:  # empty axes with ticks around zero would read as data
        for axis in (loss_axis, mae_axis):
            axis.set_xticks([])
            axis.set_yticks([])
            axis.text(0.5, 0.5, _("no finished epoch yet"), ha="center", transform=axis.transAxes)
    return _svg(figure)


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
    return _svg(figure)


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
    return _svg(figure)
