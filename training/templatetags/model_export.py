"""``{% model_export_section version %}``: a model page's downloads and model card.

The model page is the predictor app's; its template loads this library, so the page shows
what the training side exports without predictor importing training.
"""

from __future__ import annotations

from django import template

from training.export import FORMATS
from training.export.card import model_card_html

register = template.Library()


@register.inclusion_tag("training/_model_export.html", takes_context=True)
def model_export_section(context, version) -> dict:
    from training.export.views import export_status

    return {
        "user": context.get("user"),
        "version": version,
        "formats": FORMATS,
        "status": export_status(version),
        "card_html": model_card_html(version),
    }
