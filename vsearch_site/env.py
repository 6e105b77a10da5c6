"""Typed readers for environment variables: bad values fail at start, naming the variable."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [part.strip() for part in raw.split(",") if part.strip()]


def env_networks(name: str, default: list[str]) -> list[str]:
    """A comma-separated list of IP addresses or networks (10.0.0.0/8, ::1); a malformed one stops the start."""
    import ipaddress

    values = env_list(name, default)
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {value!r} is not an IP address or network (10.0.0.0/8).") from None
    return values


def _pg_options(query: str, problem: str) -> dict:
    """Query options of a postgres:// URL, typed: Django and psycopg get booleans and integers, not text.

    Prepared statements are on by default: server_side_binding sends parameters apart from the SQL, and a statement
    a connection has run prepare_threshold (5) times is prepared, so PostgreSQL plans it once per connection. The
    card statement spent 0.7 ms planning against 0.15 ms running (docs/BENCHMARKS.md, vote path). Django's own
    default is off, and without prepare_threshold it never prepares even with server_side_binding on.
    Behind PgBouncer in transaction mode, prepared statements need PgBouncer 1.21+ with max_prepared_statements;
    with an older one use ?server_side_binding=false (or ?prepare_threshold=none).
    """
    options: dict = {}
    for key, raw in parse_qsl(query, keep_blank_values=True):
        if key == "server_side_binding":
            if raw.lower() not in _TRUE | _FALSE:
                raise ImproperlyConfigured(f"{problem}: server_side_binding={raw!r} is not a boolean (true/false).")
            options[key] = raw.lower() in _TRUE
        elif key in {"prepare_threshold", "connect_timeout"}:
            if raw.lower() == "none" and key == "prepare_threshold":
                options[key] = None  # never prepare
                continue
            if not raw.isdigit():
                raise ImproperlyConfigured(f"{problem}: {key}={raw!r} is not a whole number.")
            options[key] = int(raw)
        else:
            options[key] = raw  # libpq's own (sslmode, application_name, ...): text, as libpq takes them
    options.setdefault("server_side_binding", True)
    if options["server_side_binding"]:
        options.setdefault("prepare_threshold", 5)
    return options


def database_from_url(url: str, *, variable: str = "DATABASE_URL") -> dict:
    """Turn `sqlite:///path` or `postgres://user:pass@host:port/name` into a Django DATABASES entry."""
    problem = f"{variable}={url!r} is not a valid database URL"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path)
        if parts.netloc or not path or path == "/":
            raise ImproperlyConfigured(
                f"{problem}: use sqlite:////absolute/path/db.sqlite3 or sqlite:///relative.sqlite3."
            )
        name = path[1:]  # sqlite:////abs/db -> /abs/db; sqlite:///rel.db -> rel.db
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name, "OPTIONS": {"timeout": 20}}
    if scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"{problem}: it names no database (postgres://user@host:5432/dbname).")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{problem}: the port is not a number.") from None
        options = _pg_options(parts.query, problem)
        return {
            "ENGINE": "vsearch_site.db",  # Django's PostgreSQL backend, health-checked without a round trip
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(
        f"{problem}: the scheme must be sqlite:// or postgres://, not {parts.scheme or 'empty'!r}."
    )


def redis_url_checked(url: str, *, variable: str = "REDIS_URL") -> str:
    """Check `redis://[:password@]host[:port][/db]` and return it unchanged."""
    problem = f"{variable}={url!r} is not a valid Redis URL"
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"{problem}: the scheme must be redis://, rediss:// or unix://.")
    if parts.scheme != "unix" and not parts.hostname:
        raise ImproperlyConfigured(f"{problem}: it names no host (redis://127.0.0.1:6379/0).")
    try:
        _ = parts.port  # urlsplit parses the port lazily
    except ValueError:
        raise ImproperlyConfigured(f"{problem}: the port is not a number.") from None
    db = parts.path.lstrip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise ImproperlyConfigured(f"{problem}: the database number {db!r} is not an integer.")
    return url
