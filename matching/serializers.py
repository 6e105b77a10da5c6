from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from matching.models import Metric, Variant
from matching.selectors import variant_coverage


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
            "n_trees",
            "search_k",
            "search_k_used",
            "pairs_search",
            "status",
            "stage",
            "progress",
            "error",
            "rotation",
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

    def validate(self, data):
        if data["kind"] == "weights" and not (data["architecture"] and data["layer"]):
            raise serializers.ValidationError("Weights need an architecture and a layer.")
        return data


class RotationIn(serializers.Serializer):
    rotation = serializers.ChoiceField(choices=Variant.Rotation.values)
