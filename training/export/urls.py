"""The model card and downloads, at /models/<name>/... beside the model page."""

from django.urls import path

from predictor import converters  # noqa: F401  (registers the model_name converter)
from training.export import views

app_name = "export"

urlpatterns = [
    path("<model_name:name>/card.md", views.model_card, name="model-card"),
    path("<model_name:name>/download/<str:fmt>/", views.model_download, name="model-download"),
]
