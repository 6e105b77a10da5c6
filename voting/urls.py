from django.urls import path

from voting import api

urlpatterns = [
    path("pairs/next", api.PairNext.as_view(), name="pair-next"),
    path("votes", api.VoteCreate.as_view(), name="vote-create"),
    path("votes/undo", api.VoteUndo.as_view(), name="vote-undo"),
    path("votes/reason", api.VoteReason.as_view(), name="vote-reason"),
    path("votes/export", api.VotesExport.as_view(), name="votes-export"),
    path("leaderboard", api.Leaderboard.as_view(), name="leaderboard"),
    path("search", api.Search.as_view(), name="search"),
    path("search/models", api.SearchModels.as_view(), name="search-models"),
    path("leaderboard/<int:variant_id>/categories", api.LeaderboardCategories.as_view(), name="leaderboard-categories"),
    path("leaderboard/<int:variant_id>/examples", api.LeaderboardExamples.as_view(), name="leaderboard-examples"),
    path("compare", api.Compare.as_view(), name="compare"),
]
