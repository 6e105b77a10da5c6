from django.urls import path

from frontend import views

app_name = "frontend"

urlpatterns = [
    path("", views.swipe, name="swipe"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("search/", views.search, name="search"),
    path("staff/", views.staff, name="staff"),
    path("staff/compare/", views.staff_compare, name="staff-compare"),
    path("staff/variants/<int:variant_id>/examples", views.staff_examples, name="staff-examples"),
    path("staff/map/", views.staff_map, name="staff-map"),
    path("staff/variants/<int:variant_id>/rotation", views.staff_rotation, name="staff-rotation"),
    path("staff/variants/<int:variant_id>/rebuild", views.staff_rebuild, name="staff-rebuild"),
    path("staff/variants/<int:variant_id>/search", views.staff_search, name="staff-search"),
    path("staff/variants/<int:variant_id>/refresh", views.staff_refresh, name="staff-refresh"),
]
