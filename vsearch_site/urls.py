from django.contrib import admin
from django.urls import include, path, re_path

from vsearch_site import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("voting.urls")),
    path("api/", include("matching.urls")),
    path("health", views.health, name="health"),
    re_path(r"^media/(?P<path>.*)$", views.media, name="media"),
    path("", include("frontend.urls")),
]
