"""History as CSV and JSON, for its owner only (issue 11, item 4)."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.base import ContentFile

from predictor.models import AgeLabel, Face, ModelVersion, Prediction

pytestmark = pytest.mark.django_db


def photo(owner, name: str, faces: list[tuple[float, int, int]], **fields) -> Prediction:
    prediction = Prediction(
        owner=owner, original_name=name, status=Prediction.Status.SUCCEEDED,
        model_version=ModelVersion.active(), **fields,
    )  # fmt: skip
    prediction.image.save("p.jpg", ContentFile(b"\xff\xd8x"), save=False)
    prediction.save()
    for index, (age, low, high) in enumerate(faces):
        Face.objects.create(prediction=prediction, index=index, left=1, top=2, right=30, bottom=40,
                            age=age, age_std=4, age_low=low, age_high=high)  # fmt: skip
    return prediction


def test_csv_has_a_row_per_face_and_json_an_object_per_photo(client, user, other_user):
    family = photo(user, "family.jpg", [(31.26, 25, 38), (8.4, 6, 11)])
    AgeLabel.give(family.faces.get(index=1), user, 9, consent=False)
    photo(user, "=HYPERLINK(evil).jpg", [])  # a name a spreadsheet would run
    photo(other_user, "someone-else.jpg", [(50.0, 44, 57)])
    client.force_login(user)
    page = client.get("/history/").content.decode()
    assert 'href="/history/export.csv"' in page and 'href="/history/export.json"' in page

    response = client.get("/history/export.csv")
    assert response["Content-Disposition"] == 'attachment; filename="faceage-history.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["file_name"], r["face"], r["age"], r["real_age"]) for r in rows] == [
        ("'=HYPERLINK(evil).jpg", "", "", ""),  # newest first; escaped; no face: one row
        ("family.jpg", "1", "31.3", ""),
        ("family.jpg", "2", "8.4", "9"),
    ]
    assert rows[1]["age_low"] == "25" and rows[1]["age_high"] == "38"
    assert rows[1]["model_version"] == ModelVersion.DEFAULT_NAME

    data = client.get("/history/export.json").json()
    assert [p["file_name"] for p in data["photos"]] == ["=HYPERLINK(evil).jpg", "family.jpg"]
    faces = data["photos"][1]["faces"]
    assert faces[1] == {"face": 2, "box": [1, 2, 30, 40], "age": 8.4, "age_low": 6,
                        "age_high": 11, "real_age": 9}  # fmt: skip
    assert "someone-else" not in response.content.decode() + str(data)


def test_a_visitor_without_an_account_gets_their_sessions_history(client):
    assert client.get("/history/export.json").json() == {"photos": []}
    assert list(csv.reader(io.StringIO(client.get("/history/export.csv").content.decode()))) == [
        ["uploaded_at", "file_name", "status", "face", "age", "age_low", "age_high",
         "real_age", "model_version", "error"],
    ]  # fmt: skip
