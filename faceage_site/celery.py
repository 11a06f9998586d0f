"""The Celery application. Configuration comes from Django settings (CELERY_*)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")

app = Celery("faceage")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Task modules other than tasks.py (predictor/export_tasks.py: model downloads).
app.autodiscover_tasks(related_name="export_tasks")
