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


class LeaderboardOut(serializers.Serializer):
    confidence = serializers.FloatField()
    min_votes = serializers.IntegerField()
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
