"""Messages stored as a code and its values, rendered in the reader's language when shown.

Workers have no reader, so they store what happened as a code (``"too_slow"``) and the
values that go with it (``{"seconds": 60}``), never a sentence. Each app declares its codes
and their English templates next to the code that raises them (``predictor.messages``,
``training.messages``), marked with ``gettext_noop`` so that ``makemessages`` collects them;
a page or the API renders one with :func:`render` in the language of whoever reads it.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.utils.translation import gettext

# The values of a code that has no template (a row written by an older version, say): shown
# as they are, so that nothing a worker recorded is hidden.
DETAIL = "detail"


def render(catalogue: Mapping[str, str], code: str, params: Mapping[str, object] | None) -> str:
    """The message for ``code`` in the active language, with its values filled in; "" for
    no code."""
    if not code:
        return ""
    params = dict(params or {})
    template = catalogue.get(code)
    if template is None:
        return str(params.get(DETAIL) or code)
    text = gettext(template)
    if not params:
        return text
    try:
        return text % params
    except (KeyError, ValueError, TypeError):  # a translation that lost a value
        return template % params
