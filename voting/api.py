"""Thin API views: check input, call one service or selector, shape the output.

The voters' and the public's endpoints never reveal which variant made a card; the staff endpoints (StaffView,
the workbench) name models and are for staff only."""

from __future__ import annotations

from django.conf import settings
from django.http import StreamingHttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from matching.models import Variant
from voting import export, leaderboard, sampling, search, selectors, services
from voting.identity import remember_voter, voter_from_request, voter_key
from voting.serializers import (
    CardOut,
    CategoriesOut,
    CompareIn,
    CompareOut,
    DoneOut,
    ExamplesOut,
    LeaderboardOut,
    ReasonIn,
    ReasonOut,
    SearchIn,
    SearchModelsOut,
    SearchOut,
    VotedOut,
    VoteIn,
    vote_in,
)
from voting.tallies import votes_cast
from voting.throttles import (
    IPRateThrottle,
    LeaderboardRateThrottle,
    PairRateThrottle,
    SearchIPRateThrottle,
    SearchRateThrottle,
    VoterRateThrottle,
    check_all,
)
from voting.tokens import token_issue
from vsearch_site import metrics
from vsearch_site.clients import client_address
from vsearch_site.errors import ErrorOut, InvalidInput, NotFound, Unavailable
from vsearch_site.parsers import JSONParser


class ThrottledView(APIView):
    """Every throttle counted in one Redis round trip (voting.throttles.check_all), or DRF's own way while Redis
    is down; a view may exempt some requests (staff)."""

    def throttle_exempt(self, request) -> bool:
        return False

    def check_throttles(self, request):
        if self.throttle_exempt(request):
            return
        waits = check_all(self.get_throttles(), request, self)
        if waits is None:
            return super().check_throttles(request)
        if waits:
            self.throttled(request, max(waits))


class _Csrf(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason


class VoterView(ThrottledView):
    """Voting endpoints: CSRF is checked on every unsafe request, anonymous ones included.

    (DRF exempts anonymous requests from CSRF; a third-party page must not vote for a visitor.)
    """

    def initial(self, request, *args, **kwargs):
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            check = _Csrf(lambda req: None)
            check.process_request(request._request)
            reason = check.process_view(request._request, None, (), {})
            if reason:
                raise PermissionDenied(f"CSRF check failed: {reason.rstrip('.')}. Reload the page and try again.")
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        remember_voter(request, response)
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


def _card_payload(card: sampling.Card, voter, cast: int) -> dict:
    """The same fields for every card, gold or not (CardOut); what the server needs back travels inside the token."""
    token = token_issue(voter_key=voter_key(voter), pair_id=card.pair_id, propensity=card.propensity, gold=card.gold)
    metrics.card_served(gold=card.gold is not None)
    # A plain dict in CardOut's shape (no serializer per card: the vote path is counted in µs, docs/BENCHMARKS.md).
    return {
        "token": token,
        "query": {"image": card.query_image},
        "match": {"image": card.match_image},
        "votes_cast": cast,
    }


class PairNext(VoterView):
    throttle_classes = [PairRateThrottle]

    @extend_schema(
        responses={
            200: PolymorphicProxySerializer("NextPair", [CardOut, DoneOut], resource_type_field_name=None),
            429: ErrorOut,
            503: ErrorOut,
        }
    )
    def get(self, request):
        voter = voter_from_request(request, create=True)
        if not sampling.rotation():
            raise Unavailable(NO_MODEL)
        return Response(_next_payload(voter))


NO_MODEL = "No model is ready yet: matches are still being built. Try again in a minute."


def _next_payload(voter, drawn: sampling.Drawn | None = None) -> dict | None:
    """The voter's next card (or that they are done), as GET /api/pairs/next answers it; None without a model.
    `drawn`: the next card's draws, made before a vote whose statement already ran their look."""
    if drawn is None and not sampling.rotation():
        return None
    upcoming = sampling.card_next(voter=voter, drawn=drawn)
    if upcoming.card is None:
        return {
            "done": True,
            "votes_cast": upcoming.past.votes,
            "detail": "You have judged every pair we have. Thank you! See how the models rank on the leaderboard.",
        }
    return _card_payload(upcoming.card, voter, upcoming.past.votes)


class VoteCreate(VoterView):
    throttle_classes = [VoterRateThrottle, IPRateThrottle]

    @extend_schema(
        request=VoteIn, responses={201: VotedOut, 400: ErrorOut, 403: ErrorOut, 409: ErrorOut, 429: ErrorOut}
    )
    def post(self, request):
        data = vote_in(request.data)
        voter = voter_from_request(request, create=False)
        if voter is None:
            raise services.VoteRefused("No voter cookie: load a card first (GET /api/pairs/next).")
        drawn = sampling.draw()  # the next card's draws: the vote's own statement runs their look
        vote = services.vote_record(
            look_ahead=drawn,
            voter=voter,
            token=data["token"],
            verdict=data["verdict"],
            shown_ms=data.get("shown_ms"),
            ip=client_address(request),
        )
        if voter.pk is None:
            request._new_voter = vote.voter  # the first vote made the row: the cookie now carries its id
        # One round trip per vote: the answer carries the next card.
        following = _next_payload(vote.voter, drawn) if drawn is not None else None
        cast = following["votes_cast"] if following else votes_cast(vote.voter)
        return Response(
            {"votes_cast": cast, "undo_seconds": settings.VSEARCH_UNDO_SECONDS, "next": following},
            status=status.HTTP_201_CREATED,
        )


class VoteUndo(VoterView):
    throttle_classes = [VoterRateThrottle, IPRateThrottle]

    @extend_schema(request=None, responses={200: CardOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut})
    def post(self, request):
        voter = voter_from_request(request, create=False)
        if voter is None:
            raise NotFound("There is no vote to undo.")
        undone = services.vote_undo(voter=voter)
        card = sampling.card_of(undone.pair_id, propensity=undone.propensity, gold=undone.gold)
        return Response(_card_payload(card, voter, votes_cast(voter)))


class VoteReason(VoterView):
    """Why nope (optional, one tap): the token the nope was cast with, and a reason. Nothing is stored on a refusal."""

    throttle_classes = [VoterRateThrottle, IPRateThrottle]

    @extend_schema(
        request=ReasonIn, responses={201: ReasonOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}
    )
    def post(self, request):
        data = ReasonIn(data=request.data)
        data.is_valid(raise_exception=True)
        voter = voter_from_request(request, create=False)
        if voter is None:
            raise services.VoteRefused("No voter cookie: a reason follows a vote cast from this browser.")
        recorded = services.nope_reason_record(
            voter=voter, token=data.validated_data["token"], reason=data.validated_data["reason"]
        )
        return Response({"reason": recorded.reason}, status=status.HTTP_201_CREATED)


def _live(request) -> bool:
    """Staff see live numbers unless they ask for the public view (?view=public)."""
    return bool(request.user and request.user.is_staff) and request.query_params.get("view") != "public"


class LeaderboardView(ThrottledView):
    """Public numbers come from the window's snapshot, cached and throttled; staff see live ones."""

    throttle_classes = [LeaderboardRateThrottle]

    def throttle_exempt(self, request) -> bool:
        return _live(request)  # staff's live view

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code == 200:
            response["Cache-Control"] = "private, no-store" if _live(request) else "public, max-age=60"
            patch_vary_headers(response, ["Cookie", "Authorization"])  # staff get other numbers at the same URL
        return response


def _snapshot_fields(snapshot) -> dict:
    return {"live": False, "as_of": snapshot.cutoff, "next_update": snapshot.next_at}


class Leaderboard(LeaderboardView):
    @extend_schema(responses={200: LeaderboardOut, 429: ErrorOut})
    def get(self, request):
        head = {
            "confidence": settings.VSEARCH_CONFIDENCE,
            "min_votes": settings.VSEARCH_MIN_VOTES,
            "decided_at": settings.VSEARCH_DECIDED,
            "equivalence_margin": settings.VSEARCH_EQUIVALENCE_MARGIN,
            "design": settings.VSEARCH_DESIGN,
        }
        if _live(request):
            board = leaderboard.board_live()
            rows, decision, when = (
                board.rows,
                board.decision,
                {"live": True, "as_of": timezone.now(), "next_update": None},
            )
        else:
            snapshot = leaderboard.public_snapshot()
            rows, decision, when = snapshot.rows, snapshot.decision, _snapshot_fields(snapshot)
        return Response(LeaderboardOut({**head, **when, "rows": rows, "decision": decision}).data)


class LeaderboardCategories(LeaderboardView):
    @extend_schema(responses={200: CategoriesOut, 404: ErrorOut, 429: ErrorOut})
    def get(self, request, variant_id: int):
        variant = get_object_or_404(Variant, pk=variant_id, status=Variant.Status.READY)
        if _live(request):
            rows, when = leaderboard.category_rows(variant=variant), {"live": True, "as_of": timezone.now()}
        else:
            snapshot = leaderboard.public_snapshot()
            rows, when = snapshot.categories.get(variant.pk, []), _snapshot_fields(snapshot)
        return Response(CategoriesOut({"variant": variant.name, **when, "rows": rows}).data)


class LeaderboardExamples(LeaderboardView):
    """A model's most approved and most rejected cards: staff see any model's; the public a model's once it is out
    of the rotation (retired or paused), never one a voter may be served."""

    @extend_schema(responses={200: ExamplesOut, 404: ErrorOut, 429: ErrorOut})
    def get(self, request, variant_id: int):
        variant = get_object_or_404(Variant, pk=variant_id)
        examples = selectors.variant_examples(variant=variant, public=not _live(request))
        return Response(ExamplesOut(examples).data)


# ---------------------------------------------------------------------------------------- staff: the workbench

STAFF_ERRORS = {401: ErrorOut, 403: ErrorOut}


class StaffView(APIView):
    """Staff only (session or token): these answers name the models."""

    permission_classes = [IsAdminUser]

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "private, no-store"
        return response


def _staff(request) -> bool:
    return bool(request.user and request.user.is_staff)


class SearchView(ThrottledView):
    """Search by photo or item. Throttled like voting (per voter cookie and per address), staff excepted; which
    models a user may search with is voting.search's rule. Never cached: staff and the public differ."""

    throttle_classes = [SearchRateThrottle, SearchIPRateThrottle]

    def throttle_exempt(self, request) -> bool:
        return _staff(request)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "private, no-store"
        return response


class Compare(StaffView):
    @extend_schema(parameters=[CompareIn], responses={200: CompareOut, 400: ErrorOut, 404: ErrorOut, **STAFF_ERRORS})
    def get(self, request):
        data = CompareIn(data=request.query_params)
        data.is_valid(raise_exception=True)
        found = selectors.comparison(
            item_id=data.validated_data.get("item"),
            category=data.validated_data.get("category") or None,
            pick_random=data.validated_data["random"],
        )
        return Response(CompareOut(found).data)


class _NoFormatOverride(DefaultContentNegotiation):
    """Errors are always JSON; `?format=` names the export's format (DRF would take it for a renderer's)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class VotesExport(StaffView):
    """Every vote as CSV or JSON Lines, streamed from the database a batch at a time (voting/export.py)."""

    content_negotiation_class = _NoFormatOverride

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=sorted(export.FORMATS), default="csv", description="csv or jsonl")
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            400: ErrorOut,
            **STAFF_ERRORS,
        },
    )
    def get(self, request):
        fmt = request.query_params.get("format", "csv")
        if fmt not in export.FORMATS:
            raise InvalidInput(f"format must be one of {', '.join(sorted(export.FORMATS))}, not {fmt[:20]!r}.")
        response = StreamingHttpResponse(export.export_lines(fmt, batch=export.BATCH), content_type=export.FORMATS[fmt])
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="votes-{stamp}.{fmt}"'
        return response


class SearchModels(SearchView):
    throttle_classes = []

    @extend_schema(responses={200: SearchModelsOut})
    def get(self, request):
        staff = _staff(request)
        models = search.search_models(staff=staff)
        detail = "" if models else (search.NO_PUBLIC_MODEL if not staff else "No model can search yet.")
        default = models[0].variant.pk if models else None
        return Response(SearchModelsOut({"default": default, "models": models, "detail": detail}).data)


MULTIPART_SLACK = 64 * 1024  # the form's other fields and boundaries around the photo


class Search(SearchView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        request={"multipart/form-data": SearchIn, "application/json": SearchIn},
        responses={200: SearchOut, **{code: ErrorOut for code in (400, 403, 404, 409, 429, 503)}},
    )
    def post(self, request):
        # Refused before the body is parsed: Django would otherwise spool any size of upload to a temporary file.
        length = request.META.get("CONTENT_LENGTH") or "0"
        limit = settings.VSEARCH_SEARCH_MAX_BYTES
        if length.isdigit() and int(length) > limit + MULTIPART_SLACK:
            raise InvalidInput(
                f"The photo cannot be searched: the request is {int(length):,} bytes, over the limit of {limit:,}."
            )
        data = SearchIn(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        photo = None
        if "image" in given:
            upload = given["image"]
            if upload.size > settings.VSEARCH_SEARCH_MAX_BYTES:  # refused before a byte of it is read
                raise InvalidInput(
                    f"The photo cannot be searched: file is {upload.size:,} bytes, over the limit of "
                    f"{settings.VSEARCH_SEARCH_MAX_BYTES:,}."
                )
            photo = upload.read()
        found = search.search_run(
            staff=_staff(request), requested=given.get("model"), k=given["k"], photo=photo, item_id=given.get("item")
        )
        return Response(SearchOut(found).data)
