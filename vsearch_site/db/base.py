"""Django's PostgreSQL backend, with a cheaper health check.

CONN_HEALTH_CHECKS makes Django test a persistent connection before each request's first query, so a connection
that PostgreSQL closed (a restart, a terminated backend) is replaced instead of failing the request. Django tests it
with a `SELECT 1` round trip, one more statement on every request (about 50 µs of CPU here and a few more in the
server: docs/BENCHMARKS.md, vote path). A server that ends a connection tells the client first (a FATAL message,
then the close), which makes the socket readable; a healthy idle connection has nothing waiting. So: poll the socket
without waiting, and only when something arrived ask with `SELECT 1` as Django does. A connection that died
silently (a cut network) fails its first query instead; that request answers 503 and the connection is dropped.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper


class DatabaseWrapper(PostgresWrapper):
    def is_usable(self):
        if self.connection is None or self.connection.closed:
            return False
        if self.errors_occurred:  # a query failed on it: ask the server, as Django does
            return super().is_usable()
        try:
            readable, _, _ = select.select([self.connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable or super().is_usable()
