from django.core.management.base import BaseCommand

from matching.selectors import stale_variants
from matching.services import variant_refresh


class Command(BaseCommand):
    help = (
        "Ready models whose pairs do not cover the catalog as it is (items imported or deleted since they were built); "
        "--refresh brings them up to date (only new items are featurized)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--refresh", action="store_true", help="refresh every stale model (in the background)")

    def handle(self, *args, refresh: bool, **options):
        stale = stale_variants()
        if not stale:
            self.stdout.write("Every ready model covers the catalog.")
            return
        for variant, coverage in stale:
            notes = [f"{coverage.added} new", f"{coverage.removed} removed"]
            if coverage.features_changed:
                notes.append("features recomputed")
            if coverage.unembedded:
                notes.append(f"{coverage.unembedded} without uploaded embeddings")
            self.stdout.write(f"{variant.name}: stale ({', '.join(notes)})")
            if refresh:
                variant_refresh(variant=variant)
        if refresh:
            self.stdout.write(f"{len(stale)} model(s) refreshing.")
