"""Rate limits on voting: per voter (cookie or user) and per client address, in the shared cache.

An IPv6 client is limited per /64 (one host usually owns the whole /64, and rotating within it is free). With
Redis down, each process counts on its own instead of letting everything through.
"""

from __future__ import annotations

import ipaddress
import threading
import time

from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

from voting.identity import throttle_key


class WindowThrottle(SimpleRateThrottle):
    """A fixed-window counter (checked by check_all): one INCR in Redis instead of DRF's list of timestamps,
    which is read and rewritten on every request (two round trips and a pickle as long as the rate)."""

    def get_ident(self, request) -> str:
        return address_block(super().get_ident(request))


def address_block(address: str) -> str:
    """What a rate limit counts: an IPv4 address, or the /64 an IPv6 address belongs to."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


class _LocalWindows:
    """Fixed-window counters in this process: the fallback while the shared cache is unreachable."""

    def __init__(self):
        self._counts: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit_many(self, windows: dict[str, float]) -> list[int]:
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > 100_000:  # forget expired windows now and then
                self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
            out = []
            for key, seconds in windows.items():
                expires, n = self._counts.get(key, (now + seconds, 0))
                if expires <= now:
                    expires, n = now + seconds, 0
                self._counts[key] = (expires, n + 1)
                out.append(n + 1)
            return out


local_windows = _LocalWindows()


def check_all(throttles, request, view) -> list[float] | None:
    """Seconds to wait for each refusing throttle, all counted in one round trip; None without a Redis cache
    (DRF's own throttling then counts in the local cache)."""
    if not hasattr(cache, "hit_many"):
        return None
    keyed = [(t, t.get_cache_key(request, view)) for t in throttles if t.rate is not None]
    keyed = [(t, key) for t, key in keyed if key is not None]
    now = time.time()
    windows = {f"{key}:{int(now // t.duration)}": t.duration for t, key in keyed}
    counts = cache.hit_many(windows)
    if counts is None:  # Redis is down: this process's own counts
        counts = local_windows.hit_many(windows)
    return [t.duration - now % t.duration for (t, _), n in zip(keyed, counts, strict=True) if n > t.num_requests]


class VoterRateThrottle(WindowThrottle):
    """Per voter; a client without a voter cookie is limited by address under the same scope."""

    scope = "votes"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": throttle_key(request) or self.get_ident(request)}


class IPRateThrottle(WindowThrottle):
    """Per client address (an IPv6 /64), so a cleared cookie does not reset it.

    X-Forwarded-For is trusted only as far as NUM_PROXIES says: rotating it does not help either.
    """

    scope = "votes_ip"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class PairRateThrottle(VoterRateThrottle):
    scope = "pairs"


class LeaderboardRateThrottle(IPRateThrottle):
    """The public leaderboard: per address."""

    scope = "leaderboard"


class SearchRateThrottle(VoterRateThrottle):
    """Search: per voter cookie, else per address (as voting)."""

    scope = "search"


class SearchIPRateThrottle(IPRateThrottle):
    """Search: per address (an IPv6 /64), so a cleared cookie does not reset it."""

    scope = "search_ip"
