from django.apps import AppConfig


class VotingConfig(AppConfig):
    name = "voting"

    def ready(self) -> None:
        from matching.signals import rotation_changed
        from voting.sampling import rotation_forget

        # matching says when the rotation changed; voting owns what it cached about it.
        rotation_changed.connect(rotation_forget, dispatch_uid="voting.rotation_forget")
