"""The votes as a file: one row per vote, streamed from the database in id order (CSV or JSON Lines), and read back.

A row carries what a vote means for the leaderboard and nothing that names a person: an anonymised voter id (a
keyed hash of the voter's uuid under the site's secret key: stable per voter, meaningless without the key), the card
and its two items with their categories, every model whose top-k holds the card with its rank there, the verdict,
how long the card was shown and when, whether it was a gold card (its known answer) or cast by a voter whose votes
do not count (excluded, or not qualified yet), and the probability the card had of being drawn.

Votes are read in batches by id (keyset pagination), so an export holds one batch in memory at any size. Each batch
is read as it is written out: a vote cast (or undone) while an export runs may or may not be in it.
`read_rows` parses a file back into the same rows; `manage.py leaderboard --from FILE` feeds them to the
leaderboard's own estimator (voting.tallies.tallies_from_rows, voting.leaderboard.board_of).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from matching.models import MatchPair, Variant
from voting.models import Vote

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
BATCH = 2000  # votes per query: a batch and its match pairs are all an export holds in memory
COLUMNS = (
    "voter",
    "card",
    "query_item",
    "query_category",
    "match_item",
    "match_category",
    "models",
    "verdict",
    "shown_ms",
    "time",
    "gold",
    "excluded",
    "counted",
    "propensity",
)


class ExportFileError(ValueError):
    """A file that is not a vote export, or a damaged one; the message names the line."""


@dataclass(frozen=True)
class Maker:
    variant_id: int
    name: str
    rank: int


@dataclass(frozen=True)
class ExportRow:
    voter: str
    card: int
    query_item: int
    query_category: str
    match_item: int
    match_category: str
    models: tuple[Maker, ...]
    dope: bool
    shown_ms: int | None
    time: datetime
    gold: bool | None  # a gold card's known answer (True: dope); None for a model's card
    excluded: bool  # the voter is excluded (their votes leave every tally)
    counted: bool  # the voter's votes count (qualified by gold answers and not excluded)
    propensity: float | None


def voter_pseudonym(voter_uuid) -> str:
    """A stable id for a voter that only the site's secret key links back to them."""
    digest = hmac.new(settings.SECRET_KEY.encode(), b"vsearch.export-voter:" + voter_uuid.bytes, hashlib.sha256)
    return digest.hexdigest()[:20]


def vote_rows(*, batch: int = BATCH) -> Iterator[ExportRow]:
    """Every vote, oldest first, one batch of `batch` votes (and the match pairs of their cards) at a time."""
    names = dict(Variant.objects.values_list("id", "name"))
    last = 0
    while True:
        votes = list(
            Vote.objects.filter(id__gt=last)
            .order_by("id")
            .values_list(
                "id",
                "voter__uuid",
                "voter__excluded",
                "voter__counted",
                "pair_id",
                "pair__query_item_id",
                "pair__query_item__category",
                "pair__match_item_id",
                "pair__match_item__category",
                "dope",
                "shown_ms",
                "created_at",
                "gold",
                "propensity",
            )[:batch]
        )
        if not votes:
            return
        makers: dict[int, list[Maker]] = defaultdict(list)
        for pair_id, variant_id, rank in (
            MatchPair.objects.filter(pair_id__in={v[4] for v in votes})
            .order_by("variant_id")
            .values_list("pair_id", "variant_id", "rank")
        ):
            if variant_id not in names:  # a variant created while the export runs
                names[variant_id] = Variant.objects.filter(pk=variant_id).values_list("name", flat=True).first() or ""
            makers[pair_id].append(Maker(variant_id, names[variant_id], rank))
        for (_, voter_uuid, excluded, counted, pair_id, query, query_cat, match, match_cat, dope, shown_ms, created,
             gold, propensity) in votes:  # fmt: skip
            yield ExportRow(
                voter=voter_pseudonym(voter_uuid),
                card=pair_id,
                query_item=query,
                query_category=query_cat,
                match_item=match,
                match_category=match_cat,
                models=tuple(makers.get(pair_id, ())),
                dope=dope,
                shown_ms=shown_ms,
                time=created,
                gold=gold,
                excluded=excluded,
                counted=counted,
                propensity=propensity,
            )
        last = votes[-1][0]


# ---------------------------------------------------------------------------------------- writing


def _verdict(dope: bool | None) -> str:
    return "" if dope is None else ("dope" if dope else "nope")


def _csv_line(values) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def csv_lines(rows: Iterable[ExportRow]) -> Iterator[str]:
    """A header, then one line per vote. `models` lists `variant_id:rank` for each model holding the card."""
    yield _csv_line(COLUMNS)
    for row in rows:
        yield _csv_line(
            (
                row.voter,
                row.card,
                row.query_item,
                row.query_category,
                row.match_item,
                row.match_category,
                " ".join(f"{m.variant_id}:{m.rank}" for m in row.models),
                _verdict(row.dope),
                "" if row.shown_ms is None else row.shown_ms,
                row.time.isoformat(),
                _verdict(row.gold),
                int(row.excluded),
                int(row.counted),
                "" if row.propensity is None else repr(row.propensity),  # repr: the exact float, read back equal
            )
        )


def jsonl_lines(rows: Iterable[ExportRow]) -> Iterator[str]:
    """One JSON object per line and vote; `models` names each model holding the card."""
    for row in rows:
        yield (
            json.dumps(
                {
                    "voter": row.voter,
                    "card": row.card,
                    "query_item": row.query_item,
                    "query_category": row.query_category,
                    "match_item": row.match_item,
                    "match_category": row.match_category,
                    "models": [{"id": m.variant_id, "name": m.name, "rank": m.rank} for m in row.models],
                    "verdict": _verdict(row.dope),
                    "shown_ms": row.shown_ms,
                    "time": row.time.isoformat(),
                    "gold": _verdict(row.gold) or None,
                    "excluded": row.excluded,
                    "counted": row.counted,
                    "propensity": row.propensity,
                },
                ensure_ascii=False,
            )
            + "\n"
        )


def export_lines(fmt: str, *, batch: int = BATCH) -> Iterator[str]:
    """The export as text, chunk by chunk: a batch of rows per chunk."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    lines = csv_lines(vote_rows(batch=batch)) if fmt == "csv" else jsonl_lines(vote_rows(batch=batch))
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= batch:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


# ---------------------------------------------------------------------------------------- reading back


def _flag(value, line: int, column: str) -> bool:
    """A flag: 0/1 in CSV, false/true in JSON."""
    if value is True or value == "1":
        return True
    if value is False or value == "0":
        return False
    raise ExportFileError(f"line {line}: {column} must be 0 or 1 (false or true), not {value!r}.")


def _answer(value, line: int, column: str, *, empty_ok: bool) -> bool | None:
    if value in ("dope", "nope"):
        return value == "dope"
    if empty_ok and value in ("", None):
        return None
    allowed = "dope, nope or empty" if empty_ok else "dope or nope"
    raise ExportFileError(f"line {line}: {column} must be {allowed}, not {value!r}.")


def _row(values: dict, models: tuple[Maker, ...], line: int) -> ExportRow:
    try:
        shown = values["shown_ms"]
        propensity = values["propensity"]
        return ExportRow(
            voter=str(values["voter"]),
            card=int(values["card"]),
            query_item=int(values["query_item"]),
            query_category=str(values["query_category"]),
            match_item=int(values["match_item"]),
            match_category=str(values["match_category"]),
            models=models,
            dope=_answer(values["verdict"], line, "verdict", empty_ok=False),
            shown_ms=None if shown in ("", None) else int(shown),
            time=datetime.fromisoformat(str(values["time"])),
            gold=_answer(values["gold"], line, "gold", empty_ok=True),
            excluded=_flag(values["excluded"], line, "excluded"),
            counted=_flag(values["counted"], line, "counted"),
            propensity=None if propensity in ("", None) else float(propensity),
        )
    except KeyError as exc:
        raise ExportFileError(f"line {line}: the column {exc.args[0]!r} is missing.") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ExportFileError):
            raise
        raise ExportFileError(f"line {line}: {exc}") from None


def _csv_models(text: str, line: int) -> tuple[Maker, ...]:
    out = []
    for part in text.split():
        variant, _, rank = part.partition(":")
        if not (variant.isdigit() and rank.isdigit()):
            raise ExportFileError(f"line {line}: models must be variant_id:rank pairs, not {part!r}.")
        out.append(Maker(int(variant), "", int(rank)))
    return tuple(out)


def read_rows(lines: Iterable[str]) -> Iterator[ExportRow]:
    """Rows back from an export's lines, CSV (a header first) or JSON Lines (told apart by the first character)."""
    lines = iter(lines)
    first = next(lines, "")
    if not first.strip():
        return
    if first.lstrip().startswith("{"):
        yield from _read_jsonl(first, lines)
    else:
        yield from _read_csv(first, lines)


def _read_csv(header_line: str, lines: Iterator[str]) -> Iterator[ExportRow]:
    header = next(csv.reader([header_line]))
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ExportFileError(f"line 1: not a vote export: the columns {', '.join(missing)} are missing.")
    for number, values in enumerate(csv.DictReader(lines, fieldnames=header), start=2):
        if None in values or any(v is None for v in values.values()):
            raise ExportFileError(f"line {number}: {len(header)} columns expected.")
        yield _row(values, _csv_models(values["models"], number), number)


def _read_jsonl(first: str, lines: Iterator[str]) -> Iterator[ExportRow]:
    for number, text in enumerate(_chain(first, lines), start=1):
        if not text.strip():
            continue
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExportFileError(f"line {number}: not JSON ({exc.msg}).") from None
        if not isinstance(values, dict) or not isinstance(values.get("models"), list):
            raise ExportFileError(f"line {number}: each line must be an object with a models list.")
        try:
            models = tuple(Maker(int(m["id"]), str(m.get("name", "")), int(m["rank"])) for m in values["models"])
        except (KeyError, TypeError, ValueError):
            raise ExportFileError(f"line {number}: each model needs an id and a rank.") from None
        yield _row(values, models, number)


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest
