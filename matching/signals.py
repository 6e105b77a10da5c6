"""What matching tells the layers above it, without importing them."""

from django.dispatch import Signal

# The set of variants in the rotation (or their pairs) changed: a variant became ready, was paused, retired,
# resumed or rebuilt. Sent by the service or build step that made the change; voting drops what it cached.
rotation_changed = Signal()
