"""The production profile: deploy checks pass, health reports its parts, API errors stay JSON."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def deploy_check(env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("preload", ["0", "1"], ids=["hsts", "hsts with preload"])
def test_deploy_check_reports_no_warnings_with_production_settings(tmp_path, preload):
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "VSEARCH_HTTPS": "1",
        "VSEARCH_HSTS_PRELOAD": preload,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
        "DJANGO_ALLOWED_HOSTS": "vsearch.example.org",
        "VSEARCH_DATA_DIR": str(tmp_path),
    }
    env.pop("VSEARCH_HSTS_SECONDS", None)
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


def test_pages_and_api_answers_carry_the_content_security_policy(db, client, settings):
    for path in ["/", "/leaderboard/", "/api/leaderboard", "/admin/login/", "/api/nothing-here"]:
        response = client.get(path)
        assert response["Content-Security-Policy"] == settings.DEFAULT_CSP, path

    settings.VSEARCH_CSP = ""
    assert "Content-Security-Policy" not in client.get("/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.slow
def test_runserver_without_debug_serves_pages_and_their_static_files_before_collectstatic(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "VSEARCH_TASKS"}}
    env.update(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="test", VSEARCH_DATA_DIR=str(tmp_path))
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "runserver did not start"
                time.sleep(0.2)

        status, headers, page = get(f"http://127.0.0.1:{port}/leaderboard/")
        assert status == 200, page[:500]
        assert b'href="/static/frontend/app.css"' in page  # the plain name: no manifest to hash it
        assert headers["Content-Security-Policy"].startswith("default-src 'self'")
        status, _, css = get(f"http://127.0.0.1:{port}/static/frontend/app.css")
        assert status == 200 and css == (ROOT / "frontend" / "static" / "frontend" / "app.css").read_bytes()
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "No static files manifest" in output
