import sys

from django.core.management.base import BaseCommand, CommandError

from voting.export import BATCH, FORMATS, export_lines


class Command(BaseCommand):
    help = (
        "Write every vote as CSV or JSON Lines (voting/export.py): anonymised voter, card, items and categories, the "
        "models holding the card with their ranks, verdict, shown_ms, time, gold/excluded/counted flags, propensity. "
        "Streamed in batches: constant memory at any size."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=sorted(FORMATS), default="csv")
        parser.add_argument("--output", "-o", default="-", help="file to write (default: standard output)")
        parser.add_argument("--batch", type=int, default=BATCH, help="votes read per query")

    def handle(self, *args, format: str, output: str, batch: int, **options):
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        if output == "-":
            for chunk in export_lines(format, batch=batch):
                sys.stdout.write(chunk)
            sys.stdout.flush()
            return
        try:
            with open(output, "w", encoding="utf-8", newline="") as fh:
                for chunk in export_lines(format, batch=batch):
                    fh.write(chunk)
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror or exc}.") from None
        self.stderr.write(f"Votes written to {output}.")
