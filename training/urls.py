from django.urls import path

from training import views

app_name = "training"

urlpatterns = [
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/progress.json", views.run_progress, name="run-progress"),
    path("runs/<int:run_id>/curves.svg", views.run_curves, name="run-curves"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
]
