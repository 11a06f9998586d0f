"""For migrations only: the code and values of a message stored, before codes existed, as an
English sentence made from a known template.

A template is cut at its placeholders into fixed pieces, and a stored sentence matches when
it begins and ends with the outer pieces and holds the inner ones in order; the text between
them is each value. A sentence that matches no template keeps its words as the ``detail``
value of ``fallback_code`` (``jobs.messages.render`` shows the detail as it is).
"""

from __future__ import annotations

from collections.abc import Mapping

from jobs.messages import DETAIL


def _pieces(template: str) -> tuple[list[str], list[str]]:
    fixed, names, rest = [], [], template
    while "%(" in rest:
        head, _, tail = rest.partition("%(")
        name, _, rest = tail.partition(")s")
        fixed.append(head)
        names.append(name)
    fixed.append(rest)
    return fixed, names


def _match(text: str, template: str) -> dict[str, str] | None:
    fixed, names = _pieces(template)
    if not names:
        return {} if text == template else None
    if not text.startswith(fixed[0]) or not text.endswith(fixed[-1]):
        return None
    if len(text) < len(fixed[0]) + len(fixed[-1]):
        return None
    body = text[len(fixed[0]) : len(text) - len(fixed[-1])]
    values: dict[str, str] = {}
    for index, name in enumerate(names[:-1]):
        value, found, body = body.partition(fixed[index + 1])
        if not found:
            return None
        values[name] = value
    values[names[-1]] = body
    return values


def code_of(
    text: str, templates: Mapping[str, str], fallback_code: str
) -> tuple[str, dict[str, str]]:
    """(code, values) for a stored sentence; ("", {}) for none."""
    if not text:
        return "", {}
    for code, template in sorted(templates.items(), key=lambda item: -len(item[1])):
        values = _match(text, template)
        if values is not None:
            return code, values
    return fallback_code, {DETAIL: text}
