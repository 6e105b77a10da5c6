"""Settings from the environment: a bad value stops the start with a message naming the variable."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from vsearch_site.env import database_from_url, env_bool, env_float, env_int, env_list, redis_url_checked

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://x", "the scheme must be sqlite:// or postgres://, not 'mysql'"),
        ("localhost:5432/db", "the scheme must be sqlite:// or postgres://"),
        ("", "not 'empty'"),
        ("postgres://host/", "it names no database"),
        ("postgres://host:port/db", "the port is not a number"),
        ("sqlite://", "use sqlite:////absolute/path/db.sqlite3"),
        ("sqlite:///", "use sqlite:////absolute/path/db.sqlite3"),
        ("sqlite://host/db.sqlite3", "use sqlite:////absolute/path/db.sqlite3"),
        ("postgres://h/db?server_side_binding=maybe", "server_side_binding='maybe' is not a boolean"),
        ("postgres://h/db?prepare_threshold=-1", "prepare_threshold='-1' is not a whole number"),
        ("postgres://h/db?connect_timeout=soon", "connect_timeout='soon' is not a whole number"),
    ],
)
def test_a_bad_database_url_is_refused_naming_the_variable_and_the_problem(url, reason):
    with pytest.raises(ImproperlyConfigured) as caught:
        database_from_url(url)

    assert str(caught.value).startswith(f"DATABASE_URL={url!r} is not a valid database URL")
    assert reason in str(caught.value)


def test_a_postgres_url_becomes_a_django_database_entry():
    entry = database_from_url("postgres://alice:p%40ss@db.example:6543/vsearch?sslmode=require")

    assert entry["ENGINE"] == "vsearch_site.db"  # Django's PostgreSQL backend with a cheaper health check
    assert (entry["NAME"], entry["USER"], entry["PASSWORD"]) == ("vsearch", "alice", "p@ss")
    assert (entry["HOST"], entry["PORT"]) == ("db.example", "6543")
    assert entry["OPTIONS"] == {"sslmode": "require", "server_side_binding": True, "prepare_threshold": 5}


def test_postgres_url_options_arrive_typed_so_server_side_binding_can_be_turned_on():
    entry = database_from_url("postgres://h/db?server_side_binding=on&prepare_threshold=2&connect_timeout=5")

    assert entry["OPTIONS"] == {"server_side_binding": True, "prepare_threshold": 2, "connect_timeout": 5}
    assert database_from_url("postgres://h/db?prepare_threshold=none")["OPTIONS"]["prepare_threshold"] is None


def test_prepared_statements_are_on_for_postgres_unless_the_url_turns_them_off_for_an_old_pgbouncer():
    assert database_from_url("postgres://h/db")["OPTIONS"] == {"server_side_binding": True, "prepare_threshold": 5}
    assert database_from_url("postgres://h/db?server_side_binding=false")["OPTIONS"] == {"server_side_binding": False}


def test_sqlite_urls_take_absolute_and_relative_paths():
    assert database_from_url("sqlite:////var/lib/vsearch/db.sqlite3")["NAME"] == "/var/lib/vsearch/db.sqlite3"
    assert database_from_url("sqlite:///local.sqlite3")["NAME"] == "local.sqlite3"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://x", "the scheme must be redis://, rediss:// or unix://"),
        ("redis://", "it names no host"),
        ("redis://h:port/x", "the port is not a number"),
        ("redis://h:6379/x", "the database number 'x' is not an integer"),
    ],
)
def test_a_bad_redis_url_is_refused_naming_the_variable_and_the_problem(url, reason):
    with pytest.raises(ImproperlyConfigured) as caught:
        redis_url_checked(url)

    assert str(caught.value).startswith(f"REDIS_URL={url!r} is not a valid Redis URL")
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:secret@cache.example:6380", "unix:///run/redis.sock"]
)
def test_good_redis_urls_pass_unchanged(url):
    assert redis_url_checked(url) == url


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("Yes", True), (" on ", True), ("0", False), ("off", False)])
def test_env_bool_reads_the_usual_spellings(monkeypatch, raw, value):
    monkeypatch.setenv("VSEARCH_FLAG", raw)

    assert env_bool("VSEARCH_FLAG", default=not value) is value


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled"])
def test_env_bool_refuses_anything_else_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("VSEARCH_FLAG", raw)

    with pytest.raises(ImproperlyConfigured, match=f"VSEARCH_FLAG={raw!r} is not a boolean: use 1/0, true/false"):
        env_bool("VSEARCH_FLAG")


def test_unset_or_blank_variables_take_the_default(monkeypatch):
    monkeypatch.delenv("VSEARCH_UNSET", raising=False)
    monkeypatch.setenv("VSEARCH_BLANK", "  ")

    assert env_bool("VSEARCH_UNSET", True) is True
    assert env_int("VSEARCH_BLANK", 7) == 7
    assert env_float("VSEARCH_UNSET", 0.5) == 0.5
    assert env_list("VSEARCH_BLANK", ["a"]) == ["a"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("ten", "VSEARCH_N='ten' is not an integer"),
        ("1.5", "VSEARCH_N='1.5' is not an integer"),
        ("0", "VSEARCH_N=0 is below the minimum of 1"),
    ],
)
def test_env_int_refuses_non_integers_and_values_below_the_minimum(monkeypatch, raw, message):
    monkeypatch.setenv("VSEARCH_N", raw)

    with pytest.raises(ImproperlyConfigured, match=message):
        env_int("VSEARCH_N", 5, minimum=1)


def test_env_int_and_env_float_read_good_values(monkeypatch):
    monkeypatch.setenv("VSEARCH_N", " 42 ")
    monkeypatch.setenv("VSEARCH_X", "0.75")

    assert env_int("VSEARCH_N", 5, minimum=1) == 42
    assert env_float("VSEARCH_X", 0.5, minimum=0.5) == 0.75
    monkeypatch.setenv("VSEARCH_X", "lots")
    with pytest.raises(ImproperlyConfigured, match="VSEARCH_X='lots' is not a number"):
        env_float("VSEARCH_X", 0.5)


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("VSEARCH_HOSTS", "a.example, b.example,,")

    assert env_list("VSEARCH_HOSTS", []) == ["a.example", "b.example"]


# ---------------------------------------------------------------------------------------- end to end


def django_setup_with(tmp_path, *, show: str = "", **overrides: str) -> subprocess.CompletedProcess:
    """Start Django in a fresh interpreter with these environment variables; print the settings named in `show`."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "VSEARCH_TASKS"}}
    env = {k: v for k, v in env.items() if not k.startswith(("VSEARCH_HSTS", "VSEARCH_CSP", "VSEARCH_HTTPS"))}
    env.update(DJANGO_SETTINGS_MODULE="vsearch_site.settings", DJANGO_SECRET_KEY="test", VSEARCH_DATA_DIR=str(tmp_path))
    env.update(overrides)
    code = "import django; django.setup()"
    if show:
        code += f"; from django.conf import settings; print([getattr(settings, n, None) for n in {show.split()!r}])"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DATABASE_URL", "mysql://x", "DATABASE_URL='mysql://x' is not a valid database URL"),
        ("REDIS_URL", "redis://", "REDIS_URL='redis://' is not a valid Redis URL: it names no host"),
        ("VSEARCH_BATCH_SIZE", "0", "VSEARCH_BATCH_SIZE=0 is below the minimum of 1"),
        ("VSEARCH_EXACT_MAX_ITEMS_L1", "many", "VSEARCH_EXACT_MAX_ITEMS_L1='many' is not an integer"),
        ("DATABASE_URL", "postgres://h/db?connect_timeout=soon", "connect_timeout='soon' is not a whole number"),
        ("VSEARCH_TASKS", "celery", "VSEARCH_TASKS=celery needs REDIS_URL"),
        ("VSEARCH_HSTS_PRELOAD", "1", "VSEARCH_HSTS_PRELOAD=1 needs VSEARCH_HTTPS=1"),
    ],
)
def test_django_refuses_to_start_with_a_bad_variable_and_says_which(tmp_path, variable, value, message):
    result = django_setup_with(tmp_path, **{variable: value})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_django_starts_with_good_variables(tmp_path):
    result = django_setup_with(
        tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", REDIS_URL="redis://127.0.0.1:6379/0"
    )

    assert result.returncode == 0, result.stderr


def test_hsts_is_sent_without_preload_unless_asked_and_preload_brings_a_year(tmp_path):
    show = "SECURE_HSTS_SECONDS SECURE_HSTS_PRELOAD SECURE_HSTS_INCLUDE_SUBDOMAINS"

    plain = django_setup_with(tmp_path, show=show, VSEARCH_HTTPS="1")
    preload = django_setup_with(tmp_path, show=show, VSEARCH_HTTPS="1", VSEARCH_HSTS_PRELOAD="1")

    assert plain.stdout.strip() == "[3600, False, True]", plain.stderr
    assert preload.stdout.strip() == "[31536000, True, True]", preload.stderr


def test_hsts_preload_with_less_than_a_year_stops_the_start(tmp_path):
    result = django_setup_with(tmp_path, VSEARCH_HTTPS="1", VSEARCH_HSTS_PRELOAD="1", VSEARCH_HSTS_SECONDS="3600")

    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr
    assert "VSEARCH_HSTS_PRELOAD=1 needs VSEARCH_HSTS_SECONDS of at least 31536000 (a year), not 3600" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "policy"),
    [
        ({}, "default-src 'self'"),
        ({"DJANGO_DEBUG": "1"}, ""),  # Django's debug pages are inline
        ({"VSEARCH_CSP": "off"}, ""),
        ({"VSEARCH_CSP": "default-src 'none'"}, "default-src 'none'"),
        ({"DJANGO_DEBUG": "1", "VSEARCH_CSP": "default-src 'self'"}, "default-src 'self'"),
    ],
)
def test_the_content_security_policy_is_on_in_production_and_can_be_replaced_or_turned_off(tmp_path, overrides, policy):
    result = django_setup_with(tmp_path, show="VSEARCH_CSP", **overrides)

    [value] = ast.literal_eval(result.stdout.strip())
    assert value.startswith(policy) and (value == "") == (policy == ""), (value, result.stderr)
