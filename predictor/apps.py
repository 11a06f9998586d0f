from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class PredictorConfig(AppConfig):
    name = "predictor"
    verbose_name = gettext_lazy("Age predictions")

    def ready(self) -> None:
        from predictor import accounts, signals  # noqa: F401  (connects the receivers)
