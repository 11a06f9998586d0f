"""The model card and downloads, at /models/<name>/... beside the model page."""

from django.urls import path

from training.export import views

app_name = "export"

urlpatterns = [
    path("<str:name>/card.md", views.model_card, name="model-card"),
    path("<str:name>/download/<str:fmt>/", views.model_download, name="model-download"),
]
