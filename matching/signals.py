"""What matching tells the layers above it, without importing them."""

from django.dispatch import Signal

# The set of variants in the rotation (or their pairs) changed: a variant became ready (reason "ready": its
# pairs may be new), was paused, retired, resumed or queued again ("rotation"), or deleted ("deleted"). Sent by the
# service or build step that made the change; voting drops what it cached, and recounts a rebuilt model's tallies.
rotation_changed = Signal()

# Before a variant is deleted: each receiver may answer with a reason to refuse (a string), or None. Voting refuses
# for a variant with votes on its cards: deleting it would silently take them off the leaderboard.
variant_deletion_blockers = Signal()


def deletion_blockers(variant) -> list[str]:
    """The reasons given against deleting `variant` (empty: it may go)."""
    return [reason for _, reason in variant_deletion_blockers.send(sender=type(variant), variant=variant) if reason]
