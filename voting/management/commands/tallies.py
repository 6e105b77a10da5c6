from django.core.management.base import BaseCommand, CommandError

from voting import ledger
from voting.tallies import tallies, vote_totals


def differences() -> list[str]:
    """Where the folded tallies (plus the votes since the last fold) differ from a recount of the vote rows."""
    out = []
    kept = tallies(("variant_id", "category"))
    recounted = vote_totals(("variant_id", "query_item__category"))
    for key in sorted(set(kept) | set(recounted), key=str):
        a, b = kept.get(key), recounted.get(key)
        a_t = a.as_tuple() if a else (0,) * 7
        b_t = b.as_tuple() if b else (0,) * 7
        if (
            a_t[:2] != b_t[:2]
            or a_t[5:] != b_t[5:]
            or any(abs(x - y) > 1e-6 * max(1.0, abs(y)) for x, y in zip(a_t[2:5], b_t[2:5], strict=True))
        ):
            out.append(f"variant {key[0]} · {key[1]}: kept {a_t}, recounted {b_t}")
    kept_cards = {pair: counts for pair, counts in ledger.card_counts().items() if counts[1]}
    recounted_cards = _recounted_cards()
    for pair in sorted(set(kept_cards) | set(recounted_cards)):
        if kept_cards.get(pair) != recounted_cards.get(pair):
            out.append(f"card {pair}: kept {kept_cards.get(pair)}, recounted {recounted_cards.get(pair)}")
    return out


def _recounted_cards() -> dict[int, tuple[int, int]]:
    from django.db.models import Count, Q

    from voting.models import Vote

    rows = (
        ledger.counted(Vote.objects.all()).values("pair_id").annotate(n=Count("id"), d=Count("id", filter=Q(dope=True)))
    )
    return {row["pair_id"]: (row["d"], row["n"]) for row in rows}


class Command(BaseCommand):
    help = "Vote tallies: fold the newest votes (default), --check them against a recount of every vote, or --rebuild."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="recount from the vote rows and report differences")
        parser.add_argument("--rebuild", action="store_true", help="count everything again from the vote rows")

    def handle(self, *args, check: bool, rebuild: bool, **options):
        if rebuild:
            self.stdout.write(f"Recounted every vote up to #{ledger.recount()}.")
        elif not check:
            self.stdout.write(f"{ledger.fold()} votes folded.")
        if check:
            found = differences()
            for line in found[:50]:
                self.stderr.write(line)
            if found:
                raise CommandError(f"{len(found)} tallies differ from a recount of the votes (fix: --rebuild).")
            self.stdout.write("Tallies match a recount of every vote.")
