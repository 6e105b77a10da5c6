"""Caching, in one place: a Redis cache that degrades to "always a miss" while Redis is down,
stale-while-revalidate over it, and a short per-process memo in front of it.

Voting and the leaderboard only use the cache to go faster (rotation, vote tallies) and to throttle;
with Redis gone they keep working uncached, and log it once per outage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError, TimeoutError

log = logging.getLogger(__name__)
ERRORS = (ConnectionError, TimeoutError, OSError)
RETRY_AFTER = 5.0  # seconds without trying Redis after a failure, so a dead server costs nothing per request


class _ReusedClient(RedisCacheClient):
    """Django builds a redis.Redis per call (~70 µs of CPU with redis-py 8, which copies its response
    callbacks each time); one client per connection pool is enough."""

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        clients = self.__dict__.setdefault("_clients", {})
        client = clients.get(id(pool))
        if client is None:
            client = clients[id(pool)] = self._client(connection_pool=pool)
        return client

    def hit_many(self, windows):
        """INCR fixed-window counters {key: seconds} and give them their expiry, in one round trip. (A Lua script
        doing the same in one command cost no less CPU: docs/BENCHMARKS.md, vote path.)"""
        pipe = self.get_client(None, write=True).pipeline(transaction=False)
        for key, seconds in windows.items():
            pipe.incr(key)
            pipe.expire(key, seconds, nx=True)
        return pipe.execute()[::2]


class ResilientRedisCache(RedisCache):
    _down_until = 0.0

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _ReusedClient

    def hit_many(self, windows, version=None):
        """Counts after the hits, or None while Redis is down (the caller falls back to counting locally)."""
        windows = {self.make_and_validate_key(k, version=version): s for k, s in windows.items()}
        return self._guard(lambda: self._cache.hit_many(windows), None)

    @classmethod
    def is_down(cls) -> bool:
        return time.monotonic() < cls._down_until

    def _guard(self, call, default):
        now = time.monotonic()
        if now < type(self)._down_until:
            return default
        try:
            return call()
        except ERRORS as exc:
            if type(self)._down_until == 0.0:
                log.warning("cache unavailable (%s): serving uncached until Redis is back", exc)
            type(self)._down_until = now + RETRY_AFTER
            return default

    def _up(self, value):
        type(self)._down_until = 0.0
        return value

    def get(self, key, default=None, version=None):
        return self._guard(lambda: self._up(super(ResilientRedisCache, self).get(key, default, version)), default)

    def get_many(self, keys, version=None):
        return self._guard(lambda: super(ResilientRedisCache, self).get_many(keys, version), {})

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        self._guard(lambda: super(ResilientRedisCache, self).set(key, value, timeout, version), None)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard(lambda: super(ResilientRedisCache, self).add(key, value, timeout, version), False)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard(lambda: super(ResilientRedisCache, self).set_many(data, timeout, version), list(data))

    def delete(self, key, version=None):
        return self._guard(lambda: super(ResilientRedisCache, self).delete(key, version), False)

    def delete_many(self, keys, version=None):
        self._guard(lambda: super(ResilientRedisCache, self).delete_many(keys, version), None)

    def has_key(self, key, version=None):
        return self._guard(lambda: super(ResilientRedisCache, self).has_key(key, version), False)

    def incr(self, key, delta=1, version=None):
        return self._guard(lambda: super(ResilientRedisCache, self).incr(key, delta, version), delta)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard(lambda: super(ResilientRedisCache, self).touch(key, timeout, version), False)

    def clear(self):
        self._guard(lambda: super(ResilientRedisCache, self).clear(), None)


def revalidated(
    key: str, max_age: float, compute: Callable[[], Any], *, usable: Callable[[Any], bool] = lambda v: True
):
    """Stale-while-revalidate through the shared cache: the last value serves every request; once it is
    older than `max_age` one process (holding a short cache lock) recomputes while the others keep getting
    the previous value at once. An aggregate over every vote never runs in every web worker at once."""
    cached = cache.get(key)
    if cached is not None and usable(cached[1]):
        computed_at, value = cached
        if time.time() - computed_at < max_age or not cache.add(f"{key}:lock", 1, 60):
            return value
    try:
        value = compute()
        cache.set(key, (time.time(), value), 3600)
    finally:
        cache.delete(f"{key}:lock")
    return value


class ProcessMemo:
    """Values this process reuses for `seconds` before asking the shared cache again (the hot path reads the
    rotation on every card; a Redis round trip each time cost more than the card's own query)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._values: dict[str, tuple[float, Any]] = {}

    def get(self, key: str):
        hit = self._values.get(key)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < self.seconds else None

    def put(self, key: str, value) -> None:
        self._values[key] = (time.monotonic(), value)

    def clear(self) -> None:
        self._values.clear()
