"""Model export: SavedModel and TFLite give the served ages; the downloads and the card."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests.datasets import sample_utkface

STEM = "dlib-age-v1"


@pytest.fixture(scope="module", params=["bundled", "fine-tuned"])
def network(request, tmp_path_factory):
    """The bundled network (81 classes), and a training run's (101 classes, a calibration
    temperature), stored as ``.keras`` and loaded the way a worker loads it."""
    from predictor.vision.age_network import AgeNetwork

    if request.param == "bundled":
        return AgeNetwork.bundled()
    from training.pipeline.fit import CLASS_AGES, build_training_model

    path = tmp_path_factory.mktemp("fine-tuned") / "run.keras"
    AgeNetwork(build_training_model("bundled"), CLASS_AGES).save(path)
    loaded = AgeNetwork.from_keras_file(path)
    loaded.temperature = 1.7
    return loaded


@pytest.fixture(scope="module")
def chips(utkface_dir: Path) -> np.ndarray:
    """``(6, 64, 64, 3)`` uint8 chips aligned by the worker's own aligner from UTKFace photos."""
    from predictor.vision.alignment import FaceAligner
    from predictor.vision.face_detection import FaceBox

    aligner = FaceAligner()
    faces = [np.asarray(Image.open(path).convert("RGB")) for path in sample_utkface(6, seed=5)]
    boxes = [FaceBox(0, 0, face.shape[1], face.shape[0], 0.0, "whole") for face in faces]
    return np.stack([aligner.align(face, box) for face, box in zip(faces, boxes, strict=True)])


@pytest.fixture(scope="module")
def built(network, tmp_path_factory) -> dict:
    """Both exports of the bundled model, built once for the module, and unzipped."""
    from training.export.build import random_check_chips, write_exports

    directory = tmp_path_factory.mktemp("exports")
    report = write_exports(network, directory, STEM, "# card\n", random_check_chips())
    unzipped = tmp_path_factory.mktemp("unzipped")
    for name in (f"{STEM}-savedmodel.zip", f"{STEM}-tflite.zip"):
        with zipfile.ZipFile(directory / name) as archive:
            archive.extractall(unzipped)
    return {"directory": directory, "unzipped": unzipped, "report": report}


def test_savedmodel_gives_the_served_ages(network, chips, built):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(built["unzipped"] / f"{STEM}-savedmodel" / "saved_model"))
    outputs = loaded.signatures["serving_default"](chips=tf.constant(chips))
    served = network.predict(chips)
    ages = outputs["expected_age"].numpy()
    assert ages.shape == (len(chips),)
    np.testing.assert_allclose(ages, served.ages, atol=0.01)
    np.testing.assert_allclose(outputs["age_std"].numpy(), served.age_std, atol=0.01)
    np.testing.assert_allclose(
        outputs["age_probabilities"].numpy(), served.probabilities, atol=1e-4
    )
    # Real faces of different people: the check would catch a constant output.
    assert np.ptp(served.ages) > 5


def test_tflite_gives_the_served_ages(network, chips, built):
    from ai_edge_litert.interpreter import Interpreter

    path = built["unzipped"] / f"{STEM}-tflite" / f"{STEM}.tflite"
    interpreter = Interpreter(model_path=str(path))
    (signature,) = interpreter.get_signature_list().items()
    assert signature[0] == "serving_default"
    assert signature[1]["inputs"] == ["chips"]
    assert set(signature[1]["outputs"]) == {"age_probabilities", "age_std", "expected_age"}
    runner = interpreter.get_signature_runner("serving_default")
    (details,) = runner.get_input_details().values()
    assert details["dtype"] == np.uint8
    assert list(details["shape_signature"]) == [-1, 64, 64, 3]
    outputs = runner(chips=chips)
    served = network.predict(chips)
    np.testing.assert_allclose(outputs["expected_age"], served.ages, atol=0.01)
    np.testing.assert_allclose(outputs["age_probabilities"], served.probabilities, atol=1e-4)


def test_downloads_hold_the_card_and_the_signature(network, built):
    for fmt in ("savedmodel", "tflite"):
        with zipfile.ZipFile(built["directory"] / f"{STEM}-{fmt}.zip") as archive:
            names = set(archive.namelist())
            assert f"{STEM}-{fmt}/MODEL_CARD.md" in names
            assert archive.read(f"{STEM}-{fmt}/MODEL_CARD.md") == b"# card\n"
            signature = json.loads(archive.read(f"{STEM}-{fmt}/signature.json"))
        assert signature["inputs"]["chips"]["shape"] == [None, 64, 64, 3]
        assert signature["inputs"]["chips"]["dtype"] == "uint8"
        assert signature["class_ages"] == [float(age) for age in network.class_ages]
        assert signature["calibration_temperature"] == pytest.approx(network.temperature)
    # The build checked its own parity before writing anything.
    assert set(built["report"]["parity"]) == {"savedmodel", "tflite"}
    assert max(built["report"]["parity"].values()) <= 0.01


def test_a_mismatching_export_is_refused(network, chips):
    from training.export import ExportError
    from training.export.build import check_parity

    def off_by_a_bit(batch):
        return {"expected_age": network.predict(batch).ages + 0.02}

    with pytest.raises(ExportError, match="differs from the served model"):
        check_parity(network, {"fake": off_by_a_bit}, chips)


# --- Views, card, task (database) -------------------------------------------------------


@pytest.fixture
def bundled(db):
    from predictor.models import ModelVersion

    return ModelVersion.ensure_bundled()


@pytest.fixture
def trained(db):
    """A fine-tuned version with metrics as training.runner records them, and its dataset."""
    from predictor.models import ModelVersion
    from training.models import Dataset, DatasetItem

    dataset = Dataset.objects.create(
        name="utk-small",
        kind=Dataset.Kind.UTKFACE,
        source="/data/utk",
        status="succeeded",
        report={"kept": 5, "dropped": {"unreadable_name": 2, "bad_age": 1}},
    )
    for i, split in enumerate(["train", "train", "train", "val", "test"]):
        DatasetItem.objects.create(
            dataset=dataset, path=f"{i}.jpg", age=20 + i, gender="male", group=str(i), split=split
        )
    return ModelVersion.objects.create(
        name="utk-small-run7",
        artifact="models/utk-small-run7.keras",
        description_code="fine_tuned",
        description_params={"init": "bundled", "dataset": "utk-small", "run": 7},
        metrics={
            "dataset": "utk-small",
            "split": "test",
            "count": 55,
            "mae": 6.25,
            "cs5": 0.5,
            "mae_children_0_12": 4.5,
            "mae_by_decade": {
                "0-9": {"mae": 3.0, "count": 20},
                "20-29": {"mae": 5.5, "count": 25},
                "70-79": {"mae": 12.75, "count": 10},
            },
            "mae_by_gender": {
                "male": {"mae": 6.0, "count": 22},
                "female": {"mae": 6.5, "count": 18},
            },
            "training": {"epochs_run": 3, "best_epoch": 2, "train_images": 3},
        },
    )


def test_card_lists_data_metrics_by_decade_and_gender_and_intended_use(client, trained):
    response = client.get(f"/models/{trained.name}/card.md")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    card = response.content.decode()
    assert "# Model card: utk-small-run7" in card
    assert "“utk-small”" in card
    assert "| train | 3 |" in card and "| val | 1 |" in card and "| test | 1 |" in card
    assert "3 files were dropped at import" in card
    assert "| 70-79 | 12.75 | 10 |" in card
    assert "| female | 6.50 | 18 |" in card
    assert "| Mean absolute error (years) | 6.25 |" in card
    # 70-79 has the largest error but only 10 faces: not singled out.
    assert "it is largest for ages 20-29 (MAE 5.50 years) and smallest for 0-9" in card
    assert "legal age verification" in card and "identifying" in card
    assert "non-commercial research only" in card  # fine-tuning data terms
    assert "(N, 101)" in card


def test_bundled_card_uses_the_baseline_a_training_run_measured(client, bundled, trained):
    from training.export.files import export_files
    from training.models import Dataset, TrainingRun

    card = client.get(f"/models/{bundled.name}/card.md").content.decode()
    assert "No test-split evaluation is recorded" in card
    assert "110,000" in card and "CC0" in card and "(N, 81)" in card

    before = export_files(bundled).key
    TrainingRun.objects.create(
        dataset=Dataset.objects.get(name="utk-small"),
        status="succeeded",
        baseline_metrics={
            "model_version": bundled.name,
            "count": 40,
            "mae": 7.5,
            "cs5": 0.4,
            "mae_by_decade": {"30-39": {"mae": 6.0, "count": 40}},
            "mae_by_gender": {"female": {"mae": 7.25, "count": 40}},
        },
    )
    card = client.get(f"/models/{bundled.name}/card.md").content.decode()
    assert "evaluated this model as its baseline" in card
    # The card inside the downloads changed, so the exports are built again.
    assert export_files(bundled).key != before
    assert "| 30-39 | 6.00 | 40 |" in card and "| female | 7.25 | 40 |" in card


def test_model_page_shows_the_card_and_the_download_links(client, trained):
    trained.description = "<script>alert(1)</script>"
    trained.save()
    html = client.get(f"/models/{trained.name}/").content.decode()
    assert f'href="/models/{trained.name}/download/savedmodel/"' in html
    assert f'href="/models/{trained.name}/download/tflite/"' in html
    assert f'href="/models/{trained.name}/card.md"' in html
    assert "<td>12.75</td>" in html  # the card's decade table, as HTML
    # The page's card is its own template (no Markdown parsed): code as code, no backticks.
    card = html[html.index('<details class="model-card"') : html.index("</details>")]
    assert "<code>serving_default</code>" in card and "`" not in card
    assert "<h3>Training data</h3>" in card and "| " not in card
    assert "Not intended for:" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert "built on first request" in html
    assert "aligned 64×64 RGB face chips" in html
    # A network that reads 96 px chips says so: the page names the side its version records.
    trained.metrics["training"]["chip_size"] = 96
    trained.save()
    html = client.get(f"/models/{trained.name}/").content.decode()
    assert "aligned 96×96 RGB face chips" in html and "64×64" not in html


def test_download_starts_a_build_once_and_says_it_is_being_prepared(client, bundled, monkeypatch):
    from training.export import tasks as export_tasks
    from training.models import ModelExport

    sent = []
    monkeypatch.setattr(
        export_tasks.build_model_export, "apply_async", lambda args, **kw: sent.append((args, kw))
    )
    first = client.get(f"/models/{bundled.name}/download/tflite/")
    assert first.status_code == 202
    assert first["Retry-After"] == "15"
    assert "being built" in first.content.decode()
    second = client.get(f"/models/{bundled.name}/download/savedmodel/")
    assert second.status_code == 202
    row = ModelExport.objects.get(version=bundled)  # the build's job row
    assert sent == [([bundled.pk, row.pk], {"queue": "inference"})]  # one build for both formats


def test_download_when_the_broker_is_down_says_so(client, bundled, monkeypatch):
    from training.export import tasks as export_tasks

    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(export_tasks.build_model_export, "apply_async", refuse)
    response = client.get(f"/models/{bundled.name}/download/tflite/")
    assert response.status_code == 503
    assert "cannot be reached" in response.content.decode()


def test_unknown_version_or_format_is_404(client, bundled):
    assert client.get("/models/no-such-model/card.md").status_code == 404
    assert client.get("/models/no-such-model/download/tflite/").status_code == 404
    assert client.get(f"/models/{bundled.name}/download/onnx/").status_code == 404
    assert client.post(f"/models/{bundled.name}/download/tflite/").status_code == 405


def test_task_builds_the_downloads_and_the_views_serve_them(client, bundled, media_root):
    """The Celery task, run in this process: a real build, then real downloads."""
    from training.export.files import export_files
    from training.export.tasks import build_model_export

    build_model_export.run(bundled.pk)
    files = export_files(bundled)
    assert files.ready()
    # Saved through the exports storage: by default, files under MEDIA_ROOT/exports.
    stored = {
        fmt: Path(files.storage.path(files.stored_name(fmt))) for fmt in ("savedmodel", "tflite")
    }
    assert all(
        path.is_file() and path.is_relative_to(media_root / "exports") for path in stored.values()
    )

    html = client.get(f"/models/{bundled.name}/").content.decode()
    assert "The downloads are ready." in html
    for fmt in ("savedmodel", "tflite"):
        response = client.get(f"/models/{bundled.name}/download/{fmt}/")
        assert response.status_code == 200
        assert response["Content-Type"] == "application/zip"
        assert f'filename="{STEM}-{fmt}.zip"' in response["Content-Disposition"]
        body = b"".join(response.streaming_content)
        target = media_root / f"download-{fmt}.zip"
        target.write_bytes(body)
        with zipfile.ZipFile(target) as archive:
            card = archive.read(f"{STEM}-{fmt}/MODEL_CARD.md").decode()
            signature = json.loads(archive.read(f"{STEM}-{fmt}/signature.json"))
        assert "# Model card: dlib-age-v1" in card and "legal age verification" in card
        # The served calibration travels with the export.
        assert signature["calibration_temperature"] == pytest.approx(bundled.temperature)
        assert f"T = {bundled.temperature:.4f}" in card

    # Built once: a second run finds the files and does not rebuild them.
    mtime = stored["tflite"].stat().st_mtime_ns
    build_model_export.run(bundled.pk)
    assert stored["tflite"].stat().st_mtime_ns == mtime
    assert sorted(path.name for path in (media_root / "exports").iterdir()) == sorted(
        [stored["savedmodel"].name, stored["tflite"].name, f"v{bundled.pk}-{files.key}.json"]
    )


def test_a_failed_build_is_reported_and_not_retried_at_once(
    client, bundled, monkeypatch, admin_user
):
    from training.export import tasks as export_tasks
    from training.export.files import export_files

    def broken(version):
        raise RuntimeError("weights file unreadable")

    monkeypatch.setattr("predictor.serving.load_network", broken)
    export_tasks.build_model_export.run(bundled.pk)
    assert not export_files(bundled).ready()

    sent = []
    monkeypatch.setattr(
        export_tasks.build_model_export, "apply_async", lambda *a, **kw: sent.append(a)
    )
    response = client.get(f"/models/{bundled.name}/download/savedmodel/")
    assert response.status_code == 503
    assert "Building the export failed." in response.content.decode()
    assert "weights file unreadable" not in response.content.decode()  # may name server paths
    assert sent == []
    page = client.get(f"/models/{bundled.name}/").content.decode()
    assert "Preparing the downloads failed; it is tried again later." in page

    client.force_login(admin_user)  # staff see the reason
    response = client.get(f"/models/{bundled.name}/download/savedmodel/")
    assert response.status_code == 503
    assert "RuntimeError: weights file unreadable" in response.content.decode()
    assert "weights file unreadable" in client.get(f"/models/{bundled.name}/").content.decode()
    assert sent == []


def test_export_command_rejects_an_unknown_version(bundled):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="no model version 'nope'"):
        call_command("export_model", "nope")


def test_api_lists_card_and_download_urls(api_client, bundled):
    results = api_client.get("/api/v1/models/").json()["results"]
    item = next(model for model in results if model["name"] == bundled.name)
    assert item["card_url"] == "http://testserver/models/dlib-age-v1/card.md"
    assert item["download_urls"] == {
        "savedmodel": "http://testserver/models/dlib-age-v1/download/savedmodel/",
        "tflite": "http://testserver/models/dlib-age-v1/download/tflite/",
    }


WEB_SCRIPT = r"""
import json, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.test import Client
client = Client()
statuses = [
    client.get(path).status_code
    for path in (
        "/models/dlib-age-v1/",
        "/models/dlib-age-v1/card.md",
        "/models/dlib-age-v1/download/tflite/",
        "/api/v1/models/",
    )
]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "dlib"))
print(json.dumps({"statuses": statuses, "heavy": heavy}))
"""


def test_the_web_process_serves_cards_and_downloads_without_tensorflow(tmp_path):
    import os
    import subprocess
    import sys

    from tests.datasets import REPO_ROOT

    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="faceage_site.settings",
        FACEAGE_VAR_DIR=str(tmp_path),
        REDIS_URL=f"redis+socket://{tmp_path}/absent.sock",  # no broker: 503, not 500
    )
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", WEB_SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"statuses": [200, 200, 503, 200], "heavy": []}


def fake_build(monkeypatch):
    """build_exports without TensorFlow: two small zips where write_exports puts them."""
    from training.export import build

    def write(network, directory, stem, card, chips):
        for fmt in ("savedmodel", "tflite"):
            (directory / f"{stem}-{fmt}.zip").write_bytes(b"PK zip of " + fmt.encode())
        return {"parity": {}, "bytes": {}}

    monkeypatch.setattr(build, "write_exports", write)
    monkeypatch.setattr(
        "predictor.serving.load_network", lambda version: SimpleNamespace(chip_size=64)
    )
    return build


def test_a_storage_that_fails_while_publishing_leaves_no_half_export(
    client, bundled, media_root, monkeypatch
):
    from training.export import ExportError
    from training.export.files import export_files

    build = fake_build(monkeypatch)
    storage = export_files(bundled).storage
    real_save, calls = storage.save, []

    def full_disk(name, content, **kwargs):
        calls.append(name)
        if len(calls) % 2 == 0:  # the second zip of each build
            raise OSError(28, "No space left on device")
        return real_save(name, content, **kwargs)

    monkeypatch.setattr(type(storage), "save", lambda self, *a, **kw: full_disk(*a, **kw))
    with pytest.raises(ExportError, match="No space left on device"):
        build.build_exports(bundled)
    files = export_files(bundled)
    assert not files.ready()
    assert list((media_root / "exports").iterdir()) == []  # the first zip was removed again

    # Through the build task, the failure is recorded on the export's job row, where the
    # page and the back-off see it.
    from training.export.tasks import build_model_export, export_row

    build_model_export.run(bundled.pk)
    row = export_row(bundled)
    assert row.status == "failed" and row.error_code == "export_failed"
    assert "No space left on device" in row.error_message


def test_an_export_whose_zip_went_missing_is_built_again(client, bundled, monkeypatch):
    from training.export import tasks as export_tasks
    from training.export.files import export_files
    from training.models import ModelExport

    build = fake_build(monkeypatch)
    files = build.build_exports(bundled)
    assert files.ready()
    assert client.get(f"/models/{bundled.name}/download/tflite/").status_code == 200
    files.storage.delete(files.stored_name("tflite"))  # lost behind our back

    sent = []
    monkeypatch.setattr(
        export_tasks.build_model_export, "apply_async", lambda args, **kw: sent.append(args)
    )
    assert not export_files(bundled).ready()
    response = client.get(f"/models/{bundled.name}/download/tflite/")
    assert response.status_code == 202  # being built again, not a dead 404
    row = ModelExport.objects.get(version=bundled)
    assert sent == [[bundled.pk, row.pk]] and row.status == "queued"


def test_a_version_with_a_second_opinion_exports_its_network_alone(db, media_root):
    """faceage-v8, the default: the exports hold faceage-v5's network (the build checks them
    against it, not against the mix), and the card inside says the second opinion is not in
    them."""
    from predictor.models import ModelVersion
    from training.export.files import export_files
    from training.export.tasks import build_model_export

    version = ModelVersion.active()
    assert version.second_opinion
    build_model_export.run(version.pk)
    files = export_files(version)
    assert files.ready()
    stored = Path(files.storage.path(files.stored_name("tflite")))
    with zipfile.ZipFile(stored) as archive:
        (card_name,) = [name for name in archive.namelist() if name.endswith("MODEL_CARD.md")]
        card = archive.read(card_name).decode()
    assert "faceage serves this network with a second opinion" in card
    assert "The exports hold the age network alone, without the second opinion." in card
    # A changed second opinion is a changed card: the exports are built again.
    key = files.key
    version.second_opinion = {**version.second_opinion, "network_weight": 1.0}
    assert export_files(version).key != key
