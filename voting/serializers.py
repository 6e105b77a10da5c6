from collections.abc import Mapping

from rest_framework import serializers
from rest_framework.fields import SkipField


class VoteIn(serializers.Serializer):
    token = serializers.CharField(max_length=500)
    verdict = serializers.ChoiceField(choices=["dope", "nope"])
    shown_ms = serializers.IntegerField(required=False, min_value=0, max_value=86_400_000, allow_null=True)


_VOTE_FIELDS = tuple(VoteIn().fields.values())  # deep-copied and bound once, not on every vote


def vote_in(data) -> dict:
    """VoteIn's validation (its fields, DRF's messages, the same 400) without a serializer per vote: building one
    deep-copies its fields, which cost more CPU than checking three values (docs/BENCHMARKS.md, vote path)."""
    if not isinstance(data, Mapping):
        raise serializers.ValidationError(
            {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {type(data).__name__}."]}
        )
    validated, errors = {}, {}
    for field in _VOTE_FIELDS:
        try:
            validated[field.field_name] = field.run_validation(field.get_value(data))
        except SkipField:
            continue
        except serializers.ValidationError as exc:
            errors[field.field_name] = exc.detail
    if errors:
        raise serializers.ValidationError(errors)
    return validated


class ReasonIn(serializers.Serializer):
    token = serializers.CharField(max_length=500, help_text="The token the nope was cast with.")
    reason = serializers.CharField(max_length=20, help_text="kind, colour, pattern or other.")


class ReasonOut(serializers.Serializer):
    reason = serializers.CharField()


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
    draw_share = serializers.FloatField(
        allow_null=True, required=False, help_text="Staff's live view only: the serving design's share of the draws."
    )


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


# ---------------------------------------------------------------------------------------- the workbench (staff)


class CompareIn(serializers.Serializer):
    item = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1, help_text="The query item's id.")
    category = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="Previous/next and random move among this category's queries.",
    )
    random = serializers.BooleanField(required=False, default=False, help_text="A random query (in the category).")

    def validate(self, data):
        if data.get("item") is not None and data["random"]:
            raise serializers.ValidationError("Ask for an item or for a random query, not both.")
        return data


class ItemRefOut(serializers.Serializer):
    id = serializers.IntegerField()
    category = serializers.CharField()
    image = serializers.CharField()


class CompareMatchOut(serializers.Serializer):
    pair_id = serializers.IntegerField()
    rank = serializers.IntegerField(help_text="0: the nearest.")
    distance = serializers.FloatField()
    item = ItemRefOut()
    shared_with = serializers.ListField(
        child=serializers.IntegerField(), help_text="The other ready models whose top-k holds the same card."
    )
    dope = serializers.IntegerField(help_text="Counted dope votes on the card.")
    nope = serializers.IntegerField(help_text="Counted nope votes on the card.")
    reasons = serializers.DictField(child=serializers.IntegerField(), help_text="Why nope: reason -> counted votes.")


class CompareColumnOut(serializers.Serializer):
    variant_id = serializers.IntegerField()
    name = serializers.CharField()
    rotation = serializers.CharField()
    metric = serializers.CharField()
    search = serializers.CharField(help_text="How its pairs were found: exact, annoy or random.")
    matches = CompareMatchOut(many=True)


class CompareOut(serializers.Serializer):
    query = ItemRefOut()
    category = serializers.CharField(allow_null=True)
    previous = serializers.IntegerField(allow_null=True, help_text="The query before this one (in the category).")
    next = serializers.IntegerField(allow_null=True, help_text="The query after this one (in the category).")
    columns = CompareColumnOut(many=True)


REASONS_HELP = "Why nope: reason -> counted votes (staff only; null for the public)."


class ExampleOut(serializers.Serializer):
    pair_id = serializers.IntegerField()
    query = ItemRefOut()
    match = ItemRefOut()
    rank = serializers.IntegerField(help_text="0: the model's nearest match for the query.")
    distance = serializers.FloatField()
    dope = serializers.IntegerField()
    nope = serializers.IntegerField()
    reasons = serializers.DictField(child=serializers.IntegerField(), allow_null=True, help_text=REASONS_HELP)


class ExamplesOut(serializers.Serializer):
    variant_id = serializers.IntegerField()
    name = serializers.CharField()
    rotation = serializers.CharField()
    min_votes = serializers.IntegerField(help_text="Counted votes a card needs to be an example.")
    approved = ExampleOut(many=True, help_text="Most approved cards first.")
    rejected = ExampleOut(many=True, help_text="Most rejected cards first.")
    reasons = serializers.DictField(
        child=serializers.IntegerField(), allow_null=True, help_text=f"Over all the model's cards. {REASONS_HELP}"
    )


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
