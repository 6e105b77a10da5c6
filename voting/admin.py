from django.contrib import admin

from voting.models import Vote, Voter


@admin.register(Voter)
class VoterAdmin(admin.ModelAdmin):
    list_display = ["uuid", "user", "created_at"]
    search_fields = ["uuid"]


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["id", "voter", "pair", "dope", "shown_ms", "created_at"]
    list_filter = ["dope"]
    raw_id_fields = ["voter", "pair"]
