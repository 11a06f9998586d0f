"""Migration 0018 makes faceage-v3 the default where an earlier default still serves, and
leaves a model that staff promoted alone; undone, it puts faceage-v2 back."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("predictor", "0017_chip_help_text")]
AFTER = [("predictor", "0018_register_faceage_v3")]


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


def active_name(apps) -> str | None:
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    return ModelVersion.objects.filter(is_active=True).values_list("name", flat=True).first()


def installed_before(apps, active: str) -> None:
    """The registry of an install from before 0018: both earlier defaults, ``active`` serving.
    (Written here: a test that empties the tables before this one leaves nothing behind.)"""
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    ModelVersion.objects.all().delete()
    for name in ("dlib-age-v1", "faceage-v2"):
        ModelVersion.objects.create(name=name, artifact=name, is_active=name == active)


@pytest.mark.parametrize("old_default", ["faceage-v2", "dlib-age-v1"])
def test_an_earlier_default_hands_over(old_default):
    installed_before(migrate(BEFORE), active=old_default)
    apps = migrate(AFTER)
    assert active_name(apps) == "faceage-v3"
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    assert set(ModelVersion.objects.values_list("name", flat=True)) == {
        "dlib-age-v1",
        "faceage-v2",
        "faceage-v3",
    }


def test_undone_it_gives_the_default_back_to_faceage_v2():
    installed_before(migrate(BEFORE), active="faceage-v2")
    apps = migrate(AFTER)
    assert active_name(apps) == "faceage-v3"
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    assert ModelVersion.objects.filter(name="faceage-v2", is_active=False).exists()
    apps = migrate(BEFORE)
    assert active_name(apps) == "faceage-v2"
    assert not apps.get_model("predictor", "ModelVersion").objects.filter(name="faceage-v3")
    migrate(AFTER)


def test_a_model_staff_promoted_keeps_serving():
    apps = migrate(BEFORE)
    installed_before(apps, active="")
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    ModelVersion.objects.create(name="ours", artifact="ours.keras", is_active=True)
    apps = migrate(AFTER)
    assert active_name(apps) == "ours"
    assert apps.get_model("predictor", "ModelVersion").objects.filter(name="faceage-v3").exists()
