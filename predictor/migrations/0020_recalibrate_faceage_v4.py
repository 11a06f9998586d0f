"""Give faceage-v4 the temperature its card now has (manage.py calibrate_shipped_model
faceage-v4): fitted on FairFace validation so that its 80% intervals hold 80% of the ages,
where it was fitted on the likelihood of the age groups (1.3493, whose intervals held 74% of
UTKFace's test ages). The row's metrics take the card's, which add the calibration table. A
row whose temperature is not the old one (refitted here) is left alone. The network's
weights, and so every age, are unchanged."""

from django.db import migrations

NAME = "faceage-v4"
OLD_TEMPERATURE = 1.3493


def recalibrate(apps, schema_editor):
    from predictor.models import shipped_version_fields

    ModelVersion = apps.get_model("predictor", "ModelVersion")
    fields = shipped_version_fields(NAME)
    ModelVersion.objects.filter(
        name=NAME, artifact=fields["artifact"], temperature=OLD_TEMPERATURE
    ).update(temperature=fields["temperature"], metrics=fields["metrics"])


def restore(apps, schema_editor):
    from predictor.models import shipped_version_fields

    ModelVersion = apps.get_model("predictor", "ModelVersion")
    fields = shipped_version_fields(NAME)
    # The metrics as they were: the card's, without the calibration table this added.
    metrics = {key: value for key, value in fields["metrics"].items() if key != "calibration"}
    ModelVersion.objects.filter(
        name=NAME, artifact=fields["artifact"], temperature=fields["temperature"]
    ).update(temperature=OLD_TEMPERATURE, metrics=metrics)


class Migration(migrations.Migration):
    dependencies = [("predictor", "0019_register_faceage_v4")]
    operations = [migrations.RunPython(recalibrate, restore)]
