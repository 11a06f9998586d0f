from django.urls import path

from predictor import (
    converters,  # noqa: F401  (registers the model_name converter)
    history_export,
    views,
)

app_name = "predictor"

urlpatterns = [
    path("", views.upload, name="upload"),
    path("history/", views.history, name="history"),
    path("history/delete-all/", views.delete_all, name="delete-all"),
    path("history/export.csv", history_export.history_csv, name="history-csv"),
    path("history/export.json", history_export.history_json, name="history-json"),
    path("p/<uuid:prediction_id>/", views.result, name="result"),
    path("batch/<uuid:batch_id>/", views.batch, name="batch"),
    path("p/<uuid:prediction_id>/image.jpg", views.image, name="image"),
    path("p/<uuid:prediction_id>/thumbnail.jpg", views.thumbnail, name="thumbnail"),
    path("p/<uuid:prediction_id>/delete/", views.delete, name="delete"),
    path("p/<uuid:prediction_id>/faces/draw/", views.draw_face, name="draw-face"),
    path("p/<uuid:prediction_id>/faces/<int:index>/chip.jpg", views.face_chip, name="face-chip"),
    path("p/<uuid:prediction_id>/faces/<int:index>/label/", views.label_face, name="label"),
    path(
        "p/<uuid:prediction_id>/faces/<int:index>/label/withdraw/",
        views.withdraw_consent,
        name="withdraw-consent",
    ),
    path("models/<model_name:name>/", views.model_detail, name="model"),
]
