from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from matching.models import Metric, Variant
from matching.selectors import variant_coverage
from matching.services import MAX_TREES


class CoverageOut(serializers.Serializer):
    """How a ready model's pairs cover the catalog now (null while it is not ready)."""

    added = serializers.IntegerField(help_text="Catalog items its pairs do not cover yet: a refresh adds them.")
    removed = serializers.IntegerField(help_text="Items its pairs were computed over that were deleted since.")
    unembedded = serializers.IntegerField(help_text="Catalog items its uploaded embeddings lack (upload again).")
    features_changed = serializers.BooleanField(help_text="Its features were computed anew since its pairs.")
    stale = serializers.BooleanField(help_text="A refresh would change it.")


class VariantOut(serializers.ModelSerializer):
    """A variant; its coverage is read once per response for all of them (the `coverage` context: selectors)."""

    feature_set = serializers.CharField(source="feature_set.__str__", default=None)
    build_seconds = serializers.FloatField(read_only=True)
    search_label = serializers.CharField(read_only=True, help_text="How its pairs are found, spelled out.")
    coverage = serializers.SerializerMethodField()

    @extend_schema_field(CoverageOut(allow_null=True))
    def get_coverage(self, variant: Variant) -> dict | None:
        known = self.context.get("coverage")
        coverage = known.get(variant.pk) if known is not None else variant_coverage(variant)
        if coverage is None:
            return None
        return {
            "added": coverage.added,
            "removed": coverage.removed,
            "unembedded": coverage.unembedded,
            "features_changed": coverage.features_changed,
            "stale": coverage.stale,
        }

    class Meta:
        model = Variant
        fields = [
            "id",
            "name",
            "description",
            "metric",
            "feature_set",
            "k",
            "search",
            "search_label",
            "n_trees",
            "search_k",
            "search_k_used",
            "pairs_search",
            "status",
            "stage",
            "progress",
            "error",
            "rotation",
            "search_model",
            "searched_publicly_at",
            "p_at_1",
            "p_at_k",
            "recall_at_k",
            "created_at",
            "ready_at",
            "build_seconds",
            "coverage",
        ]


METRIC_CHOICES = [m for m in Metric.values if m != Metric.RANDOM]


class UploadIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["weights", "embeddings"])
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    metrics = serializers.ListField(child=serializers.ChoiceField(choices=METRIC_CHOICES), min_length=1)
    architecture = serializers.CharField(required=False, allow_blank=True, default="")
    layer = serializers.CharField(required=False, allow_blank=True, default="")
    file = serializers.FileField()
    ids_file = serializers.FileField(required=False, allow_null=True, default=None)
    search = serializers.ChoiceField(
        choices=Variant.Search.choices, default="auto", help_text="exact or annoy at any size; auto: by size."
    )
    n_trees = serializers.IntegerField(default=50, min_value=1, max_value=MAX_TREES, help_text="Annoy's trees.")
    search_k = serializers.IntegerField(
        default=-1, min_value=-1, max_value=2**31 - 1, help_text="Annoy's query budget; -1: calibrated per build."
    )

    def validate(self, data):
        if data["kind"] == "weights" and not (data["architecture"] and data["layer"]):
            raise serializers.ValidationError("Weights need an architecture and a layer.")
        if data["search_k"] == 0:
            raise serializers.ValidationError("search_k must be -1 (calibrated per build) or at least 1.")
        return data


class RotationIn(serializers.Serializer):
    rotation = serializers.ChoiceField(choices=Variant.Rotation.values)


class SearchMethodIn(serializers.Serializer):
    search = serializers.ChoiceField(
        choices=Variant.Search.choices, help_text="exact or annoy at any size; auto: by size."
    )
    n_trees = serializers.IntegerField(required=False, min_value=1, max_value=MAX_TREES, help_text="Annoy's trees.")
    search_k = serializers.IntegerField(
        required=False, min_value=-1, max_value=2**31 - 1, help_text="Annoy's query budget; -1: calibrated per build."
    )
    as_new = serializers.BooleanField(
        default=False, help_text="Add a new model with these features and this search method, instead of rebuilding."
    )

    def validate_search_k(self, value):
        if value == 0:
            raise serializers.ValidationError("search_k must be -1 (calibrated per build) or at least 1.")
        return value


class VariantRefOut(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    metric = serializers.CharField()


class MapSummaryOut(serializers.Serializer):
    feature_set = serializers.IntegerField(source="feature_set.pk")
    name = serializers.CharField(source="feature_set.__str__")
    n_items = serializers.IntegerField(source="feature_set.n_items", allow_null=True)
    status = serializers.ChoiceField(choices=["none", "queued", "running", "ready", "failed"])
    current = serializers.BooleanField(help_text="Laid out from the feature set's current features.")
    variants = VariantRefOut(many=True)


class MapPointsOut(serializers.Serializer):
    item = serializers.ListField(child=serializers.IntegerField())
    x = serializers.ListField(child=serializers.FloatField(), help_text="In [0, 1], aspect kept with y.")
    y = serializers.ListField(child=serializers.FloatField())
    category = serializers.ListField(child=serializers.IntegerField(), help_text="An index into categories.")
    thumbnail = serializers.ListField(child=serializers.CharField())


class MapOut(serializers.Serializer):
    feature_set = serializers.IntegerField(source="feature_set.pk")
    name = serializers.CharField(source="feature_set.__str__")
    status = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    current = serializers.BooleanField()
    seconds = serializers.FloatField(source="layout.seconds", default=None)
    categories = serializers.ListField(child=serializers.CharField())
    points = serializers.SerializerMethodField()

    def get_status(self, m) -> str:
        return m.layout.status if m.layout else "none"

    def get_error(self, m) -> str:
        return m.layout.error if m.layout else ""

    @extend_schema_field(MapPointsOut)
    def get_points(self, m) -> dict:
        return {"item": m.item, "x": m.x, "y": m.y, "category": m.category, "thumbnail": m.thumbnail}
