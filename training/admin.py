from django.contrib import admin, messages
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from predictor.admin_checks import CheckedAdmin
from training import messages as run_messages
from training.forms import DatasetForm, TrainingRunForm
from training.models import Dataset, DatasetItem, ModelExport, RunDataset, TrainingRun


def start_run(form: TrainingRunForm, user) -> TrainingRun:
    from training.tasks import enqueue_run

    run = form.save(commit=False)
    run.created_by = user if user and user.is_authenticated else None
    with transaction.atomic():
        run.save()
        for dataset, weight in form.cleaned_data.get("further_datasets") or []:
            RunDataset.objects.create(run=run, dataset=dataset, weight=weight)
        transaction.on_commit(lambda: enqueue_run(run.pk))
    return run


@admin.register(Dataset)
class DatasetAdmin(CheckedAdmin):
    form = DatasetForm
    list_display = ["name", "kind", "status", "is_benchmark", "item_count", "created_at"]
    list_editable = ["is_benchmark"]
    readonly_fields = [
        "status",
        "content_hash",
        "report",
        "error_message",
        "imported_at",
        "splits",
    ]
    actions = ["train_new_model", "reimport"]

    def get_changelist_form(self, request, **kwargs):
        """The list's benchmark checkboxes are named after their dataset, for screen readers
        (a bare checkbox in a table cell has no label)."""
        base = super().get_changelist_form(request, **kwargs)

        class NamedCheckboxes(base):  # type: ignore[misc,valid-type]  # the admin's own form
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                self.fields["is_benchmark"].widget.attrs["aria-label"] = _(
                    "%(name)s is a benchmark"
                ) % {"name": self.instance.name}

        return NamedCheckboxes

    @admin.display(description=gettext_lazy("Faces"))
    def item_count(self, obj):
        return obj.items.count()

    @admin.display(description=gettext_lazy("Split (faces)"))
    def splits(self, obj):
        return ", ".join(f"{k}: {v}" for k, v in sorted(obj.split_counts().items())) or "-"

    def save_model(self, request, obj, form, change):
        from training.tasks import queue_import

        super().save_model(request, obj, form, change)
        transaction.on_commit(lambda: queue_import(obj.pk))
        messages.info(
            request,
            _("Importing %(name)s in the background; refresh to see its status.")
            % {"name": obj.name},
        )

    @admin.action(description=gettext_lazy("Import again (finishes an interrupted import)"))
    def reimport(self, request, queryset):
        from training.tasks import queue_import

        for dataset in queryset:
            queue_import(dataset.pk)
        count = queryset.count()
        self.message_user(
            request,
            ngettext("%(count)d import queued.", "%(count)d imports queued.", count)
            % {"count": count},
        )

    @admin.action(description=gettext_lazy("Train a new model"))
    def train_new_model(self, request, queryset):
        first = queryset.first()
        return redirect(
            f"{reverse('admin:training_trainingrun_start')}?dataset={first.pk if first else ''}"
        )


@admin.register(DatasetItem)
class DatasetItemAdmin(CheckedAdmin):
    list_display = ["path", "dataset", "age", "gender", "split"]
    list_filter = ["dataset", "split", "gender"]
    search_fields = ["path"]


class RunDatasetInline(admin.TabularInline):
    model = RunDataset
    extra = 0
    can_delete = False
    readonly_fields = ["dataset", "weight"]

    def has_add_permission(self, request, obj=None):
        return False  # chosen when the run is started


@admin.register(TrainingRun)
class TrainingRunAdmin(CheckedAdmin):
    inlines = [RunDatasetInline]
    list_display = [
        "id", "dataset", "status", "stage_display", "progress_percent", "result", "created_at"
    ]  # fmt: skip
    list_filter = ["status", "dataset"]
    readonly_fields = [
        "status", "stage", "epoch", "step", "steps_per_epoch", "progress", "eta_seconds",
        "history", "test_metrics", "baseline_metrics", "log", "error_message", "error_code",
        "attempts", "claimed_by",
        "heartbeat_at", "model_version", "created_at", "enqueued_at", "sends", "started_at",
        "finished_at",
        "cancel_requested", "created_by", "log_entries", "stage_done", "stage_total",
        "step_losses",
    ]  # fmt: skip
    exclude = ["error_params"]  # shown rendered, as error_message
    actions = ["cancel"]

    def get_urls(self):
        extra = [
            path(
                "start/",
                self.admin_site.admin_view(self.start_view),
                name="training_trainingrun_start",
            )
        ]
        return extra + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:training_trainingrun_start")

    def start_view(self, request):
        """The "Train a new model" form."""
        if request.method == "POST":
            form = TrainingRunForm(request.POST)
            if form.is_valid():
                run = start_run(form, request.user)
                messages.success(request, _("Training run %(id)s queued.") % {"id": run.pk})
                return redirect(run)
        else:
            form = TrainingRunForm(initial={"dataset": request.GET.get("dataset")})
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": _("Train a new model"),
        }
        return render(request, "admin/training/start_run.html", context)

    @admin.display(description=gettext_lazy("stage"), ordering="stage")
    def stage_display(self, obj):
        return obj.get_stage_display()

    @admin.display(description=gettext_lazy("Progress"))
    def progress_percent(self, obj):
        return format_html(
            '<a href="{}">{}%</a>', obj.get_absolute_url(), round(obj.progress * 100)
        )

    @admin.display(description=gettext_lazy("Model"))
    def result(self, obj):
        if not obj.model_version:
            return "-"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("predictor:model", args=[obj.model_version.name]),
            obj.model_version.name,
        )

    @admin.action(description=gettext_lazy("Cancel the selected runs"))
    def cancel(self, request, queryset):
        queryset.filter(status=TrainingRun.Status.QUEUED).update(
            status=TrainingRun.Status.CANCELLED,
            error_code=run_messages.CANCELLED_EARLY,
            error_params={},
            finished_at=timezone.now(),
        )
        count = queryset.filter(status=TrainingRun.Status.RUNNING).update(cancel_requested=True)
        self.message_user(
            request,
            ngettext(
                "%(count)d running run will stop at its next report.",
                "%(count)d running runs will stop at their next report.",
                count,
            )
            % {"count": count},
        )


@admin.register(ModelExport)
class ModelExportAdmin(CheckedAdmin):
    """The builds of the model downloads, as jobs: read-only (a visit to a download, or
    ``manage.py export_model``, starts one)."""

    list_display = ["version", "key", "status", "attempts", "created_at", "finished_at"]
    list_filter = ["status"]
    readonly_fields = [
        "version", "key", "status", "error_message", "error_code", "attempts", "claimed_by",
        "created_at", "enqueued_at", "sends", "heartbeat_at", "started_at", "finished_at",
    ]  # fmt: skip
    exclude = ["error_params"]

    def has_add_permission(self, request) -> bool:
        return False
