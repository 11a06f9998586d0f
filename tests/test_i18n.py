"""English and Simplified Chinese: every URL of the site, in both languages.

The walk iterates Django's URL resolver, so a page added later without an entry in
``visits_for`` fails ``test_every_url_pattern_is_covered``. Each HTML page must differ
between the two languages and its Chinese rendering must contain Chinese outside the
language switcher; on the site's own pages, no English sentence of the English rendering
may survive into the Chinese one (a string someone forgot to wrap).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from PIL import Image

from predictor.accounts import confirmation_token
from predictor.models import AgeLabel, Batch, Face, ModelVersion, Prediction
from tests import images
from training.models import Dataset, DatasetItem, ModelExport, TrainingRun

pytestmark = pytest.mark.django_db

LANGUAGES = ("en", "zh-hans")
HAN = re.compile(r"[\u3400-\u9fff]")
SWITCHER = re.compile(r'<select name="language" id="language-switcher".*?</select>', re.S)
LOCALE_DIR = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"
ANONYMOUS, USER, STAFF = "anonymous", "user", "staff"


def url_patterns() -> list[tuple[str, str | None]]:
    """Every (route, name) of the site, as the resolver sees them."""

    def walk(patterns, prefix: str, namespace: str | None):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = pattern.namespace or namespace
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                name = f"{namespace}:{pattern.name}" if namespace else pattern.name
                yield prefix + str(pattern.pattern), name

    return list(walk(get_resolver().url_patterns, "", None))


# --- the objects the parameterised pages need ------------------------------------------


@dataclass
class World:
    user: object
    staff: object
    prediction: Prediction
    version: ModelVersion
    dataset: Dataset
    item: DatasetItem
    run: TrainingRun
    token_user_pk: int
    batch: Batch
    export_pk: int = 0
    data_values: set[str] = field(default_factory=set)

    def model_object_pk(self, app: str, model: str):
        """The primary key the admin uses for an object of ``app.model``."""
        objects = {
            ("auth", "user"): self.user.pk,
            ("auth", "group"): self.group_pk,
            ("authtoken", "tokenproxy"): self.token_user_pk,
            ("predictor", "prediction"): self.prediction.pk,
            ("predictor", "face"): self.prediction.faces.first().pk,
            ("predictor", "agelabel"): self.prediction.faces.first().label.pk,
            ("predictor", "modelversion"): self.version.pk,
            ("training", "dataset"): self.dataset.pk,
            ("training", "datasetitem"): self.item.pk,
            ("training", "trainingrun"): self.run.pk,
            ("training", "modelexport"): self.export_pk,
        }
        assert (app, model) in objects, (
            f"admin model {app}.{model} has no test object: add one to World.model_object_pk"
        )
        return objects[(app, model)]


@pytest.fixture
def world(django_user_model, enqueued, django_capture_on_commit_callbacks) -> World:
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    user = django_user_model.objects.create_user("alice", password="correct-horse-9")
    staff = django_user_model.objects.create_superuser("root", password="staff-horse-9")
    version = ModelVersion.active()
    version.metrics = {
        "dataset": "utkface-sample",
        "mae": 5.5,
        "cs5": 0.55,
        "count": 40,
        "mae_children_0_12": 3.1,
        "mae_by_gender": {"female": {"mae": 5.2, "count": 20}},
        "mae_by_decade": {"0-9": {"mae": 3.0, "count": 10}, "10-19": {"mae": 6.0, "count": 30}},
        "scatter": [[10, 12], [30, 28]],
        "baseline": {
            "model_version": version.name,
            "mae": 6.5,
            "cs5": 0.45,
            "count": 40,
            "mae_by_decade": {"0-9": {"mae": 4.0}, "10-19": {"mae": 7.0}},
        },
        "gate": {"active_model": version.name},
        "benchmarks": {
            "utkface-sample": {
                "candidate": {"mae": 5.5, "mae_by_race": {"Asian": {"mae": 5.1, "count": 9}}},
                "active": {"mae": 6.0, "mae_by_race": {"Asian": {"mae": 5.9, "count": 9}}},
            },
            "fairface-val": {
                "candidate": {
                    "accuracy": 0.49,
                    "accuracy_by_gender": {"female": {"accuracy": 0.5, "count": 10}},
                    "accuracy_by_race": {"East Asian": {"accuracy": 0.45, "count": 4}},
                },
                "active": {
                    "accuracy": 0.44,
                    "accuracy_by_gender": {"female": {"accuracy": 0.42, "count": 10}},
                    "accuracy_by_race": {"East Asian": {"accuracy": 0.4, "count": 4}},
                },
            },
        },
    }
    version.save(update_fields=["metrics"])
    client = Client()
    client.force_login(user)
    photo = images.encode(Image.new("RGB", (120, 90), "teal"))
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/", {"image": SimpleUploadedFile("me.jpg", photo, "image/jpeg")})
    prediction = Prediction.objects.get(owner=user)
    batch = Batch.objects.create(owner=user)
    Prediction.objects.filter(pk=prediction.pk).update(batch=batch)
    Face.objects.create(
        prediction=prediction, index=0, left=10, top=10, right=60, bottom=60, age=31.2, age_std=4,
        age_low=27, age_high=36, distribution=[0.0] * 27 + [0.1] * 10 + [0.0] * 64,
        chip_jpeg=images.encode(Image.new("RGB", (64, 64), "grey")),
    )  # fmt: skip
    Prediction.objects.filter(pk=prediction.pk).update(
        status=Prediction.Status.SUCCEEDED, finished_at=timezone.now(), model_version=version
    )
    AgeLabel.give(prediction.faces.get(index=0), user, 33, consent=True)
    dataset = Dataset.objects.create(
        name="utkface-sample", kind=Dataset.Kind.UTKFACE, source="/data/utk", status="succeeded"
    )
    item = DatasetItem.objects.create(
        dataset=dataset, path="30_1_0_x.jpg", age=30, gender="f", group="g1", split="train"
    )
    run = TrainingRun.objects.create(
        dataset=dataset,
        created_by=staff,
        status=TrainingRun.Status.RUNNING,
        stage="training",
        epochs=3,
        epoch=1,
        steps_per_epoch=10,
        step=4,
        history=[{"epoch": 1, "loss": 2.0, "val_loss": 2.2, "mae": 7.0, "val_mae": 7.5}],
        log="prepared 40 chips\ntraining",
        started_at=timezone.now(),
    )
    token = Token.objects.create(user=user)
    world = World(
        user=user,
        staff=staff,
        prediction=Prediction.objects.get(pk=prediction.pk),
        version=version,
        dataset=dataset,
        item=item,
        run=run,
        token_user_pk=token.user_id,
        batch=batch,
    )
    world.group_pk = Group.objects.create(name="reviewers").pk
    world.export_pk = ModelExport.objects.create(
        version=version, key="0123456789abcdef", status="succeeded", attempts=1
    ).pk
    # Values that come from the data, not from the site's strings.
    world.data_values = {
        "me.jpg",
        world.prediction.image.name,
        world.prediction.thumbnail.name,
        *ModelVersion.objects.values_list("name", flat=True),
        dataset.name,
        "fairface-val",
        "a@example.org",  # the address a confirmation link is for
        "0123456789abcdef",  # an export's key
    }
    return world


# --- what to request for each route ----------------------------------------------------


@dataclass
class Visit:
    role: str
    path: str
    method: str = "get"
    statuses: tuple[int, ...] = (200,)
    own_page: bool = True  # rendered by this project's templates: check every string
    third_party: bool = False  # another project's page (Swagger UI, ReDoc): status only
    login_redirect: bool = False  # the answer is a redirect to a login page


def visits_for(route: str, name: str | None, w: World) -> list[Visit] | None:
    """How to exercise one URL pattern; None if nobody taught this test about it."""
    p = w.prediction.pk
    v = w.version.name
    r = w.run.pk
    table: dict[str, list[Visit]] = {
        "": [Visit(ANONYMOUS, "/"), Visit(USER, "/")],
        "history/": [Visit(ANONYMOUS, "/history/"), Visit(USER, "/history/")],
        "history/delete-all/": [Visit(ANONYMOUS, "/history/delete-all/", "post", (302,))],
        "history/export.csv": [Visit(USER, "/history/export.csv")],
        "history/export.json": [Visit(USER, "/history/export.json")],
        "p/<uuid:prediction_id>/": [Visit(USER, f"/p/{p}/")],
        "p/<uuid:prediction_id>/image.jpg": [Visit(USER, f"/p/{p}/image.jpg")],
        "p/<uuid:prediction_id>/thumbnail.jpg": [Visit(USER, f"/p/{p}/thumbnail.jpg")],
        "p/<uuid:prediction_id>/faces/<int:index>/chip.jpg": [
            Visit(USER, f"/p/{p}/faces/0/chip.jpg")
        ],
        # An empty label form: the result page again, with the reason as a message.
        "p/<uuid:prediction_id>/faces/<int:index>/label/": [
            Visit(USER, f"/p/{p}/faces/0/label/", "post", (302,))
        ],
        # Face 0's label (given with consent in the world): withdrawn, back to the history.
        "p/<uuid:prediction_id>/faces/<int:index>/label/withdraw/": [
            Visit(USER, f"/p/{p}/faces/0/label/withdraw/", "post", (302,))
        ],
        # No box drawn: the result page again, with the reason as a message.
        "p/<uuid:prediction_id>/faces/draw/": [Visit(USER, f"/p/{p}/faces/draw/", "post", (302,))],
        # A prediction of nobody's: the delete is a 404 rendered by our error page.
        "p/<uuid:prediction_id>/delete/": [
            Visit(USER, "/p/00000000-0000-0000-0000-000000000000/delete/", "post", (404,))
        ],
        # The active network's page, and the dlib network's: its figures are its calibration's.
        "models/<model_name:name>/": [
            Visit(ANONYMOUS, f"/models/{v}/"),
            Visit(STAFF, f"/models/{v}/"),
            Visit(ANONYMOUS, f"/models/{ModelVersion.BUNDLED_NAME}/"),
        ],
        "batch/<uuid:batch_id>/": [Visit(USER, f"/batch/{w.batch.pk}/")],
        "models/<model_name:name>/card.md": [Visit(ANONYMOUS, f"/models/{v}/card.md")],
        "models/<model_name:name>/download/<str:fmt>/": [
            Visit(ANONYMOUS, f"/models/{v}/download/savedmodel/", statuses=(200, 202, 503))
        ],
        "training/runs/<int:run_id>/": [
            Visit(STAFF, f"/training/runs/{r}/"),
            Visit(USER, f"/training/runs/{r}/", statuses=(302,), login_redirect=True),
        ],
        "training/runs/<int:run_id>/progress.json": [
            Visit(STAFF, f"/training/runs/{r}/progress.json")
        ],
        "training/runs/<int:run_id>/curves.svg": [Visit(STAFF, f"/training/runs/{r}/curves.svg")],
        # Cancelling is tested on a run of its own (see test_training_cancel_in_chinese).
        "training/runs/<int:run_id>/cancel/": [
            Visit(STAFF, "/training/runs/999999/cancel/", "post", (404,))
        ],
        "staff/": [
            Visit(STAFF, "/staff/"),
            Visit(USER, "/staff/", statuses=(302,), login_redirect=True),
        ],
        # Promoting the active version again changes nothing; rolling back swaps twice.
        "staff/models/<model_name:name>/promote/": [
            Visit(STAFF, f"/staff/models/{v}/promote/", "post", (302,))
        ],
        "staff/roll-back/": [Visit(STAFF, "/staff/roll-back/", "post", (302,))],
        "accounts/signup/": [
            Visit(ANONYMOUS, "/accounts/signup/"),
            Visit(USER, "/accounts/signup/", statuses=(302,)),  # has one: to the history
        ],
        # A made-up link (the 400 page that says so), and a real one (the page with a button).
        "accounts/email/confirm/<str:token>/": [
            Visit(ANONYMOUS, "/accounts/email/confirm/made-up/", statuses=(400,)),
            Visit(USER, f"/accounts/email/confirm/{confirmation_token(w.user, 'a@example.org')}/"),
        ],
        "accounts/password/change/": [
            Visit(USER, "/accounts/password/change/"),
            Visit(ANONYMOUS, "/accounts/password/change/", statuses=(302,), login_redirect=True),
        ],
        "accounts/password/change/done/": [Visit(USER, "/accounts/password/change/done/")],
        "accounts/password/reset/": [Visit(ANONYMOUS, "/accounts/password/reset/")],
        "accounts/password/reset/sent/": [Visit(ANONYMOUS, "/accounts/password/reset/sent/")],
        # A made-up link: the page that says it expired.
        "accounts/password/reset/<uidb64>/<token>/": [
            Visit(ANONYMOUS, "/accounts/password/reset/MQ/bad-token/")
        ],
        "accounts/password/reset/complete/": [
            Visit(ANONYMOUS, "/accounts/password/reset/complete/")
        ],
        "accounts/token/": [
            Visit(USER, "/accounts/token/"),
            Visit(ANONYMOUS, "/accounts/token/", statuses=(302,), login_redirect=True),
        ],
        "api/schema/": [Visit(ANONYMOUS, "/api/schema/")],
        # Third-party single-page apps (Swagger UI, ReDoc) with their own English chrome.
        "api/docs/": [Visit(ANONYMOUS, "/api/docs/", third_party=True)],
        "api/redoc/": [Visit(ANONYMOUS, "/api/redoc/", third_party=True)],
        "accounts/login/": [Visit(ANONYMOUS, "/accounts/login/")],
        # Django's "logged out" page (admin's template, translated by Django).
        "accounts/logout/": [Visit(USER, "/accounts/logout/", "post", own_page=False)],
        "healthz": [Visit(ANONYMOUS, "/healthz", statuses=(200, 503))],
        "i18n/setlang/": [Visit(ANONYMOUS, "/i18n/setlang/", "post", (302,))],
        "jsi18n/": [Visit(ANONYMOUS, "/jsi18n/")],
    }
    if route in table:
        return table[route]
    if route.startswith("api/v1/"):
        return api_visits(route, w)
    if route.startswith("admin/"):
        return admin_visits(route, name, w)
    return None


def api_visits(route: str, w: World) -> list[Visit] | None:
    p = w.prediction.pk
    table = {
        "api/v1/^predictions/$": "/api/v1/predictions/",
        "api/v1/^predictions\\.(?P<format>[a-z0-9]+)/?$": "/api/v1/predictions.json",
        "api/v1/^predictions/(?P<pk>[^/.]+)/$": f"/api/v1/predictions/{p}/",
        "api/v1/^predictions/(?P<pk>[^/.]+)\\.(?P<format>[a-z0-9]+)/?$": (
            f"/api/v1/predictions/{p}.json"
        ),
        "api/v1/^models/$": "/api/v1/models/",
        "api/v1/^batches/(?P<pk>[^/.]+)/$": f"/api/v1/batches/{w.batch.pk}/",
        "api/v1/^batches/(?P<pk>[^/.]+)\\.(?P<format>[a-z0-9]+)/?$": (
            f"/api/v1/batches/{w.batch.pk}.json"
        ),
        "api/v1/^models\\.(?P<format>[a-z0-9]+)/?$": "/api/v1/models.json",
        "api/v1/^models/(?P<name>[^/\\x00]+)/$": f"/api/v1/models/{w.version.name}/",
        "api/v1/^models/(?P<name>[^/\\x00]+)\\.(?P<format>[a-z0-9]+)/?$": (
            f"/api/v1/models/{w.version.name}.json"
        ),
        "api/v1/": "/api/v1/",
        "api/v1/<drf_format_suffix:format>": "/api/v1/.json",
    }
    if route in table:
        return [Visit(USER, table[route])]
    deletes = {
        "api/v1/^predictions/all/$": "/api/v1/predictions/all/",
        "api/v1/^predictions/all\\.(?P<format>[a-z0-9]+)/?$": "/api/v1/predictions/all.json",
    }
    if route in deletes:  # an anonymous visitor owns nothing: deleting all is harmless
        return [Visit(ANONYMOUS, deletes[route], "delete", (204,))]
    face_label = "api/v1/^predictions/(?P<pk>[^/.]+)/faces/(?P<index>[0-9]+)/label"
    labels = {
        face_label + "/$": f"/api/v1/predictions/{p}/faces/0/label/",
        face_label + "\\.(?P<format>[a-z0-9]+)/?$": f"/api/v1/predictions/{p}/faces/0/label.json",
    }
    if route in labels:  # an empty label: the 400 in the reader's language
        return [Visit(USER, labels[route], "post", (400,))]
    live = "api/v1/^models/(?P<name>[^/\\x00]+)/live-accuracy"
    staff_only = {
        live + "/$": f"/api/v1/models/{w.version.name}/live-accuracy/",
        live + "\\.(?P<format>[a-z0-9]+)/?$": f"/api/v1/models/{w.version.name}/live-accuracy.json",
    }
    if route in staff_only:
        return [Visit(STAFF, staff_only[route]), Visit(USER, staff_only[route], statuses=(403,))]
    return None


ADMIN_MODEL = re.compile(r"^admin/(\w+)/(\w+)/(.*)$")
PROJECT_APPS = ("predictor", "training")


def admin_visits(route: str, name: str | None, w: World) -> list[Visit] | None:
    fixed = {
        "admin/": "/admin/",
        "admin/login/": None,
        "admin/password_change/": "/admin/password_change/",
        "admin/password_change/done/": "/admin/password_change/done/",
        "admin/jsi18n/": "/admin/jsi18n/",
    }
    if route in fixed:
        if fixed[route] is None:
            return [Visit(ANONYMOUS, "/admin/login/", own_page=False)]
        return [
            Visit(STAFF, fixed[route], own_page=False),
            Visit(ANONYMOUS, fixed[route], statuses=(302,), login_redirect=True),
        ]
    if route == "admin/logout/":
        return [Visit(STAFF, "/admin/logout/", "post", own_page=False)]
    if route == "admin/autocomplete/":
        # No admin uses autocomplete_fields, so every autocomplete query is refused.
        return [Visit(STAFF, "/admin/autocomplete/", statuses=(403,), own_page=False)]
    if route == "admin/r/<path:content_type_id>/<path:object_id>/":
        kind = ContentType.objects.get_for_model(TrainingRun).pk
        return [Visit(STAFF, f"/admin/r/{kind}/{w.run.pk}/", statuses=(302,))]
    if route.startswith("admin/^(?P<app_label>"):
        apps = re.search(r"\(\?P<app_label>([\w|]+)\)", route).group(1).split("|")
        return [Visit(STAFF, f"/admin/{app}/", own_page=False) for app in apps]
    if route == "admin/(?P<url>.*)$":  # the catch-all adds the missing slash
        return [Visit(STAFF, "/admin/predictor/prediction", statuses=(301,), own_page=False)]
    if route == "admin/auth/user/<id>/password/":
        return [Visit(STAFF, f"/admin/auth/user/{w.user.pk}/password/", own_page=False)]
    if route == "admin/training/trainingrun/start/":
        return [
            Visit(STAFF, f"/admin/training/trainingrun/start/?dataset={w.dataset.pk}"),
            Visit(ANONYMOUS, "/admin/training/trainingrun/start/", statuses=(302,),
                  login_redirect=True),
        ]  # fmt: skip
    found = ADMIN_MODEL.match(route)
    if not found:
        return None
    app, model, rest = found.groups()
    base = f"/admin/{app}/{model}/"
    # This project's models get the strict check (their names, fields, choices, actions);
    # auth and authtoken are Django's and DRF's own, translated (or not) upstream.
    ours = app in PROJECT_APPS
    if rest == "":
        return [
            Visit(STAFF, base, own_page=ours),
            Visit(ANONYMOUS, base, statuses=(302,), login_redirect=True),
        ]
    if rest == "add/":
        # Adding a training run is the start form (a redirect); predictions come from uploads.
        return [Visit(STAFF, base + "add/", statuses=(200, 302, 403), own_page=ours)]
    pk = w.model_object_pk(app, model)
    actions = {
        "<path:object_id>/history/": (f"{pk}/history/", (200,)),
        "<path:object_id>/delete/": (f"{pk}/delete/", (200, 403)),
        "<path:object_id>/change/": (f"{pk}/change/", (200,)),
        "<path:object_id>/": (f"{pk}/", (302,)),  # the old URL, redirected to change/
    }
    if rest not in actions:
        return None
    suffix, statuses = actions[rest]
    return [Visit(STAFF, base + suffix, statuses=statuses, own_page=ours)]


# --- looking at what came back -------------------------------------------------------------


class _Text(HTMLParser):
    """The visible text of a page, plus the alt/title/aria-label/placeholder people see.
    Code (``<code>``, ``<pre>``: logs, snippets) and form values (``<textarea>``) are left
    out: they are not prose. Breadcrumb arrows are dropped."""

    SKIPPED = ("script", "style", "code", "pre", "textarea")

    def __init__(self) -> None:
        super().__init__()
        self.pieces: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIPPED:
            self._skip += 1
        for key, value in attrs:
            if key in ("alt", "title", "aria-label", "placeholder") and value:
                self.pieces.append(value)
            if key == "value" and tag == "input" and ("type", "submit") in attrs and value:
                self.pieces.append(value)

    def handle_endtag(self, tag):
        if tag in self.SKIPPED and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        text = " ".join(data.replace("›", " ").split())
        if not self._skip and text:
            self.pieces.append(text)


def visible_text(html: str) -> list[str]:
    parser = _Text()
    parser.feed(SWITCHER.sub("", html))
    return parser.pieces


ENGLISH_PHRASE = re.compile(r"[A-Za-z]{2,}[ ,.:;'-]+[A-Za-z]{2,}")
# Not this project's strings: matplotlib's SVG credit, and strings of Django's admin
# that Django's own Chinese catalogue does not translate yet.
NOT_OURS = re.compile(r"^(Matplotlib v[\d.]+, https://matplotlib\.org/|Model name|Add link|"
                      r"Change or view list link)$")  # fmt: skip


# A row's id (a UUID) is data, not prose; by chance it can hold "dd-bd", which reads as two
# English words to ENGLISH_PHRASE (seen as a flaky failure on the admin's prediction list).
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def untranslated(english: str, chinese: str, data_values: set[str]) -> list[str]:
    """English phrases of the English page that appear unchanged on the Chinese page."""
    zh_pieces = set(visible_text(chinese))
    leftovers = []
    for piece in visible_text(english):
        if piece in data_values or NOT_OURS.match(piece) or UUID.match(piece):
            continue
        if piece in zh_pieces and ENGLISH_PHRASE.search(piece):
            leftovers.append(piece)
    return leftovers


def client_for(role: str, w: World, language: str) -> Client:
    client = Client()
    if role == USER:
        client.force_login(w.user)
    elif role == STAFF:
        client.force_login(w.staff)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    return client


def fetch(visit: Visit, w: World, language: str):
    client = client_for(visit.role, w, language)
    data = {"language": language, "next": "/"} if visit.path == "/i18n/setlang/" else {}
    return (
        getattr(client, visit.method)(visit.path, data)
        if data
        else getattr(client, visit.method)(visit.path)
    )


# --- the tests --------------------------------------------------------------------------------


def test_every_url_pattern_is_covered(world):
    uncovered = [
        f"{route} ({name})"
        for route, name in url_patterns()
        if visits_for(route, name, world) is None
    ]
    assert not uncovered, "pages the i18n walk does not visit: " + ", ".join(uncovered)


def test_every_url_renders_in_both_languages(world, monkeypatch):
    import training.export.views

    # A download of a version not exported yet asks a worker to build it: no broker here.
    monkeypatch.setattr(training.export.views, "request_export", lambda version, key=None: "queued")
    problems: list[str] = []
    visited = 0
    for route, name in url_patterns():
        for visit in visits_for(route, name, world) or []:
            answers = {language: fetch(visit, world, language) for language in LANGUAGES}
            visited += 1
            label = f"{visit.method.upper()} {visit.path} as {visit.role}"
            for language, response in answers.items():
                if response.status_code not in visit.statuses:
                    problems.append(f"{label} [{language}]: {response.status_code}")
                redirected = response.status_code == 302 and response.get("Location", "")
                if visit.login_redirect and redirected and "login" not in redirected:
                    problems.append(f"{label}: redirects to {redirected}")
            english, chinese = answers["en"], answers["zh-hans"]
            if not english.get("Content-Type", "").startswith("text/html"):
                continue
            if visit.third_party or visit.login_redirect or english.status_code in (301, 302):
                continue
            en_html, zh_html = english.content.decode(), chinese.content.decode()
            if '<html lang="zh-hans"' not in zh_html:
                problems.append(f"{label}: the Chinese page does not say lang=zh-hans")
            if SWITCHER.sub("", en_html) == SWITCHER.sub("", zh_html):
                problems.append(f"{label}: the Chinese page is the English page")
            if not HAN.search(SWITCHER.sub("", zh_html)):
                problems.append(f"{label}: no Chinese on the Chinese page")
            if visit.own_page:
                left = untranslated(en_html, zh_html, world.data_values)
                if left:
                    problems.append(f"{label}: untranslated {left}")
    assert visited > 80
    assert not problems, "\n".join(problems)


def test_the_switcher_changes_the_language(client):
    page = client.get("/").content.decode()
    assert '<select name="language" id="language-switcher"' in page
    assert '<label for="language-switcher" ' in page
    # The menu switches by itself (static/js/site.js); the button is the no-script fallback.
    assert page.index('<noscript><button type="submit"') > page.index('id="language-switcher"')
    assert "简体中文" in page and 'action="/i18n/setlang/"' in page
    assert '<html lang="en">' in page
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/history/"})
    assert response.status_code == 302 and response["Location"] == "/history/"
    chinese = client.get("/history/").content.decode()
    assert '<html lang="zh-hans">' in chinese
    assert "你的历史记录" in chinese and "Your history" not in chinese
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert "Your history" in client.get("/history/").content.decode()


def test_the_language_cookie_is_not_sent_on_cross_site_requests(client):
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "zh-hans" and cookie["samesite"] == "Lax"


def test_accept_language_picks_chinese(client):
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5").content.decode()
    assert '<html lang="zh-hans">' in page
    assert "估算年龄" in page
    english = client.get("/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert "Estimate ages" in english and "估算年龄" not in english


def test_api_errors_come_back_in_chinese(api_client, enqueued):
    chinese = {"HTTP_ACCEPT_LANGUAGE": "zh-Hans"}
    missing = api_client.post("/api/v1/predictions/", {}, format="multipart", **chinese)
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "required"
    assert HAN.search(missing.json()["error"]["message"]), missing.json()
    not_found = api_client.get(
        "/api/v1/predictions/00000000-0000-0000-0000-000000000000/", **chinese
    )
    assert not_found.status_code == 404 and HAN.search(not_found.json()["error"]["message"])
    junk = SimpleUploadedFile("x.jpg", b"not an image", "image/jpeg")
    rejected = api_client.post(
        "/api/v1/predictions/", {"image": junk}, format="multipart", **chinese
    )
    assert rejected.status_code == 400
    assert rejected.json()["error"] == {
        "code": "not_an_image",
        "message": "无法将此文件读取为照片。请上传 JPEG、PNG 或 WebP 图片。",
        "field": "image",
    }
    junk = SimpleUploadedFile("x.jpg", b"not an image", "image/jpeg")
    english = api_client.post(
        "/api/v1/predictions/", {"image": junk}, format="multipart", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert "not a photo we can read" in english.json()["error"]["message"]
    unknown_page = api_client.get("/api/v1/no-such-thing/", **chinese)
    assert unknown_page.status_code == 404 and HAN.search(unknown_page.json()["error"]["message"])


def test_rejection_with_values_is_translated_with_them(client):
    tiny = images.encode(Image.new("RGB", (8, 8), "red"), "PNG")
    response = client.post(
        "/",
        {"image": SimpleUploadedFile("tiny.png", tiny, "image/png")},
        HTTP_ACCEPT_LANGUAGE="zh-Hans",
    )
    assert response.status_code == 400
    assert "图片只有 8x8 像素" in response.content.decode()


def test_stored_worker_reasons_are_shown_in_the_readers_language(world):
    from django.utils import translation

    from jobs.messages import render
    from training.messages import RUN_MESSAGES

    Prediction.objects.filter(pk=world.prediction.pk).update(
        status="failed", error_code="too_slow", error_params={"seconds": 60}
    )
    client = client_for(USER, world, "zh-hans")
    body = client.get(f"/api/v1/predictions/{world.prediction.pk}/").json()
    assert body["error"] == {
        "code": "too_slow",
        "message": "估算年龄超过了 60 秒，已被停止。请换一张较小的照片。",
    }
    with translation.override("zh-hans"):
        # A code no catalogue knows (a row from a newer version, say) shows its detail as is.
        assert render(RUN_MESSAGES, "mystery", {"detail": "boom"}) == "boom"
        assert render(RUN_MESSAGES, "failed", {"error": "OSError: x"}) == "训练失败：OSError: x"
    progress = client_for(STAFF, world, "zh-hans").get(
        f"/training/runs/{world.run.pk}/progress.json"
    )
    assert progress.json()["stage_display"] == "训练中"
    assert progress.json()["status_display"] == "运行中"


def test_training_cancel_in_chinese(world):
    client = client_for(STAFF, world, "zh-hans")
    response = client.post(f"/training/runs/{world.run.pk}/cancel/", follow=True)
    assert response.status_code == 200
    assert "正在取消" in response.content.decode()


def test_times_are_relative_with_the_exact_time_on_hover(world):
    html = client_for(USER, world, "zh-hans").get("/history/").content.decode()
    found = re.search(r'<time datetime="([^"]+)" title="([^"]+)">([^<]+)</time>', html)
    assert found, "the history shows a <time> element"
    iso, exact, relative = found.groups()
    assert iso.startswith(str(world.prediction.created_at.year))
    assert str(world.prediction.created_at.year) in exact and HAN.search(exact)
    assert HAN.search(relative) and relative != exact
    english = client_for(USER, world, "en").get(f"/p/{world.prediction.pk}/").content.decode()
    assert re.search(r'<time datetime="[^"]+" title="[^"]+">(now|\d+\xa0\w+ ago)</time>', english)


def test_the_translation_catalogues_are_complete():
    for domain in ("django", "djangojs"):
        text = (LOCALE_DIR / f"{domain}.po").read_text(encoding="utf-8")
        entries = text.split("\n\n")[1:]  # the first is the header
        assert entries, f"{domain}.po has no messages"
        for entry in entries:
            assert "#, fuzzy" not in entry and not re.search(r"^#,.*\bfuzzy\b", entry, re.M), (
                f"fuzzy entry in {domain}.po:\n{entry}"
            )
            if entry.lstrip().startswith("#~"):
                continue  # obsolete, not compiled
            strings = re.findall(r'^msgstr(?:\[\d+\])? "(.*)"((?:\n".*")*)', entry, re.M)
            assert strings, f"no msgstr in {domain}.po:\n{entry}"
            for first, rest in strings:
                assert first or rest.strip('\n"'), f"untranslated entry in {domain}.po:\n{entry}"


def test_the_javascript_catalogue_is_chinese(client):
    script = client.get("/jsi18n/", HTTP_ACCEPT_LANGUAGE="zh-Hans").content.decode()
    assert "\\u6b63\\u5728\\u4e0a\\u4f20" in script or "正在上传" in script  # "Uploading…"


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext (xgettext) is absent")
def test_the_catalogues_hold_every_string_of_the_source(tmp_path):
    """makemessages run afresh over the source finds no message the .po files lack: a string
    wrapped for translation but never added to locale/ fails here."""
    source = Path(settings.BASE_DIR)
    copy = tmp_path / "site"
    for folder in (
        "faceage_site",
        "jobs",
        "predictor",
        "training",
        "devstack",
        "templates",
        "static",
    ):
        shutil.copytree(
            source / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__", "*.mo")
        )
    shutil.copy(source / "manage.py", copy / "manage.py")
    (copy / "locale").mkdir()
    domains = {"django": ["-e", "html,txt,py,md"], "djangojs": []}
    for domain, extensions in domains.items():
        subprocess.run(
            [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "-d", domain,
             "--no-location", *extensions],
            cwd=copy, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(copy)},
        )  # fmt: skip
        fresh = msgids((copy / "locale/zh_Hans/LC_MESSAGES" / f"{domain}.po").read_text("utf-8"))
        kept = msgids((LOCALE_DIR / f"{domain}.po").read_text(encoding="utf-8"))
        missing = sorted(fresh - kept)
        assert not missing, f"not in locale/zh_Hans/LC_MESSAGES/{domain}.po: {missing}"


def msgids(po_text: str) -> set[str]:
    """The msgids of a .po file (obsolete ones excluded), with continuation lines joined."""
    found = set()
    for entry in po_text.split("\n\n"):
        lines = [line for line in entry.splitlines() if not line.startswith("#")]
        text, inside = "", False
        for line in lines:
            if line.startswith("msgid "):
                inside, text = True, json.loads(line[6:])
            elif line.startswith('"') and inside:
                text += json.loads(line)
            else:
                inside = False
        if text:
            found.add(text)
    return found


def test_rate_limit_messages_are_translated(settings, client, api_client, enqueued):
    settings.FACEAGE_UPLOAD_RATE = "1/minute"
    photo = images.encode(Image.new("RGB", (120, 90), "teal"))
    chinese = {"HTTP_ACCEPT_LANGUAGE": "zh-Hans"}

    def upload(poster, **extra):
        image = SimpleUploadedFile("me.jpg", photo, "image/jpeg")
        return poster("/api/v1/predictions/", {"image": image}, **extra)

    assert upload(api_client.post, format="multipart", **chinese).status_code == 202
    limited = upload(api_client.post, format="multipart", **chinese)
    assert limited.status_code == 429 and HAN.search(limited.json()["error"]["message"])
    form = client.post("/", {"image": SimpleUploadedFile("me.jpg", photo, "image/jpeg")})
    assert form.status_code == 429  # the form shares the API's counter for this address
    limited_page = client.post(
        "/", {"image": SimpleUploadedFile("me.jpg", photo, "image/jpeg")}, **chinese
    )
    assert limited_page.status_code == 429 and "上传过于频繁" in limited_page.content.decode()


def test_the_compiled_catalogues_are_current():
    """The pages read the .mo files: `make` compiles them (manage.py compilemessages)."""
    for domain in ("django", "djangojs"):
        po, mo = LOCALE_DIR / f"{domain}.po", LOCALE_DIR / f"{domain}.mo"
        assert mo.exists(), f"{mo} is missing: run manage.py compilemessages (make does)"
        assert mo.stat().st_mtime >= po.stat().st_mtime, f"{mo} is older than {po.name}: recompile"


def test_gender_names_on_the_model_page_and_card_are_translated(world):
    name = ModelVersion.active().name
    client = client_for(USER, world, "zh-hans")
    page = client.get(f"/models/{name}/").content.decode()
    assert "女性：" in page and "female" not in page
    english = client_for(USER, world, "en").get(f"/models/{name}/").content.decode()
    assert "female: MAE 5.20" in english
    card = client.get(f"/models/{name}/card.md").content.decode()
    assert "| 女性 |" in card and "female" not in card
