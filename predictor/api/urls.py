from rest_framework.routers import DefaultRouter

from predictor.api.views import ModelVersionViewSet, PredictionViewSet

app_name = "api"

router = DefaultRouter()
router.register("predictions", PredictionViewSet, basename="prediction")
router.register("models", ModelVersionViewSet, basename="model")

urlpatterns = router.urls
