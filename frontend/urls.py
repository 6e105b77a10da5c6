from django.urls import path

from frontend import views

app_name = "frontend"

urlpatterns = [
    path("", views.swipe, name="swipe"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
]
