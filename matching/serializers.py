from rest_framework import serializers

from matching.models import Metric, Variant


class VariantOut(serializers.ModelSerializer):
    feature_set = serializers.CharField(source="feature_set.__str__", default=None)
    build_seconds = serializers.FloatField(read_only=True)

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
