from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = gettext_lazy("Training")

    def ready(self) -> None:
        from training import signals  # noqa: F401 (connects the receivers)
