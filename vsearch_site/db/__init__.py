"""Django's PostgreSQL backend with a health check that needs no round trip (vsearch_site/db/base.py)."""
