"""Register faceage-v8: faceage-v5's network served with twelve age heads on the face
descriptor network's layers (faceage-v7's four layers, each read by heads of three training
seeds) as a second opinion (predictor.vision.second_opinion), and make it the active one where
an earlier default (faceage-v7 back to the dlib network) still is: an install whose staff
promoted a model of their own keeps it. faceage-v7 stays registered to roll back to."""

from django.db import migrations
from django.utils import timezone

NAME = "faceage-v8"
PREVIOUS_DEFAULT = "faceage-v7"
EARLIER_DEFAULTS = {
    PREVIOUS_DEFAULT,
    "faceage-v6",
    "faceage-v5",
    "faceage-v4",
    "faceage-v3",
    "faceage-v2",
    "dlib-age-v1",
}


def register(apps, schema_editor):
    from predictor.models import shipped_version_fields

    ModelVersion = apps.get_model("predictor", "ModelVersion")
    fields = shipped_version_fields(NAME)
    # Only the fields this migration's model has: the current code may know more.
    known = {field.name for field in ModelVersion._meta.get_fields()}
    fields = {name: value for name, value in fields.items() if name in known}
    version, _ = ModelVersion.objects.get_or_create(name=NAME, defaults=fields)
    active = ModelVersion.objects.filter(is_active=True).first()
    if active is None or active.name in EARLIER_DEFAULTS:
        ModelVersion.objects.filter(is_active=True).update(is_active=False)
        version.is_active = True
        version.activated_at = timezone.now()
        version.save(update_fields=["is_active", "activated_at"])


def unregister(apps, schema_editor):
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    version = ModelVersion.objects.filter(name=NAME).first()
    was_active = version is not None and version.is_active
    ModelVersion.objects.filter(name=NAME).delete()
    if was_active:
        ModelVersion.objects.filter(name=PREVIOUS_DEFAULT).update(
            is_active=True, activated_at=timezone.now()
        )


class Migration(migrations.Migration):
    dependencies = [("predictor", "0025_register_faceage_v7")]
    operations = [migrations.RunPython(register, unregister)]
