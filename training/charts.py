"""Training's charts: learning curves per epoch (server-side SVG, as predictor.charts)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from matplotlib.ticker import MaxNLocator

from predictor.charts import plt, svg_text


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
    return svg_text(figure)
