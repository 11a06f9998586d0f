"""The admin's change lists and actions, refusing values from the URL or the form that no
query can take, as the admin refuses other bad lookups: never a 500.

Django turns a bad filter into its "?e=1" page only where the error is raised while the
filter is applied. A year out of range (``?created_at__year=0``: ValueError; twenty digits:
OverflowError) or a NUL in a text filter (PostgreSQL's DataError) is raised later, when the
dates are built or the query first runs. An action's selected ids are not checked at all
(``_selected_action=abc``: ValueError, or OverflowError on SQLite for twenty digits).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.db import DataError, connections, models, router, transaction
from django.http import HttpRequest, HttpResponseRedirect
from django.utils.translation import gettext as _


class CheckedAdmin(admin.ModelAdmin):
    """A ModelAdmin (first among the bases, beside Django's own admins): bad change-list
    lookups get the admin's own "?e=1" answer, and an action on ids that are not this
    model's ids is refused with a message."""

    def get_changelist_instance(self, request: HttpRequest):
        try:
            # A savepoint: a failed query must not spoil a surrounding transaction.
            with transaction.atomic(using=router.db_for_read(self.model)):
                return super().get_changelist_instance(request)
        except (ValueError, OverflowError, DataError) as error:
            raise IncorrectLookupParameters(error) from error

    def response_action(self, request: HttpRequest, queryset, *args, **kwargs):
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if not all(_is_an_id(self.model, value) for value in selected):
            self.message_user(
                request, _("Those items are not in the list; select them again."), messages.ERROR
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset, *args, **kwargs)


def _is_an_id(model, value: str) -> bool:
    """Whether ``value`` could be the primary key of a row of ``model``."""
    field = model._meta.pk
    if "\x00" in value:
        return False
    try:
        key = field.to_python(value)
    except ValidationError:
        return False
    if isinstance(field, models.IntegerField):
        ops = connections[router.db_for_read(model)].ops
        low, high = ops.integer_field_range(field.get_internal_type())
        return (low is None or low <= key) and (high is None or key <= high)
    return True
