from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from matching.catalog import SourceError
from matching.services import catalog_import


class Command(BaseCommand):
    help = (
        "Import catalog images from a folder of category folders (dataset/bottle/x.jpg) or a CSV/JSON manifest "
        "with columns path, category, attributes (JSON), bbox (left,top,right,bottom). Re-importing adds nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument(
            "--allow-outside",
            action="store_true",
            help="also import images outside the folder (the manifest's folder) or reached through symbolic links",
        )

    def handle(self, *args, path: Path, allow_outside: bool = False, **options):
        bar = tqdm(desc="import", unit="img", disable=options["verbosity"] == 0, file=self.stderr._out)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            report = catalog_import(source=path, allow_outside=allow_outside, progress=progress)
        except SourceError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        for name, reason in report.rejected:
            self.stderr.write(f"skipped {name}: {reason}")
        self.stdout.write(
            f"{report.added} added, {report.existing} already in the catalog, {len(report.rejected)} skipped."
        )
