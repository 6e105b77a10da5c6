from rest_framework import serializers


class VoteIn(serializers.Serializer):
    token = serializers.CharField(max_length=500)
    verdict = serializers.ChoiceField(choices=["dope", "nope"])
    shown_ms = serializers.IntegerField(required=False, min_value=0, max_value=86_400_000, allow_null=True)


class ImageOut(serializers.Serializer):
    image = serializers.CharField()


class CardOut(serializers.Serializer):
    token = serializers.CharField()
    query = ImageOut()
    match = ImageOut()
    votes_cast = serializers.IntegerField()


class LeaderboardRowOut(serializers.Serializer):
    variant_id = serializers.IntegerField()
    rank = serializers.IntegerField(allow_null=True)
    rank_group = serializers.CharField(allow_null=True)
    name = serializers.CharField()
    description = serializers.CharField()
    status = serializers.CharField()
    votes = serializers.IntegerField()
    approvals = serializers.IntegerField()
    approval_rate = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    provisional = serializers.BooleanField()
    is_new = serializers.BooleanField()
    p_at_1 = serializers.FloatField(allow_null=True)
    n_eff = serializers.FloatField(help_text="Effective number of votes behind the weighted approval.")
    p_best = serializers.FloatField(allow_null=True, help_text="P(best) among the models in the rotation.")
    decided = serializers.BooleanField(help_text="P(best) has reached VSEARCH_DECIDED.")


class CategoryRowOut(serializers.Serializer):
    category = serializers.CharField()
    votes = serializers.IntegerField()
    approvals = serializers.IntegerField()
    approval_rate = serializers.FloatField()
    ci_low = serializers.FloatField()
    ci_high = serializers.FloatField()


class DoneOut(serializers.Serializer):
    done = serializers.BooleanField()
    detail = serializers.CharField()
    votes_cast = serializers.IntegerField()


class VotedOut(serializers.Serializer):
    votes_cast = serializers.IntegerField()
    undo_seconds = serializers.IntegerField()
    next = serializers.JSONField(
        allow_null=True, help_text="The next card, or {done, detail, votes_cast}; null while no model is ready."
    )


class DecisionOut(serializers.Serializer):
    leader = serializers.IntegerField(allow_null=True)
    runner_up = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(choices=["decided", "practically equivalent", "undecided", "too few votes"])
    p_leader_best = serializers.FloatField(allow_null=True)
    p_within_margin = serializers.FloatField(allow_null=True)
    votes_to_separate = serializers.IntegerField(allow_null=True)
    explanation = serializers.CharField()


class LeaderboardOut(serializers.Serializer):
    confidence = serializers.FloatField()
    min_votes = serializers.IntegerField()
    decided_at = serializers.FloatField(help_text="P(best) from which a model is marked decided.")
    equivalence_margin = serializers.FloatField()
    design = serializers.CharField(help_text="How cards are served: active or balanced.")
    decision = DecisionOut()
    live = serializers.BooleanField(help_text="Staff: live numbers. Everyone else: the window's snapshot.")
    as_of = serializers.DateTimeField(help_text="Votes cast before this are counted.")
    next_update = serializers.DateTimeField(allow_null=True, help_text="When the public snapshot is taken again.")
    rows = LeaderboardRowOut(many=True)


class CategoriesOut(serializers.Serializer):
    variant = serializers.CharField()
    live = serializers.BooleanField()
    as_of = serializers.DateTimeField()
    next_update = serializers.DateTimeField(allow_null=True, required=False)
    rows = CategoryRowOut(many=True)


class SearchIn(serializers.Serializer):
    image = serializers.FileField(
        required=False, allow_empty_file=True, help_text="A photo (JPEG, PNG, WebP, GIF, BMP): multipart."
    )
    item = serializers.IntegerField(required=False, min_value=1, help_text="Or a catalog item id.")
    k = serializers.IntegerField(required=False, default=10, min_value=1, max_value=50)
    model = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="A model id. Default: the leaderboard's leader for staff; for everyone else the search model "
        "staff chose, once retired. Only staff may name a model in the rotation.",
    )


class SearchModelOut(serializers.Serializer):
    id = serializers.IntegerField(source="variant.pk")
    name = serializers.CharField(source="variant.name")
    rotation = serializers.CharField(source="variant.rotation")
    photo = serializers.BooleanField(help_text="Searches by photo (a model from uploaded embeddings: by item only).")


class SearchModelsOut(serializers.Serializer):
    default = serializers.IntegerField(allow_null=True)
    models = SearchModelOut(many=True)
    detail = serializers.CharField(allow_blank=True)


class SearchResultOut(serializers.Serializer):
    rank = serializers.IntegerField()
    item = serializers.IntegerField(source="item_id")
    category = serializers.CharField()
    image = serializers.CharField()
    distance = serializers.FloatField(help_text="In the model's metric (cosine as sqrt(2 - 2 cos), as Annoy).")


class ModelRefOut(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()


class SearchQueryOut(serializers.Serializer):
    item = serializers.IntegerField(source="item_id")
    category = serializers.CharField()
    image = serializers.CharField()


class SearchOut(serializers.Serializer):
    model = ModelRefOut(source="variant")
    query = SearchQueryOut(allow_null=True, help_text="The catalog item searched by; null for a photo.")
    results = SearchResultOut(many=True)
