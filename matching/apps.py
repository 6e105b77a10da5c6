from django.apps import AppConfig


class MatchingConfig(AppConfig):
    name = "matching"
    verbose_name = "Catalog and matching"

    def ready(self) -> None:
        from matching import tasks  # noqa: F401  (registers the build tasks, which dispatch sends by name)
