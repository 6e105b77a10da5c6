"""Rate limits on voting: per voter (cookie or user) and per client IP, in the shared cache."""

from rest_framework.throttling import SimpleRateThrottle

from voting.identity import voter_key


class VoterRateThrottle(SimpleRateThrottle):
    """Per voter; a client without a voter cookie is limited by IP under the same scope."""

    scope = "votes"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": voter_key(request) or self.get_ident(request)}


class IPRateThrottle(SimpleRateThrottle):
    """Per client IP, so a cleared cookie does not reset it.

    X-Forwarded-For is trusted only as far as NUM_PROXIES says: rotating it does not help either.
    """

    scope = "votes_ip"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class PairRateThrottle(VoterRateThrottle):
    scope = "pairs"
