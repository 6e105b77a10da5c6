from django.urls import path

from frontend import views

app_name = "frontend"

urlpatterns = [
    path("", views.swipe, name="swipe"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("search/", views.search, name="search"),
    path("staff/", views.staff, name="staff"),
    path("staff/map/", views.staff_map, name="staff-map"),
    path("staff/variants/<int:variant_id>/rotation", views.staff_rotation, name="staff-rotation"),
    path("staff/variants/<int:variant_id>/rebuild", views.staff_rebuild, name="staff-rebuild"),
]
