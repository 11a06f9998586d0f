"""``{% model_export_section version %}``: a model page's downloads and model card."""

from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe

from predictor.export import FORMATS, markdown_to_html, model_card_markdown

register = template.Library()


@register.inclusion_tag("predictor/_model_export.html", takes_context=True)
def model_export_section(context, version) -> dict:
    from predictor.export_views import export_status

    return {
        "user": context.get("user"),
        "version": version,
        "formats": FORMATS,
        "status": export_status(version),
        # markdown_to_html escapes every piece of text it is given.
        "card_html": mark_safe(markdown_to_html(model_card_markdown(version))),
    }
