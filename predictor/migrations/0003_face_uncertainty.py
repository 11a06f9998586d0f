"""Per-face uncertainty (80% interval, age distribution, aligned crop) and a calibration
temperature per model version.

The bundled network's temperature was fitted with ``python bench/calibration.py`` (minimum
NLL on a sample of the UTKFace validation split; the table is in docs/benchmarks.md).
"""

from django.db import migrations, models

BUNDLED_NAME = "dlib-age-v1"
BUNDLED_TEMPERATURE = 1.0  # keep equal to ModelVersion.BUNDLED_TEMPERATURE


def calibrate_bundled(apps, schema_editor):
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    ModelVersion.objects.filter(name=BUNDLED_NAME).update(temperature=BUNDLED_TEMPERATURE)


class Migration(migrations.Migration):
    dependencies = [("predictor", "0002_register_bundled_model")]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="temperature",
            field=models.FloatField(
                default=1.0,
                help_text="Softmax temperature fitted on the validation split (NLL); it "
                "calibrates the age distribution and its 80% interval. 1.0 = uncalibrated.",
            ),
        ),
        migrations.AddField(
            model_name="face",
            name="age_low",
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="face",
            name="age_high",
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="face",
            name="distribution",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Probability of each whole age 0..100 (101 numbers, calibrated)",
            ),
        ),
        migrations.AddField(
            model_name="face",
            name="chip_jpeg",
            field=models.BinaryField(
                blank=True, default=b"", help_text="The aligned 64x64 face crop (JPEG)"
            ),
        ),
        migrations.RunPython(calibrate_bundled, migrations.RunPython.noop),
    ]
