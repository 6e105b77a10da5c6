"""Who is asking: the client's address, resolved once for every rule that needs it (throttles, stored votes, the
metrics allow-list)."""

from __future__ import annotations

from rest_framework.throttling import BaseThrottle


def client_address(request) -> str | None:
    """The client's address: REMOTE_ADDR, or with VSEARCH_NUM_PROXIES = n the n-th address from the right of
    X-Forwarded-For (what the nearest trusted proxy saw), as DRF's throttles resolve it. Works on a Django request
    and on a DRF one."""
    return BaseThrottle().get_ident(request) or None
