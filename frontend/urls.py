from django.urls import path

from frontend import views

app_name = "frontend"

urlpatterns = [
    path("", views.swipe, name="swipe"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("staff/", views.staff, name="staff"),
    path("staff/variants/<int:variant_id>/rotation", views.staff_rotation, name="staff-rotation"),
    path("staff/variants/<int:variant_id>/rebuild", views.staff_rebuild, name="staff-rebuild"),
    path("staff/variants/<int:variant_id>/refresh", views.staff_refresh, name="staff-refresh"),
]
