from django.core.management.base import BaseCommand

from voting.models import GoldCard
from voting.services import gold_cards_ensure


class Command(BaseCommand):
    help = (
        "Prepare gold cards (known answers that measure voters): half an item beside an altered copy of itself "
        "(known dope), half two items of different categories (known nope). Adds only what is missing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=None, help="how many in all (default VSEARCH_GOLD_CARDS)")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, count, seed, **options):
        added = gold_cards_ensure(count=count, seed=seed)
        kinds = {k: GoldCard.objects.filter(kind=k).count() for k in GoldCard.Kind.values}
        self.stdout.write(f"{added} gold cards added: {kinds['copy']} known dope, {kinds['other']} known nope.")
