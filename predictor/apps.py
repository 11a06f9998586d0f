from django.apps import AppConfig


class PredictorConfig(AppConfig):
    name = "predictor"
    verbose_name = "Age predictions"

    def ready(self) -> None:
        from predictor import signals  # noqa: F401  (connects the receivers)
