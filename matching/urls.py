from django.urls import path

from matching import api

urlpatterns = [
    path("variants", api.VariantList.as_view(), name="variant-list"),
    path("variants/upload", api.VariantUpload.as_view(), name="variant-upload"),
    path("variants/refresh", api.VariantsRefreshStale.as_view(), name="variants-refresh"),
    path("variants/<int:variant_id>/rotation", api.VariantRotation.as_view(), name="variant-rotation"),
    path("variants/<int:variant_id>/rebuild", api.VariantRebuild.as_view(), name="variant-rebuild"),
    path("variants/<int:variant_id>/search", api.VariantSearch.as_view(), name="variant-search"),
    path("variants/<int:variant_id>/search-model", api.VariantSearchModel.as_view(), name="variant-search-model"),
    path("maps", api.MapList.as_view(), name="map-list"),
    path("maps/<int:feature_set_id>", api.MapDetail.as_view(), name="map-detail"),
    path("maps/<int:feature_set_id>/build", api.MapBuild.as_view(), name="map-build"),
    path("variants/<int:variant_id>/refresh", api.VariantRefresh.as_view(), name="variant-refresh"),
]
