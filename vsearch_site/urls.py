from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from vsearch_site import views
from vsearch_site.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/", include("voting.urls")),
    path("api/", include("matching.urls")),
    path("health", views.health, name="health"),
    path("metrics", metrics_view, name="metrics"),
    re_path(r"^media/(?P<path>.*)$", views.media, name="media"),
    path("", include("frontend.urls")),
]

handler400 = "vsearch_site.views.bad_request"
handler404 = "vsearch_site.views.not_found"
handler500 = "vsearch_site.views.server_error"
