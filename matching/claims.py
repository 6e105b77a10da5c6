"""Claiming background work with a conditional UPDATE: who holds a claim, and whether that holder may still be at work.

A claim is `host:pid:nonce` on the claimed row plus a heartbeat. Build steps (pipeline) and featurizing chunks and
merges (featurizing) are claimed the same way: a redelivered copy whose owner is alive does nothing; one whose
owner died (its pid is gone, or it gave no sign of life for VSEARCH_BUILD_LEASE_SECONDS) takes over.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

HOST = socket.gethostname()


def new_owner() -> str:
    """A claim's holder: this host and process, and a nonce (two claims by one process are told apart)."""
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(claimed_by: str, heartbeat_at) -> bool:
    """Whether the process that claimed a piece of work may still be running it: on this host, its pid exists; on
    another host, it showed a sign of life within the lease (VSEARCH_BUILD_LEASE_SECONDS)."""
    if not claimed_by:
        return False
    lease = timedelta(seconds=settings.VSEARCH_BUILD_LEASE_SECONDS)
    if heartbeat_at is None or heartbeat_at < timezone.now() - lease:
        return False
    host, _, rest = claimed_by.partition(":")
    pid = rest.partition(":")[0]
    if host != HOST or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process with that pid: alive
    return True
