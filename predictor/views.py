"""HTML pages: upload, result, history, and the owner-checked image views."""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from jobs import lifecycle
from predictor.archives import BatchRejected, collect_batch_files, create_batch, is_archive
from predictor.drawn_boxes import (
    ALREADY_A_FACE,
    MAX_DRAWN_BOXES,
    BoxesRejected,
    first_same_face,
    fit_boxes,
    parse_boxes,
)
from predictor.forms import AgeLabelForm, UploadForm
from predictor.messages import rejection_message
from predictor.models import (
    FACES_CHANGED,
    AgeLabel,
    Batch,
    ModelVersion,
    PhotoNotFinished,
    Prediction,
)
from predictor.tasks import enqueue_prediction
from predictor.throttling import UploadRateThrottle, admits, too_many_requests
from predictor.uploads import create_prediction
from predictor.vision.image_loading import ImageRejected

HISTORY_PAGE_SIZE = 12
BOX_NEEDED = gettext_noop("Draw one box around the face, then press Estimate.")


def _own_prediction(request: HttpRequest, prediction_id) -> Prediction:
    return get_object_or_404(Prediction.objects.owned_by(request), pk=prediction_id)


def _api_token_user(request: HttpRequest) -> None:
    """Let an API client fetch its own images (``image_url``, ``chip_url``) with the same
    ``Authorization: Token …`` header it uploads with; a browser's session works as before.
    A wrong token is simply no one: the image is then nobody's to see (404)."""
    if request.user.is_authenticated or not request.headers.get("Authorization"):
        return
    from rest_framework.exceptions import AuthenticationFailed

    from predictor.api.authentication import TokenAuthentication

    try:
        found = TokenAuthentication().authenticate(request)  # type: ignore[arg-type]  # reads META
    except AuthenticationFailed:
        return
    if found is not None:
        request.user = found[0]


@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    status = 200
    if request.method == "POST":
        throttle = UploadRateThrottle()
        if not admits(throttle, request):
            return _too_many_uploads(request, throttle)
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            files = form.cleaned_data["image"]
            if len(files) > 1 or is_archive(files[0]):
                return _upload_batch(request, form, files, throttle)
            try:
                prediction = create_prediction(request, files[0])
            except ImageRejected as rejected:
                form.add_error("image", rejection_message(rejected))
            else:
                return redirect("predictor:result", prediction_id=prediction.pk)
        status = 400
    else:
        form = UploadForm()
    return _upload_page(request, form, status)


def _upload_page(request: HttpRequest, form: UploadForm, status: int) -> HttpResponse:
    recent = Prediction.objects.owned_by(request)[:4]
    return render(
        request,
        "predictor/upload.html",
        {
            "form": form,
            "recent": recent,
            "model_version": ModelVersion.active(),
            "max_upload_mb": settings.FACEAGE_MAX_UPLOAD_BYTES // (1024 * 1024),
            "batch_max_files": settings.FACEAGE_BATCH_MAX_FILES,
        },
        status=status,
    )


def _too_many_uploads(request: HttpRequest, throttle: UploadRateThrottle) -> HttpResponse:
    wait = max(1, math.ceil(throttle.wait() or 1))
    message = ngettext(
        "Too many uploads. Please wait %(wait)d second and try again.",
        "Too many uploads. Please wait %(wait)d seconds and try again.",
        wait,
    )
    return too_many_requests(request, wait, message)


def _upload_batch(request: HttpRequest, form: UploadForm, files, throttle) -> HttpResponse:
    """Several photos (or a zip) from the form: the batch page, or the form with the reasons."""
    try:
        collected = collect_batch_files(files)
        # One upload was counted for the request; every further photo counts as well.
        if not throttle.allow_more(request, None, collected.count - 1):
            return _too_many_uploads(request, throttle)
        batch, _predictions, problems = create_batch(request, collected)
    except BatchRejected as rejected:
        form.add_error("image", rejected.message)
        for problem in rejected.problems[1:]:
            form.add_error("image", f"{problem.name}: {problem.message}")
        return _upload_page(request, form, rejected.http_status)
    for problem in problems:
        messages.warning(
            request,
            _("Skipped %(name)s: %(reason)s") % {"name": problem.name, "reason": problem.message},
        )
    return redirect("predictor:batch", batch_id=batch.pk)


@require_GET
def batch(request: HttpRequest, batch_id) -> HttpResponse:
    found = get_object_or_404(Batch.objects.owned_by(request), pk=batch_id)
    predictions = list(
        found.predictions.order_by("created_at", "original_name").prefetch_related("faces")
    )
    finished = sum(p.is_terminal for p in predictions)
    summary = ngettext(
        "%(finished)s of %(total)s photo finished",
        "%(finished)s of %(total)s photos finished",
        len(predictions),
    ) % {"finished": finished, "total": len(predictions)}
    context = {
        "batch": found,
        "predictions": predictions,
        "finished": finished,
        "total": len(predictions),
        "summary": summary,
    }
    return render(request, "predictor/batch.html", context)


@require_GET
def result(request: HttpRequest, prediction_id) -> HttpResponse:
    prediction = _own_prediction(request, prediction_id)
    # Faces show once the photo is finished, and stay while a face marked on it is rated.
    shown = prediction.status == "succeeded" or prediction.pending_boxes
    faces = prediction.faces.select_related("label") if shown else []
    return render(request, "predictor/result.html", {"prediction": prediction, "faces": faces})


@require_POST
def label_face(request: HttpRequest, prediction_id, index: int) -> HttpResponse:
    """ "Is this right?": the owner gives a face's real age, with consent or without."""
    prediction = _own_prediction(request, prediction_id)
    back = redirect("predictor:result", prediction_id=prediction.pk)
    if not request.user.is_authenticated:
        messages.error(request, _("Log in to give a face's real age: labels belong to an account."))
        return back
    face = get_object_or_404(prediction.faces, index=index)
    form = AgeLabelForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return back
    # The page names the face it showed: after the photo ran again, number 2 may be
    # someone else, and the label must not land on them.
    shown = form.cleaned_data.pop("face")
    if shown is not None and shown != face.pk:
        messages.error(request, _(FACES_CHANGED))
        return back
    try:
        label = AgeLabel.give(face, request.user, **form.cleaned_data)
    except PhotoNotFinished:
        messages.error(request, _(FACES_CHANGED))
        return back
    if label.consent:
        text = _("Thank you: face %(number)s is %(age)s, and may be used to improve the model.")
    else:
        text = _(
            "Thank you: face %(number)s is %(age)s. It counts towards the accuracy figures only."
        )
    messages.success(request, text % {"number": face.index + 1, "age": label.age})
    return back


@require_POST
def draw_face(request: HttpRequest, prediction_id) -> HttpResponse:
    """ "Missed someone?": the owner marks a region of a finished photo as a face. The box
    (``box``: JSON ``[left, top, right, bottom]`` in pixels of the stored photo) waits in
    ``pending_boxes`` and the photo is queued again, but the worker rates only the marked
    face, with the photo's own model version, and adds it after the others
    (``predictor.tasks.run_predictions``): the faces already there keep their numbers,
    estimates and labels. Each marked face counts as an upload against the upload rate."""
    prediction = _own_prediction(request, prediction_id)
    # Each marked face is a worker run: it counts as an upload (FACEAGE_UPLOAD_RATE).
    throttle = UploadRateThrottle()
    if not admits(throttle, request):
        return _too_many_uploads(request, throttle)
    back = redirect("predictor:result", prediction_id=prediction.pk)
    try:
        boxes = parse_boxes(request.POST.get("box", ""))
        if len(boxes) != 1:
            raise BoxesRejected(BOX_NEEDED)
        (box,) = fit_boxes(boxes, prediction.width, prediction.height)
    except BoxesRejected as rejected:
        messages.error(request, rejection_message(rejected))
        return back
    with transaction.atomic():
        row = Prediction.objects.select_for_update().filter(pk=prediction.pk).first()
        if row is None or row.status != Prediction.Status.SUCCEEDED:
            messages.error(request, _("Wait until the photo is finished, then mark a face."))
            return back
        if len(row.drawn_boxes) >= MAX_DRAWN_BOXES:
            messages.error(
                request,
                _("At most %(limit)s faces can be marked on one photo.")
                % {"limit": MAX_DRAWN_BOXES},
            )
            return back
        faces = list(row.faces.order_by("index"))
        found = first_same_face(box, [face.box for face in faces])
        if found is not None:
            messages.error(request, _(ALREADY_A_FACE) % {"number": faces[found].index + 1})
            return back
        row.pending_boxes = [box]  # into drawn_boxes once it gives a face (store_faces)
        fresh = lifecycle.fresh_state()
        for field, value in fresh.items():
            setattr(row, field, value)
        row.save(update_fields=["pending_boxes", *fresh])
        transaction.on_commit(lambda: enqueue_prediction(row.pk))
    messages.success(request, _("Estimating the face you marked…"))
    return back


@require_POST
def withdraw_consent(request: HttpRequest, prediction_id, index: int) -> HttpResponse:
    """Stop using a labelled face for training (its label still counts for accuracy)."""
    prediction = _own_prediction(request, prediction_id)
    face = get_object_or_404(prediction.faces, index=index)
    label = get_object_or_404(AgeLabel, face=face)
    label.withdraw_consent()
    messages.success(
        request,
        _("Face %(number)s of %(name)s will not be used to train any model from now on.")
        % {"number": face.index + 1, "name": prediction.original_name or _("this photo")},
    )
    return _back_to(request, "predictor:history")


@require_GET
def history(request: HttpRequest) -> HttpResponse:
    predictions = Prediction.objects.owned_by(request).prefetch_related("faces", "faces__label")
    page = Paginator(predictions, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "predictor/history.html", {"page": page})


@require_POST
def delete_all(request: HttpRequest) -> HttpResponse:
    """Delete every photo and result of this user (or browser session), in one action."""
    owned = list(Prediction.objects.owned_by(request))
    for prediction in owned:
        prediction.delete_with_files()
    Batch.objects.owned_by(request).delete()  # nothing left in them
    messages.success(
        request,
        ngettext(
            "Deleted %(count)d photo and its results.",
            "Deleted %(count)d photos and their results.",
            len(owned),
        )
        % {"count": len(owned)},
    )
    return redirect("predictor:history")


@require_POST
def delete(request: HttpRequest, prediction_id) -> HttpResponse:
    """Delete one photo and its results (the page asked first, ``data-confirm``)."""
    prediction = _own_prediction(request, prediction_id)
    name = prediction.original_name or _("the photo")
    prediction.delete_with_files()
    messages.success(request, _("Deleted %(name)s and its results.") % {"name": name})
    return _back_to(request, "predictor:history")


def _back_to(request: HttpRequest, default: str) -> HttpResponse:
    """Redirect to the form's ``next`` when it is a page of this site, else to ``default``."""
    next_url = request.POST.get("next", "")
    if next_url.startswith("/") and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(next_url)
    return redirect(default)


def _serve(file) -> FileResponse:
    if not file or not file.name:
        raise Http404(_("No image"))
    try:
        handle = file.open("rb")
    except (FileNotFoundError, OSError) as error:
        raise Http404(_("Image missing")) from error
    return FileResponse(handle, content_type="image/jpeg")


@require_GET
@cache_control(private=True, max_age=3600)
@vary_on_headers("Authorization", "Cookie")
def image(request: HttpRequest, prediction_id) -> FileResponse:
    _api_token_user(request)
    return _serve(_own_prediction(request, prediction_id).image)


@require_GET
@cache_control(private=True, max_age=3600)
def thumbnail(request: HttpRequest, prediction_id) -> FileResponse:
    prediction = _own_prediction(request, prediction_id)
    return _serve(prediction.thumbnail or prediction.image)


@require_GET
@cache_control(private=True, max_age=3600)
@vary_on_headers("Authorization", "Cookie")
def face_chip(request: HttpRequest, prediction_id, index: int) -> HttpResponse:
    """The aligned face crop the network saw, for the owner of the prediction only."""
    _api_token_user(request)
    prediction = _own_prediction(request, prediction_id)
    face = get_object_or_404(prediction.faces, index=index)
    if not face.chip_jpeg:
        raise Http404(_("No image"))
    return HttpResponse(bytes(face.chip_jpeg), content_type="image/jpeg")


@require_GET
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    """A model version's card: metrics on its test split, with charts."""
    from predictor import charts

    version = get_object_or_404(ModelVersion, name=name)
    metrics = version.metrics or {}
    baseline = metrics.get("baseline", {})
    context = {"version": version, "metrics": metrics, "baseline": baseline}
    if metrics.get("mae_by_decade"):
        context["decade_chart"] = charts.error_by_decade(
            metrics["mae_by_decade"], baseline.get("mae_by_decade")
        )
    if metrics.get("scatter"):
        context["scatter_chart"] = charts.predicted_vs_true(metrics["scatter"])
    context["group_rows"] = benchmark_group_rows(metrics.get("benchmarks") or {})
    if request.user.is_staff:
        from predictor.live_accuracy import live_accuracy, shadow_comparison

        live = context["live"] = live_accuracy(version)
        context["shadow"] = shadow_comparison(version)
        if live["by_decade"]:
            context["live_chart"] = charts.error_by_decade(
                live["by_decade"],
                metrics.get("mae_by_decade"),
                (_("people's labels"), _("test split")),
            )
    return render(request, "predictor/model_detail.html", context)


def benchmark_group_rows(benchmarks: dict) -> list[dict]:
    """The fairness report: each benchmark's figure per gender and per race (where the
    dataset labels them), this model beside the active one. The figure is the age-group
    accuracy on a benchmark of age groups, else the MAE."""
    rows = []
    for name, result in benchmarks.items():
        candidate, active = result.get("candidate") or {}, result.get("active") or {}
        groups = candidate.get("accuracy") is not None
        for kind in ("gender", "race"):
            key = f"accuracy_by_{kind}" if groups else f"mae_by_{kind}"
            figure = "accuracy" if groups else "mae"
            for group, row in (candidate.get(key) or {}).items():
                theirs = (active.get(key) or {}).get(group) or {}
                rows.append(
                    {
                        "benchmark": name,
                        "kind": kind,
                        "group": group,
                        "is_accuracy": groups,
                        "candidate": row.get(figure),
                        "active": theirs.get(figure),
                        "count": row.get("count"),
                    }
                )
    return rows
