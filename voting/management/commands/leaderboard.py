import json

from django.core.management.base import BaseCommand, CommandError

from voting.export import ExportFileError, read_rows
from voting.leaderboard import Board, board_live, board_of
from voting.serializers import DecisionOut, LeaderboardRowOut
from voting.tallies import tallies_from_rows


def board_json(board: Board) -> dict:
    """The rows and the decision as GET /api/leaderboard gives them (its serializers)."""
    return {
        "rows": LeaderboardRowOut(board.rows, many=True).data,
        "decision": DecisionOut(board.decision).data,
    }


def _pct(x) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


class Command(BaseCommand):
    help = (
        "Print the staff (live) leaderboard, or with --from FILE the leaderboard of the votes in a vote export "
        "(manage.py export_votes, or GET /api/votes/export): the same estimator, the models as they are now."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="source", metavar="FILE", help="a vote export (CSV or JSON Lines)")
        parser.add_argument("--json", dest="as_json", action="store_true", help="as the API gives them")

    def handle(self, *args, source: str | None, as_json: bool, **options):
        board = board_live() if source is None else board_of(self._tallies(source))
        if as_json:
            self.stdout.write(json.dumps(board_json(board), indent=2, ensure_ascii=False))
            return
        self.stdout.write(f"{'rank':>6}  {'model':<48} {'votes':>6} {'dope':>6} {'approval':>9} {'interval':>15} "
                          f"{'n_eff':>7} {'P(best)':>8} {'P@1':>6}")  # fmt: skip
        for row in board.rows:
            interval = "—" if row.ci_low is None else f"{_pct(row.ci_low)}–{_pct(row.ci_high)}"
            rank = row.rank_group or ("prov." if row.provisional else "")
            self.stdout.write(
                f"{rank:>6}  {row.name[:48]:<48} {row.votes:>6} {row.approvals:>6} {_pct(row.approval_rate):>9} "
                f"{interval:>15} {row.n_eff:>7.1f} {_pct(row.p_best):>8} {_pct(row.p_at_1):>6}"
            )
        self.stdout.write(f"{board.decision.status}: {board.decision.explanation}")

    def _tallies(self, source: str):
        try:
            with open(source, encoding="utf-8", newline="") as fh:
                return tallies_from_rows(read_rows(fh))
        except OSError as exc:
            raise CommandError(f"Cannot read {source}: {exc.strerror or exc}.") from None
        except (ExportFileError, UnicodeDecodeError) as exc:
            raise CommandError(f"{source}: {exc}") from None
