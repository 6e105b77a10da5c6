"""Rate limits on voting: per voter (cookie or user) and per client IP, in the shared cache."""

import time

from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

from voting.identity import voter_key


class WindowThrottle(SimpleRateThrottle):
    """A fixed-window counter (checked by check_all): one INCR in Redis instead of DRF's list of timestamps,
    which is read and rewritten on every request (two round trips and a pickle as long as the rate)."""


def check_all(throttles, request, view) -> list[float] | None:
    """Seconds to wait for each refusing throttle, all counted in one round trip; None without Redis."""
    if not hasattr(cache, "hit_many"):
        return None
    keyed = [(t, t.get_cache_key(request, view)) for t in throttles if t.rate is not None]
    keyed = [(t, key) for t, key in keyed if key is not None]
    now = time.time()
    counts = cache.hit_many({f"{key}:{int(now // t.duration)}": t.duration for t, key in keyed})
    return [t.duration - now % t.duration for (t, _), n in zip(keyed, counts, strict=True) if n > t.num_requests]


class VoterRateThrottle(WindowThrottle):
    """Per voter; a client without a voter cookie is limited by IP under the same scope."""

    scope = "votes"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": voter_key(request) or self.get_ident(request)}


class IPRateThrottle(WindowThrottle):
    """Per client IP, so a cleared cookie does not reset it.

    X-Forwarded-For is trusted only as far as NUM_PROXIES says: rotating it does not help either.
    """

    scope = "votes_ip"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class PairRateThrottle(VoterRateThrottle):
    scope = "pairs"
