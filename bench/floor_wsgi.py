"""gunicorn entry point for bench.api: vsearch's own WSGI app, plus two floors to compare the API with.

/floor/wsgi is answered here, before Django (the server's floor); /floor/django is a trivial Django view
(bench.floor_urls) behind the full middleware stack. Every other path is vsearch unchanged.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vsearch_site.settings")

from django.conf import settings  # noqa: E402

from vsearch_site.wsgi import application as vsearch_application  # noqa: E402

# Resolved per request, so switching here (after setup, before any request) routes /floor/django.
settings.ROOT_URLCONF = "bench.floor_urls"


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/floor/wsgi":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    return vsearch_application(environ, start_response)
