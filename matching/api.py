"""Staff API for scripts (token or session auth): upload models, watch builds, pause/retire/resume, choose the
public search model, and the maps of the feature spaces."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from matching import dispatch, selectors, services
from matching.models import FeatureSet, Variant
from matching.serializers import MapOut, MapSummaryOut, RotationIn, SearchMethodIn, UploadIn, VariantOut
from vsearch_site.errors import ErrorOut
from vsearch_site.parsers import JSONParser

VariantsOut = inline_serializer("VariantsOut", {"variants": VariantOut(many=True)})
STAFF_ERRORS = {401: ErrorOut, 403: ErrorOut}


class StaffView(APIView):
    permission_classes = [IsAdminUser]


def variants_out(variants) -> list[dict]:
    variants = list(variants)
    return VariantOut(variants, many=True, context={"coverage": selectors.coverage_of(variants)}).data


class VariantList(StaffView):
    @extend_schema(responses={200: VariantsOut, **STAFF_ERRORS})
    def get(self, request):
        return Response({"variants": variants_out(Variant.objects.select_related("feature_set"))})


class VariantUpload(StaffView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request=UploadIn, responses={201: VariantsOut, 400: ErrorOut, **STAFF_ERRORS})
    def post(self, request):
        data = UploadIn(data=request.data)
        data.is_valid(raise_exception=True)
        variants = services.variant_upload(**data.validated_data)
        return Response({"variants": VariantOut(variants, many=True).data}, status=201)


class VariantRotation(StaffView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(request=RotationIn, responses={200: VariantOut, 400: ErrorOut, 404: ErrorOut, **STAFF_ERRORS})
    def post(self, request, variant_id: int):
        variant = get_object_or_404(Variant, pk=variant_id)
        data = RotationIn(data=request.data)
        data.is_valid(raise_exception=True)
        variant = services.variant_set_rotation(variant=variant, rotation=data.validated_data["rotation"])
        return Response(VariantOut(variant).data)


class VariantRebuild(StaffView):
    @extend_schema(request=None, responses={200: VariantOut, 404: ErrorOut, **STAFF_ERRORS})
    def post(self, request, variant_id: int):
        variant = services.variant_rebuild(variant=get_object_or_404(Variant, pk=variant_id))
        return Response(VariantOut(variant).data)


class VariantSearch(StaffView):
    """Force how a model's pairs are found (exact, or Annoy with n_trees/search_k) and build them again; or, with
    as_new, add a new model with the same features and that search method."""

    parser_classes = [JSONParser, FormParser]

    @extend_schema(
        request=SearchMethodIn,
        responses={200: VariantOut, 201: VariantOut, 400: ErrorOut, 404: ErrorOut, 409: ErrorOut, **STAFF_ERRORS},
    )
    def post(self, request, variant_id: int):
        variant = get_object_or_404(Variant, pk=variant_id)
        data = SearchMethodIn(data=request.data)
        data.is_valid(raise_exception=True)
        changed = services.variant_set_search(variant=variant, **data.validated_data)
        return Response(VariantOut(changed).data, status=201 if changed.pk != variant.pk else 200)


class VariantSearchModel(StaffView):
    @extend_schema(request=None, responses={200: VariantOut, 400: ErrorOut, 404: ErrorOut, **STAFF_ERRORS})
    def post(self, request, variant_id: int):
        """Make this model the one public search uses once it is retired (DELETE: no choice)."""
        variant = services.variant_set_search_model(variant=get_object_or_404(Variant, pk=variant_id))
        return Response(VariantOut(variant).data)

    @extend_schema(request=None, responses={204: None, **STAFF_ERRORS})
    def delete(self, request, variant_id: int):
        if Variant.objects.filter(pk=variant_id, search_model=True).exists():
            services.variant_set_search_model(variant=None)
        return Response(status=204)


MapsOut = inline_serializer("MapsOut", {"maps": MapSummaryOut(many=True)})


class MapList(StaffView):
    @extend_schema(operation_id="maps_list", responses={200: MapsOut, **STAFF_ERRORS})
    def get(self, request):
        return Response({"maps": MapSummaryOut(selectors.map_summaries(), many=True).data})


class MapDetail(StaffView):
    @extend_schema(responses={200: MapOut, 404: ErrorOut, **STAFF_ERRORS})
    def get(self, request, feature_set_id: int):
        feature_set = get_object_or_404(FeatureSet, pk=feature_set_id, status=FeatureSet.Status.READY)
        response = Response(MapOut(selectors.map_points(feature_set=feature_set)).data)
        response["Cache-Control"] = "private, no-store"
        return response


class MapBuild(StaffView):
    @extend_schema(request=None, responses={202: MapSummaryOut, 404: ErrorOut, 503: ErrorOut, **STAFF_ERRORS})
    def post(self, request, feature_set_id: int):
        """Lay the feature set out again if its map is missing, failed or stale (a current map is kept)."""
        feature_set = get_object_or_404(FeatureSet, pk=feature_set_id, status=FeatureSet.Status.READY)
        dispatch.enqueue_layout(feature_set.pk)
        summary = next(m for m in selectors.map_summaries() if m.feature_set.pk == feature_set.pk)
        return Response(MapSummaryOut(summary).data, status=202)


class VariantRefresh(StaffView):
    """Bring a ready model up to the catalog: featurize only new items, rebuild its index and the pairs that change."""

    @extend_schema(
        operation_id="variant_refresh",
        request=None,
        responses={200: VariantOut, 404: ErrorOut, 409: ErrorOut, **STAFF_ERRORS},
    )
    def post(self, request, variant_id: int):
        variant = services.variant_refresh(variant=get_object_or_404(Variant, pk=variant_id))
        return Response(VariantOut(variant).data)


class VariantsRefreshStale(StaffView):
    """Refresh every ready model that does not cover the catalog; answers with the ones refreshed."""

    @extend_schema(operation_id="variants_refresh_stale", request=None, responses={200: VariantsOut, **STAFF_ERRORS})
    def post(self, request):
        return Response({"variants": variants_out(services.variants_refresh_stale())})
