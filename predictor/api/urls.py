from rest_framework.routers import DefaultRouter

from predictor.api.batches import BatchViewSet
from predictor.api.views import ModelVersionViewSet, PredictionViewSet

app_name = "api"

router = DefaultRouter()
router.register("predictions", PredictionViewSet, basename="prediction")
router.register("models", ModelVersionViewSet, basename="model")
router.register("batches", BatchViewSet, basename="batch")

urlpatterns = router.urls
