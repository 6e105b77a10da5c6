"""The Celery app: configured from Django settings under the CELERY_ namespace, JSON only."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vsearch_site.settings")

app = Celery("vsearch_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
