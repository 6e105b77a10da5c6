from django.contrib import admin, messages
from django.db.models import Count

from voting.models import GoldCard, PublicSnapshot, Vote, Voter
from voting.services import voter_set_decision


@admin.action(description="Include: always count their votes")
def include(modeladmin, request, queryset):
    _decide(request, queryset, Voter.StaffDecision.INCLUDE)


@admin.action(description="Exclude: never count their votes (they are kept)")
def exclude(modeladmin, request, queryset):
    _decide(request, queryset, Voter.StaffDecision.EXCLUDE)


@admin.action(description="Automatic: let the review decide again")
def automatic(modeladmin, request, queryset):
    _decide(request, queryset, Voter.StaffDecision.NONE)


def _decide(request, queryset, decision: str) -> None:
    for voter in queryset:
        voter_set_decision(voter=voter, decision=decision)
    messages.success(request, f"{queryset.count()} voter(s): {Voter.StaffDecision(decision).label}.")


class FlaggedFilter(admin.SimpleListFilter):
    title = "flags"
    parameter_name = "flag"

    def lookups(self, request, model_admin):
        return [
            ("any", "any flag"),
            ("gold", "gold"),
            ("anomalous", "anomalous"),
            ("fast", "fast"),
            ("streak", "streak"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "any":
            return queryset.exclude(flags=[])
        if self.value():
            return queryset.filter(flags__contains=[self.value()])
        return queryset


@admin.register(Voter)
class VoterAdmin(admin.ModelAdmin):
    list_display = [
        "uuid",
        "user",
        "created_at",
        "votes",
        "counted",
        "excluded",
        "flags",
        "gold_right",
        "gold_wrong",
        "anomaly_p",
        "staff_decision",
        "reason",
    ]
    list_filter = ["counted", "excluded", FlaggedFilter, "staff_decision"]
    search_fields = ["uuid", "reason"]
    actions = [include, exclude, automatic]
    readonly_fields = [
        "uuid",
        "created_at",
        "counted",
        "excluded",
        "excluded_at",
        "reason",
        "flags",
        "gold_right",
        "gold_wrong",
        "anomaly_p",
        "reviewed_votes",
        "reviewed_at",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_votes=Count("votes"))

    @admin.display(ordering="n_votes")
    def votes(self, voter: Voter) -> int:
        return voter.n_votes

    def save_model(self, request, obj, form, change):
        """The staff decision goes through the service, which also sets exclusion to match."""
        super().save_model(request, obj, form, change)
        if "staff_decision" in form.changed_data:
            voter_set_decision(voter=obj, decision=obj.staff_decision)


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["id", "voter", "pair", "dope", "gold", "shown_ms", "propensity", "created_at"]
    list_filter = ["dope", ("gold", admin.EmptyFieldListFilter), "voter__counted"]
    raw_id_fields = ["voter", "pair"]


@admin.register(GoldCard)
class GoldCardAdmin(admin.ModelAdmin):
    list_display = ["seq", "kind", "pair"]
    list_filter = ["kind"]
    raw_id_fields = ["pair"]


@admin.register(PublicSnapshot)
class PublicSnapshotAdmin(admin.ModelAdmin):
    list_display = ["window_start", "cutoff", "taken_at"]
    readonly_fields = ["window_start", "cutoff", "taken_at", "rows", "categories"]
