"""The site's URLs plus /floor/django: a trivial view behind the whole middleware stack (the framework's floor)."""

from django.http import HttpResponse
from django.urls import path

from vsearch_site.urls import urlpatterns as site_urlpatterns


def floor(request):
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [path("floor/django", floor), *site_urlpatterns]
