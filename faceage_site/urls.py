from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from faceage_site import health
from predictor import account_views
from training import staff

urlpatterns = [
    path("", include("predictor.urls")),
    path("api/v1/", include("predictor.api.urls")),
    path("training/", include("training.urls")),
    path("staff/", staff.console, name="staff-console"),
    path("staff/models/<str:name>/promote/", staff.promote, name="staff-promote"),
    path("staff/roll-back/", staff.roll_back, name="staff-roll-back"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file of its own (?script), so
    # the page needs no inline script (Content-Security-Policy, settings.py).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/token/", account_views.api_token, name="api-token"),
    path("healthz", health.healthz, name="healthz"),
    # The language switcher posts to i18n/setlang/; scripts read their strings from jsi18n/.
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("admin/", admin.site.urls),
]

handler400 = "faceage_site.errors.bad_request"
handler403 = "faceage_site.errors.permission_denied"
handler404 = "faceage_site.errors.not_found"
handler500 = "faceage_site.errors.server_error"
