"""Stored English sentences become codes and values; old statuses and stages, the new ones."""

from django.db import migrations

from jobs.legacy import code_of

# What was stored as English sentences before codes (frozen here as it was).
RUN_TEMPLATES = {
    "gave_up": "The training worker stopped unexpectedly %(attempts)s times.",
    "too_slow": "Training took longer than %(seconds)s s.",
    "failed": "Training failed: %(error)s",
    "cancelled": "Cancelled by an administrator.",
    "cancelled_early": "Cancelled before it started.",
}
IMPORT_TEMPLATES = {
    "no_faces": "No usable faces found in %(source)s.",
    "no_consented_faces": "No one has consented to training with a labelled face yet.",
}
STAGES = {"preparing chips": "preparing", "training": "training", "evaluating": "evaluating"}
STATUSES = {"importing": "queued", "ready": "succeeded", "failed": "failed"}


def to_codes(apps, schema_editor):
    TrainingRun = apps.get_model("training", "TrainingRun")
    for row in TrainingRun.objects.only("pk", "error", "stage").iterator():
        code, params = code_of(row.error, RUN_TEMPLATES, "failed")
        if code == "failed" and "detail" in params:
            params = {"error": params["detail"]}
        # "preparing chips 12/500": the counts are in stage_done and stage_total already.
        stage = ""
        for name, value in STAGES.items():
            if row.stage.startswith(name):
                stage = value
        TrainingRun.objects.filter(pk=row.pk).update(
            error_code=code, error_params=params, stage=stage
        )
    Dataset = apps.get_model("training", "Dataset")
    for row in Dataset.objects.only("pk", "error", "status").iterator():
        code, params = code_of(row.error, IMPORT_TEMPLATES, "import_failed")
        if code == "import_failed":
            params = {"error": params["detail"]}
        # An import that was under way is queued again: the sweeper sends it to a worker,
        # and an import finishes without duplicates.
        Dataset.objects.filter(pk=row.pk).update(
            error_code=code, error_params=params, status=STATUSES.get(row.status, row.status)
        )


def sentence(templates, code, params):
    """Back to an English sentence (codes added after this migration: their values)."""
    params = params or {}
    template = templates.get(code)
    try:
        return template % params if template else str(params.get("error") or params or code)
    except (KeyError, ValueError, TypeError):
        return code


def to_sentences(apps, schema_editor):
    TrainingRun = apps.get_model("training", "TrainingRun")
    for row in TrainingRun.objects.exclude(error_code=""):
        TrainingRun.objects.filter(pk=row.pk).update(
            error=sentence(RUN_TEMPLATES, row.error_code, row.error_params)
        )
    TrainingRun.objects.filter(stage="preparing").update(stage="preparing chips")
    Dataset = apps.get_model("training", "Dataset")
    for row in Dataset.objects.exclude(error_code=""):
        Dataset.objects.filter(pk=row.pk).update(
            error=sentence(IMPORT_TEMPLATES, row.error_code, row.error_params)
        )
    back = {"queued": "importing", "running": "importing", "succeeded": "ready"}
    for new, old in back.items():
        Dataset.objects.filter(status=new).update(status=old)


class Migration(migrations.Migration):
    dependencies = [
        ('training', '0009_job_layer_and_message_codes'),
    ]

    operations = [
        migrations.RunPython(to_codes, to_sentences),
    ]
