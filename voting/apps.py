from django.apps import AppConfig


class VotingConfig(AppConfig):
    name = "voting"

    def ready(self) -> None:
        from django.db.models.signals import pre_delete

        from matching.models import Variant
        from matching.signals import rotation_changed, variant_deletion_blockers
        from voting import tasks  # noqa: F401  (registers the periodic voter review)
        from voting.sampling import rotation_forget
        from voting.selectors import variant_delete_guard, variant_votes_block

        # matching says when the rotation changed; voting owns what it cached about it.
        rotation_changed.connect(rotation_forget, dispatch_uid="voting.rotation_forget")
        # Votes survive admin actions: a variant with votes is retired, never deleted.
        variant_deletion_blockers.connect(variant_votes_block, dispatch_uid="voting.variant_votes_block")
        pre_delete.connect(variant_delete_guard, sender=Variant, dispatch_uid="voting.variant_delete_guard")
