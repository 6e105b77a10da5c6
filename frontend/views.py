"""Pages: the swipe page and leaderboard (shells over the JSON API) and the staff page (a plain form)."""

import functools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from matching.featurizers import REGISTRY
from matching.models import Variant
from matching.selectors import coverage_of
from matching.serializers import METRIC_CHOICES, UploadIn
from matching.services import variant_rebuild, variant_refresh, variant_set_rotation, variant_upload
from vsearch_site.errors import DomainError


@require_safe
@ensure_csrf_cookie  # swipe.js reads the csrftoken cookie to send X-CSRFToken with each vote
def swipe(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/swipe.html")


@require_safe
def leaderboard(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/leaderboard.html")


def staff_only(view):
    """Anonymous: to the login page. Logged in without staff rights: 403."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("Only staff can manage model variants.")
        return view(request, *args, **kwargs)

    return wrapper


@staff_only
@require_http_methods(["GET", "HEAD", "POST"])
def staff(request: HttpRequest) -> HttpResponse:
    """Upload a model (weights or embeddings) and watch every variant's build."""
    error, status = None, 200
    if request.method == "POST":
        data = UploadIn(
            data={**request.POST.dict(), "metrics": request.POST.getlist("metrics"), **request.FILES.dict()}
        )
        if not data.is_valid():
            error, status = _first_error(data.errors), 400
        else:
            try:
                created = variant_upload(**data.validated_data)
            except DomainError as exc:
                error, status = str(exc), 400
            else:
                messages.success(request, f"Uploaded: {', '.join(v.name for v in created)}. Building now.")
                return redirect("frontend:staff")
    variants = list(Variant.objects.select_related("feature_set").order_by("-id"))
    for variant, coverage in zip(variants, coverage_of(variants).values(), strict=True):
        variant.coverage = coverage  # stale models get a refresh button
    context = {
        "variants": variants,
        "architectures": [(k, s.description, s.layer_names) for k, s in REGISTRY.items() if s.accepts_files],
        "metrics": METRIC_CHOICES,
        "error": error,
        "form": request.POST if status == 400 else {},
        "max_upload_mb": settings.VSEARCH_MAX_UPLOAD_BYTES // (1024 * 1024),
    }
    return render(request, "frontend/staff.html", context, status=status)


@staff_only
@require_POST
def staff_rotation(request: HttpRequest, variant_id: int) -> HttpResponse:
    variant = get_object_or_404(Variant, pk=variant_id)
    try:
        variant_set_rotation(variant=variant, rotation=request.POST.get("rotation", ""))
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{variant.name}: {variant.rotation}.")
    return redirect("frontend:staff")


@staff_only
@require_POST
def staff_rebuild(request: HttpRequest, variant_id: int) -> HttpResponse:
    variant = variant_rebuild(variant=get_object_or_404(Variant, pk=variant_id))
    messages.success(request, f"{variant.name}: queued again.")
    return redirect("frontend:staff")


@staff_only
@require_POST
def staff_refresh(request: HttpRequest, variant_id: int) -> HttpResponse:
    try:
        variant = variant_refresh(variant=get_object_or_404(Variant, pk=variant_id))
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{variant.name}: refreshing (new items are featurized, then its pairs updated).")
    return redirect("frontend:staff")


def _first_error(errors) -> str:
    for field, problems in errors.items():
        label = "" if field == "non_field_errors" else f"{field}: "
        return f"{label}{problems[0]}"
    return "The form is not valid."
