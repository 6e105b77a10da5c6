"""The production profile: deploy checks pass, health reports its parts, API errors stay JSON."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def deploy_check(env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_deploy_check_reports_no_warnings_with_production_settings(tmp_path):
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "VSEARCH_HTTPS": "1",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
        "DJANGO_ALLOWED_HOSTS": "vsearch.example.org",
        "VSEARCH_DATA_DIR": str(tmp_path),
    }
    result = deploy_check(env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deploy_check_warns_when_the_laptop_defaults_are_used(tmp_path):
    env = {**os.environ, "DJANGO_DEBUG": "1", "VSEARCH_DATA_DIR": str(tmp_path)}
    env.pop("VSEARCH_HTTPS", None)
    result = deploy_check(env)

    assert result.returncode != 0
    assert "DEBUG" in result.stderr + result.stdout


def test_health_reports_the_database(db, client):
    body = client.get("/health").json()

    assert body["status"] == "ok" and body["checks"]["database"] == "ok"


def test_unknown_api_paths_answer_json_and_pages_answer_html(db, client):
    api = client.get("/api/nothing-here")
    page = client.get("/nothing-here")

    assert api.status_code == 404 and api.json()["detail"].startswith("No API endpoint")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_collectstatic_names_the_hashed_files_inside_es_module_imports(tmp_path, settings):
    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "vsearch_site.staticfiles.StaticStorage"}}

    call_command("collectstatic", interactive=False, verbosity=0)

    main = next((tmp_path / "static/frontend/swipe").glob("main.*.js"))
    imports = re.findall(r'from "([^"]+)"', main.read_text())
    assert imports and all(re.search(r"\.[0-9a-f]{12}\.js$", name) for name in imports), imports
    for name in imports:
        assert (main.parent / name).resolve().exists()
