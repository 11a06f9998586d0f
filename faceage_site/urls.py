from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, reverse_lazy
from django.views import View
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from faceage_site import health
from predictor import account_views
from predictor.accounts import LimitedPasswordResetForm
from predictor.throttling import limit_posts
from training import staff


class SwaggerView(SpectacularSwaggerSplitView):
    """The API docs page. OPTIONS answers as any page's does (200, with ``Allow``): DRF's own
    OPTIONS renders the view's description through the page's template renderer, which has no
    template for it (a 500)."""

    def options(self, request, *args, **kwargs):
        return View.options(self, request, *args, **kwargs)


urlpatterns = [
    path("", include("predictor.urls")),
    path("api/v1/", include("predictor.api.urls")),
    path("training/", include("training.urls")),
    # A model's card and downloads (training.export), beside its page (/models/<name>/).
    path("models/", include("training.export.urls")),
    path("staff/", staff.console, name="staff-console"),
    path("staff/models/<model_name:name>/promote/", staff.promote, name="staff-promote"),
    path("staff/roll-back/", staff.roll_back, name="staff-roll-back"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file of its own (?script), so
    # the page needs no inline script (Content-Security-Policy, settings.py).
    path("api/docs/", SwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/token/", account_views.api_token, name="api-token"),
    path("accounts/signup/", account_views.signup, name="signup"),
    path("accounts/email/confirm/<str:token>/", account_views.confirm_email, name="confirm-email"),
    # Django's password views with this site's templates (the admin keeps its own).
    path(
        "accounts/password/change/",
        auth_views.PasswordChangeView.as_view(
            template_name="accounts/password_change.html",
            success_url=reverse_lazy("password-change-done"),
        ),
        name="password-change",
    ),
    path(
        "accounts/password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="accounts/password_changed.html"),
        name="password-change-done",
    ),
    path(
        "accounts/password/reset/",
        limit_posts("password-reset", "FACEAGE_PASSWORD_RESET_RATE")(
            auth_views.PasswordResetView.as_view(
                form_class=LimitedPasswordResetForm,
                template_name="accounts/password_reset.html",
                email_template_name="accounts/password_reset_email.txt",
                subject_template_name="accounts/password_reset_subject.txt",
                success_url=reverse_lazy("password-reset-sent"),
            )
        ),
        name="password-reset",
    ),
    path(
        "accounts/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_sent.html"),
        name="password-reset-sent",
    ),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="accounts/password_reset_confirm.html",
            success_url=reverse_lazy("password-reset-complete"),
        ),
        name="password-reset-confirm",
    ),
    path(
        "accounts/password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="accounts/password_reset_complete.html"
        ),
        name="password-reset-complete",
    ),
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
