"""Per-face uncertainty (80% interval, age distribution, aligned crop) and a calibration
temperature per model version.

The bundled network's temperature and the figures below come from

    .venv/bin/python bench/calibration.py   # --val 1500 --test 1500 --seed 0 (defaults)

on UTKFace (split as import_dataset does, seed 0): the temperature is the smallest whose 80%
intervals hold 80% of the true ages on 1,500 validation faces; the figures are on 1,500 test
faces (table in docs/benchmarks.md).
"""

from django.db import migrations, models

BUNDLED_NAME = "dlib-age-v1"
BUNDLED_TEMPERATURE = 2.5384  # keep equal to ModelVersion.BUNDLED_TEMPERATURE
BUNDLED_CALIBRATION = {
    "temperature": BUNDLED_TEMPERATURE,
    "fitted_on": "UTKFace validation sample: 80% of true ages inside the 80% interval",
    "temperature_min_nll": 4.1897,
    "validation_faces": 1500,
    "test_faces": 1500,
    "before": {
        "coverage_80": 0.368,
        "mean_width": 7.308,
        "nll": 7.05,
        "coverage_80_children_0_12": 0.476,
    },
    "after": {
        "coverage_80": 0.806,
        "mean_width": 27.016,
        "nll": 3.986,
        "coverage_80_children_0_12": 0.835,
    },
    "after_min_nll": {
        "coverage_80": 0.949,
        "mean_width": 51.081,
        "nll": 3.764,
        "coverage_80_children_0_12": 0.901,
    },
    "mae": 6.389,
    "mae_children_0_12": 3.642,
    "command": ".venv/bin/python bench/calibration.py",
}


def calibrate_bundled(apps, schema_editor):
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    for version in ModelVersion.objects.filter(name=BUNDLED_NAME):
        version.temperature = BUNDLED_TEMPERATURE
        version.metrics = {**(version.metrics or {}), "calibration": BUNDLED_CALIBRATION}
        version.save(update_fields=["temperature", "metrics"])


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
