from django.core.management.base import BaseCommand

from matching.selectors import offline_table


def pct(value) -> str:
    return "   -  " if value is None else f"{value:6.1%}"


class Command(BaseCommand):
    help = "Print the offline accuracy table of every variant: random control first, then by P@1."

    def handle(self, *args, **options):
        rows = offline_table()
        if not rows:
            self.stdout.write("No variants yet: run build_variants.")
            return
        width = max(len(r.name) for r in rows)
        self.stdout.write(f"{'variant':<{width}}  status   items   P@1    P@k  recall@k  pairs  build s")
        for r in rows:
            build = "-" if r.build_seconds is None else f"{r.build_seconds:.1f}"
            scores = f"{pct(r.p_at_1)} {pct(r.p_at_k)}  {pct(r.recall_at_k)}"
            line = f"{r.name:<{width}}  {r.status:<7} {r.queries:>6} {scores}  {r.search or '-':<5}  {build:>7}"
            self.stdout.write(line)
        self.stdout.write(
            "P@1/P@k: share of the stored top-1/top-k matches in the query's category. recall@k: the Annoy "
            "index against exact search (same metric); pairs: how the stored pairs were found."
        )
