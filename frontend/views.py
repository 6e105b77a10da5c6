"""Pages: the swipe page, leaderboard and search (shells over the JSON API); the staff pages: models (a plain form
and the variant table), compare and examples (shells over the staff API) and the map (a canvas over the JSON API)."""

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
from matching.selectors import coverage_of, query_categories
from matching.serializers import METRIC_CHOICES, SearchMethodIn, UploadIn
from matching.services import (
    variant_rebuild,
    variant_refresh,
    variant_set_rotation,
    variant_set_search,
    variant_upload,
)
from voting.selectors import model_rows
from vsearch_site.errors import DomainError


@require_safe
@ensure_csrf_cookie  # swipe.js reads the csrftoken cookie to send X-CSRFToken with each vote
def swipe(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/swipe.html")


@require_safe
def leaderboard(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/leaderboard.html")


@require_safe
@ensure_csrf_cookie  # search.js sends X-CSRFToken with its POST (staff sessions need it)
def search(request: HttpRequest) -> HttpResponse:
    """Search by photo (a shell over POST /api/search; which models one may use is the API's rule)."""
    return render(request, "frontend/search.html", {"max_mb": settings.VSEARCH_SEARCH_MAX_BYTES // (1024 * 1024)})


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
    rows = model_rows()
    coverage = coverage_of([row.variant for row in rows])
    for row in rows:
        row.variant.coverage = coverage[row.variant.pk]  # stale models get a refresh button
    context = {
        "rows": rows,
        "architectures": [(k, s.description, s.layer_names) for k, s in REGISTRY.items() if s.accepts_files],
        "metrics": METRIC_CHOICES,
        "error": error,
        "form": request.POST if status == 400 else {},
        "form_metrics": request.POST.getlist("metrics") if status == 400 else METRIC_CHOICES[:1],
        "max_upload_mb": settings.VSEARCH_MAX_UPLOAD_BYTES // (1024 * 1024),
        "staff_page": "models",
    }
    return render(request, "frontend/staff.html", context, status=status)


@staff_only
@require_safe
def staff_compare(request: HttpRequest) -> HttpResponse:
    """Every model's matches for one query, side by side (a shell over GET /api/compare)."""
    return render(request, "frontend/compare.html", {"categories": query_categories(), "staff_page": "compare"})


@staff_only
@require_safe
def staff_examples(request: HttpRequest, variant_id: int) -> HttpResponse:
    """One model's most approved and most rejected cards (a shell over GET /api/leaderboard/<id>/examples)."""
    variant = get_object_or_404(Variant, pk=variant_id)
    return render(request, "frontend/examples.html", {"variant": variant, "staff_page": "examples"})


@staff_only
@require_safe
@ensure_csrf_cookie  # map.js asks for neighbours (POST /api/search) and for maps to be laid out
def staff_map(request: HttpRequest) -> HttpResponse:
    """The map of a feature space: a canvas over GET /api/maps/<id>, neighbours from POST /api/search."""
    return render(request, "frontend/map.html")


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
def staff_search(request: HttpRequest, variant_id: int) -> HttpResponse:
    """Force how a model's pairs are found and rebuild them, or add a new model with that search method."""
    variant = get_object_or_404(Variant, pk=variant_id)
    data = SearchMethodIn(data={k: v for k, v in request.POST.dict().items() if v != "" and k != "csrfmiddlewaretoken"})
    if not data.is_valid():
        messages.error(request, f"{variant.name}: {_first_error(data.errors)}")
        return redirect("frontend:staff")
    try:
        changed = variant_set_search(variant=variant, **data.validated_data)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        verb = "added, building now" if changed.pk != variant.pk else "building again"
        messages.success(request, f"{changed.name}: {verb}.")
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
