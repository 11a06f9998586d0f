from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from jobs import lifecycle
from predictor.admin_checks import CheckedAdmin
from predictor.models import (
    AgeLabel,
    Face,
    ModelVersion,
    NothingToRollBackTo,
    Prediction,
    PromotionNeedsReason,
)


class FaceInline(admin.StackedInline):
    """A photo's faces, as the worker stored them: shown, never edited here (an editable
    inline would put unlabelled inputs in a table, which screen readers cannot name, and a
    table inline scrolls sideways on a phone, out of reach of the keyboard)."""

    model = Face
    extra = 0
    fields = [
        "index",
        "left",
        "top",
        "right",
        "bottom",
        "age",
        "age_std",
        "age_low",
        "age_high",
        "detector",
        "drawn_by_user",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # names only, no field groups
    can_delete = False

    @admin.display(description=gettext_lazy("marked by the owner"), boolean=True)
    def drawn_by_user(self, face: Face) -> bool:
        return face.drawn_by_user

    def has_add_permission(self, request, obj=None) -> bool:
        return False


# The product's name on every admin page, not Django's.
admin.site.site_header = gettext_lazy("faceage administration")
admin.site.site_title = gettext_lazy("faceage admin")
admin.site.index_title = gettext_lazy("Models, datasets, training and predictions")


# Django's and DRF's own admins, adjusted so that every admin page passes the accessibility
# check (tests/browser/test_accessibility.py): the two-list "filter_horizontal" widget puts
# aria attributes where ARIA forbids them, so permissions and groups are plain multiple
# selects; the login and join times are shown, not edited (their split date and time inputs
# have no label); and the token search names its field with its label, not a description.
admin.site.unregister(User)
admin.site.unregister(Group)
admin.site.unregister(TokenProxy)


@admin.register(User)
class AccessibleUserAdmin(CheckedAdmin, UserAdmin):
    filter_horizontal = ()
    readonly_fields = ("last_login", "date_joined")


@admin.register(Group)
class AccessibleGroupAdmin(CheckedAdmin, GroupAdmin):
    filter_horizontal = ()


@admin.register(TokenProxy)
class AccessibleTokenAdmin(CheckedAdmin, TokenAdmin):
    search_help_text = None


@admin.register(Prediction)
class PredictionAdmin(CheckedAdmin):
    """Predictions come from uploads (the form or the API), never from the admin."""

    list_display = [
        "id",
        "status",
        "owner",
        "created_at",
        "finished_at",
        "model_version",
        "attempts",
    ]
    list_filter = ["status", "model_version"]
    search_fields = ["id", "owner__username", "original_name"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "drawn_boxes",  # checked where people send them (predictor/drawn_boxes.py), not here
        "pending_boxes",
        "owner",
        "anonymous_owner",
        "image",
        "thumbnail",
        "width",
        "height",
        "original_name",
        "model_version",
        "attempts",
        "claimed_by",
        "created_at",
        "enqueued_at",
        "sends",
        "heartbeat_at",
        "started_at",
        "finished_at",
        "error_code",
        "error_message",
    ]
    exclude = ["error_params"]  # shown rendered, as error_message
    inlines = [FaceInline]
    actions = ["requeue"]

    @admin.action(description=gettext_lazy("Queue the selected predictions again"))
    def requeue(self, request, queryset):
        from predictor.tasks import enqueue_prediction

        count = 0
        for prediction in queryset:
            # A whole run again (faces matched to their rows by position in the photo), not
            # the marked-face run a pending box would make it.
            Prediction.objects.filter(pk=prediction.pk).update(
                **lifecycle.fresh_state(), pending_boxes=[]
            )
            count += enqueue_prediction(prediction.pk)
        self.message_user(
            request,
            ngettext(
                "%(count)d prediction queued again.", "%(count)d predictions queued again.", count
            )
            % {"count": count},
            messages.SUCCESS,
        )

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Face)
class FaceAdmin(CheckedAdmin):
    """Faces come from the worker: nothing to add by hand."""

    list_display = ["prediction", "index", "age", "age_std", "detector"]
    list_select_related = ["prediction"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(AgeLabel)
class AgeLabelAdmin(CheckedAdmin):
    """Labels are the owners' to give and withdraw: staff only read them."""

    list_display = ["face", "age", "consent", "labelled_by", "updated_at"]
    list_filter = ["consent"]
    list_select_related = ["face", "labelled_by"]
    readonly_fields = ["face", "age", "consent", "labelled_by", "created_at", "consent_changed_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(CheckedAdmin):
    list_display = [
        "name", "framework", "is_active", "shadow_share", "test_mae", "created_at", "activated_at"
    ]  # fmt: skip

    @admin.display(description=gettext_lazy("Test MAE"))
    def test_mae(self, obj):
        mae = obj.test_mae
        return "-" if mae is None else f"{mae:.2f}"

    def view_on_site(self, obj):
        return reverse("predictor:model", args=[obj.name])

    readonly_fields = [
        "is_active", "activated_at", "created_at", "promotion_override", "shadow_share"
    ]  # fmt: skip
    actions = ["activate", "roll_back", "shadow", "end_shadow"]

    @admin.action(
        description=gettext_lazy(
            "Run in shadow on 20%% of uploads: compare with the active model on real photos"
        )
    )
    def shadow(self, request, queryset):
        if queryset.count() != 1 or queryset.get().is_active:
            self.message_user(
                request, _("Select exactly one version that is not active."), messages.ERROR
            )
            return
        version = queryset.get()
        version.start_shadow(0.2)
        self.message_user(
            request,
            _(
                "%(name)s now runs in shadow on 20%% of uploads; people see only the active "
                "model's ages. Its page compares the two."
            )
            % {"name": version.name},
            messages.SUCCESS,
        )

    @admin.action(description=gettext_lazy("End the shadow run"))
    def end_shadow(self, request, queryset):
        ended = ModelVersion.objects.filter(shadow_share__gt=0).update(shadow_share=0.0)
        self.message_user(
            request, ngettext("Ended %(n)s shadow run.", "Ended %(n)s shadow runs.", ended)
            % {"n": ended}, messages.SUCCESS,
        )  # fmt: skip

    @admin.action(
        description=gettext_lazy(
            "Roll back: select the active version to make the one active before it active again"
        )
    )
    def roll_back(self, request, queryset):
        chosen = list(queryset)
        if len(chosen) != 1:
            self.message_user(
                request, _("Select just the active version to roll back from."), messages.ERROR
            )
            return
        try:
            previous = ModelVersion.roll_back_from(chosen[0].name)
        except NothingToRollBackTo:
            self.message_user(
                request, _("No earlier active version to roll back to."), messages.ERROR
            )
            return
        if previous is None:
            self.message_user(
                request,
                _("%(name)s is not the active version, so nothing was rolled back.")
                % {"name": chosen[0].name},
                messages.WARNING,
            )
            return
        self.message_user(
            request,
            _("Rolled back: %(name)s is active again.") % {"name": previous.name},
            messages.SUCCESS,
        )

    @admin.action(
        description=gettext_lazy(
            "Promote: make the selected version active (serves new predictions)"
        )
    )
    def activate(self, request, queryset):
        """Promote one version. One that the promotion gate found worse than the active
        model on a benchmark (training/gate.py) is promoted only with a written reason,
        asked for on an intermediate page, stored and shown on the model's page."""
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one version."), messages.ERROR)
            return None
        version = queryset.get()
        reason = request.POST.get("reason", "") if "apply" in request.POST else ""
        try:
            version.promote(reason)
        except PromotionNeedsReason as refused:
            return render(
                request,
                "admin/predictor/promote_despite_regressions.html",
                {
                    **self.admin_site.each_context(request),
                    "title": _("Promote despite regressions?"),
                    "version": version,
                    "regressions": refused.regressions,
                    "selected_name": helpers.ACTION_CHECKBOX_NAME,
                    "reason": reason,
                    "error": _("Write a reason.") if "apply" in request.POST else "",
                },
            )
        self.message_user(
            request, _("%(name)s is now active.") % {"name": version.name}, messages.SUCCESS
        )
        return None
