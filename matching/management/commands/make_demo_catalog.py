import io
from pathlib import Path

from django.core.management.base import BaseCommand
from tqdm import tqdm

from matching.catalog import Entry
from matching.demo_catalog import CATEGORIES, generate
from matching.models import Item
from matching.services import item_add


class Command(BaseCommand):
    help = "Render a synthetic catalog of garments and accessories (deterministic for a seed) and import it."

    def add_arguments(self, parser):
        parser.add_argument("--n", type=int, default=600, help="number of items (default 600)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--size", type=int, default=128, help="image side in pixels")

    def handle(self, *args, n: int, seed: int, size: int, **options):
        if Item.objects.filter(source__startswith=f"demo seed={seed} #").count() >= n:
            self.stdout.write(f"The demo catalog for seed {seed} is already there ({n} items): nothing to do.")
            return
        added = 0
        for i, item in enumerate(
            tqdm(
                generate(n, seed, size),
                total=n,
                desc="demo catalog",
                unit="img",
                disable=options["verbosity"] == 0,
                file=self.stderr._out,
            )
        ):
            buffer = io.BytesIO()
            item.image.save(buffer, format="PNG", optimize=False)
            entry = Entry(
                path=Path(f"demo-{seed}/{item.category}/{i:05d}.png"),
                category=item.category,
                attributes=item.attributes,
                source=f"demo seed={seed} #{i}",
            )
            added += item_add(entry=entry, data=buffer.getvalue())
        self.stdout.write(f"{added} demo items added ({n - added} already there), {len(CATEGORIES)} categories.")
