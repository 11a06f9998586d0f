"""Migrations 0018, 0019, 0022, 0024, 0025 and 0026 make the new shipped network (faceage-v3,
then faceage-v4, faceage-v5, faceage-v6, faceage-v7, faceage-v8) the default where an earlier
default still serves, and leave a model that staff promoted alone; undone, each puts the
default before it back.
Migration 0020 gives faceage-v4 its card's refitted temperature."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Handover:
    before: str  # the migration before it
    after: str  # the migration that registers ``name``
    name: str
    earlier: tuple[str, ...]  # the defaults before it, the one it replaces first

    @property
    def previous(self) -> str:
        return self.earlier[0]


HANDOVERS = [
    Handover(
        "0017_chip_help_text",
        "0018_register_faceage_v3",
        "faceage-v3",
        ("faceage-v2", "dlib-age-v1"),
    ),
    Handover(
        "0018_register_faceage_v3",
        "0019_register_faceage_v4",
        "faceage-v4",
        ("faceage-v3", "faceage-v2", "dlib-age-v1"),
    ),
    Handover(
        "0021_temperature_help_text",
        "0022_register_faceage_v5",
        "faceage-v5",
        ("faceage-v4", "faceage-v3", "faceage-v2", "dlib-age-v1"),
    ),
    Handover(
        "0023_second_opinion",
        "0024_register_faceage_v6",
        "faceage-v6",
        ("faceage-v5", "faceage-v4", "faceage-v3", "faceage-v2", "dlib-age-v1"),
    ),
    Handover(
        "0024_register_faceage_v6",
        "0025_register_faceage_v7",
        "faceage-v7",
        ("faceage-v6", "faceage-v5", "faceage-v4", "faceage-v3", "faceage-v2", "dlib-age-v1"),
    ),
    Handover(
        "0025_register_faceage_v7",
        "0026_register_faceage_v8",
        "faceage-v8",
        (
            "faceage-v7",
            "faceage-v6",
            "faceage-v5",
            "faceage-v4",
            "faceage-v3",
            "faceage-v2",
            "dlib-age-v1",
        ),
    ),
]


def latest_migration() -> str:
    """The predictor app's last migration (the leaf of its graph)."""
    from django.db.migrations.loader import MigrationLoader

    (leaf,) = MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes("predictor")
    return leaf[1]


LATEST = latest_migration()


def migrate(name: str):
    target = [("predictor", name)]
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


@pytest.fixture(autouse=True)
def back_to_the_latest():
    """Every test leaves the database migrated to the latest state, even when it fails."""
    yield
    migrate(LATEST)


def active_name(apps) -> str | None:
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    return ModelVersion.objects.filter(is_active=True).values_list("name", flat=True).first()


def installed_before(apps, handover: Handover, active: str) -> None:
    """The registry of an install from before ``handover``: its earlier defaults, ``active``
    serving. (Written here: a test that empties the tables before this one leaves nothing
    behind.)"""
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    ModelVersion.objects.all().delete()
    for name in handover.earlier:
        ModelVersion.objects.create(name=name, artifact=name, is_active=name == active)


@pytest.mark.parametrize(
    ("handover", "old_default"),
    [(handover, old) for handover in HANDOVERS for old in handover.earlier],
    ids=lambda value: value.name if isinstance(value, Handover) else value,
)
def test_an_earlier_default_hands_over(handover, old_default):
    installed_before(migrate(handover.before), handover, active=old_default)
    apps = migrate(handover.after)
    assert active_name(apps) == handover.name
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    assert set(ModelVersion.objects.values_list("name", flat=True)) == {
        *handover.earlier,
        handover.name,
    }


@pytest.mark.parametrize("handover", HANDOVERS, ids=lambda handover: handover.name)
def test_undone_it_gives_the_default_back(handover):
    installed_before(migrate(handover.before), handover, active=handover.previous)
    apps = migrate(handover.after)
    assert active_name(apps) == handover.name
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    assert ModelVersion.objects.filter(name=handover.previous, is_active=False).exists()
    apps = migrate(handover.before)
    assert active_name(apps) == handover.previous
    assert not apps.get_model("predictor", "ModelVersion").objects.filter(name=handover.name)


@pytest.mark.parametrize("handover", HANDOVERS, ids=lambda handover: handover.name)
def test_a_model_staff_promoted_keeps_serving(handover):
    apps = migrate(handover.before)
    installed_before(apps, handover, active="")
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    ModelVersion.objects.create(name="ours", artifact="ours.keras", is_active=True)
    apps = migrate(handover.after)
    assert active_name(apps) == "ours"
    assert apps.get_model("predictor", "ModelVersion").objects.filter(name=handover.name).exists()


def test_faceage_v4_gets_its_refitted_temperature():
    from predictor.models import shipped_version_fields

    card = shipped_version_fields("faceage-v4")
    assert card["temperature"] != 1.3493
    assert card["metrics"]["calibration"]["temperature"] == card["temperature"]
    apps = migrate("0019_register_faceage_v4")
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    # An install that registered faceage-v4 before the refit.
    ModelVersion.objects.filter(name="faceage-v4").delete()
    ModelVersion.objects.create(
        name="faceage-v4", artifact=card["artifact"], temperature=1.3493, metrics={"mae": 5.66}
    )
    apps = migrate(LATEST)
    version = apps.get_model("predictor", "ModelVersion").objects.get(name="faceage-v4")
    assert version.temperature == card["temperature"]
    assert version.metrics == card["metrics"]
    assert version.metrics["calibration"]["after"]["coverage_80"] > 0.78
    # Undone: the old temperature, and metrics without the table that described the new one.
    apps = migrate("0019_register_faceage_v4")
    version = apps.get_model("predictor", "ModelVersion").objects.get(name="faceage-v4")
    assert version.temperature == 1.3493 and "calibration" not in version.metrics
    assert version.metrics["mae"] == card["metrics"]["mae"]


@pytest.mark.parametrize("registered", ["refitted", "absent"])
def test_a_faceage_v4_row_it_did_not_register_is_left_alone(registered):
    from predictor.models import shipped_version_fields

    card = shipped_version_fields("faceage-v4")
    apps = migrate("0019_register_faceage_v4")
    ModelVersion = apps.get_model("predictor", "ModelVersion")
    ModelVersion.objects.filter(name="faceage-v4").delete()
    if registered == "refitted":  # its temperature fitted again on this install's data
        ModelVersion.objects.create(
            name="faceage-v4", artifact=card["artifact"], temperature=2.0, metrics={"x": 1}
        )
    apps = migrate(LATEST)
    rows = apps.get_model("predictor", "ModelVersion").objects.filter(name="faceage-v4")
    if registered == "absent":
        assert not rows.exists()
    else:
        assert rows.get().temperature == 2.0 and rows.get().metrics == {"x": 1}


@pytest.mark.parametrize(
    ("before", "after", "name", "head"),
    [
        ("0023_second_opinion", "0024_register_faceage_v6", "faceage-v6", "descriptor-age-v1"),
        ("0024_register_faceage_v6", "0025_register_faceage_v7", "faceage-v7", "descriptor-age-v2"),
        ("0025_register_faceage_v7", "0026_register_faceage_v8", "faceage-v8", "descriptor-age-v3"),
    ],
)
def test_versions_with_a_second_opinion_are_registered_with_it(before, after, name, head):
    from predictor.models import shipped_version_fields

    migrate(before)  # undone: the version unregistered
    apps = migrate(after)
    version = apps.get_model("predictor", "ModelVersion").objects.get(name=name)
    fields = shipped_version_fields(name)
    assert version.second_opinion == fields["second_opinion"]
    assert set(version.second_opinion) == {"head", "network_weight", "descriptor_weight"}
    assert version.second_opinion["head"] == head
    assert version.artifact == f"shipped:{name}" and version.temperature == fields["temperature"]
