"""The vote export (API and manage.py export_votes) and the leaderboard recomputed from it (manage.py leaderboard
--from FILE), which must agree with the staff's live leaderboard."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext

from matching.models import MatchPair, Variant
from matching.services import variant_create, variant_set_rotation
from tests.voting.conftest import browser, next_card, vote
from voting import export
from voting.models import Vote, Voter
from voting.services import gold_cards_ensure, voter_set_decision


@pytest.fixture
def voted(variants, settings):
    """Three models (L1 and L2 histograms share cards; the random control), gold cards, eight voters who voted
    through the API (propensities recorded), one of them excluded, some old votes without a propensity, and L1
    retired after the votes."""
    settings.VSEARCH_MIN_VOTES = 5  # ranked rows, rank groups and a decision, not only provisional ones
    l1 = variant_create(featurizer="colour-histogram", layer="hsv", metric="l1", k=2)
    assert l1.status == Variant.Status.READY
    gold_cards_ensure(count=6)
    for n in range(8):
        client = browser()
        for i in range(12):
            card = next_card(client)
            if card.get("done"):
                break
            assert vote(client, card["token"], "dope" if (n + i) % 3 else "nope", shown_ms=900 + i).status_code == 201
    voter_set_decision(voter=Voter.objects.order_by("id")[2], decision="exclude")
    cards = list(MatchPair.objects.filter(variant=variants[0]).values_list("pair_id", flat=True))
    for i, card in enumerate(cards[:6]):  # cast before propensities were recorded: they weigh as the average vote
        Vote.objects.create(voter=Voter.objects.create(), pair_id=card, dope=bool(i % 2), token_id=f"old{i}")
    variant_set_rotation(variant=l1, rotation="retired")
    assert Vote.objects.filter(gold__isnull=False).exists() and Vote.objects.filter(propensity__isnull=False).exists()
    return [*variants, l1]


def exported(staff, fmt: str) -> str:
    response = staff.get("/api/votes/export", {"format": fmt})
    assert response.status_code == 200, response.content
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


def test_each_exported_row_carries_the_vote_its_card_and_every_model_that_made_it(voted, staff):
    text = exported(staff, "csv")

    rows = list(csv.DictReader(io.StringIO(text)))
    votes = {v.token_id: v for v in Vote.objects.select_related("voter", "pair__query_item", "pair__match_item")}
    assert len(rows) == len(votes)
    by_card_and_voter = {(r["card"], r["voter"]): r for r in rows}
    for v in votes.values():
        row = by_card_and_voter[(str(v.pair_id), export.voter_pseudonym(v.voter.uuid))]
        assert row["query_item"] == str(v.pair.query_item_id) and row["query_category"] == v.pair.query_item.category
        assert row["match_item"] == str(v.pair.match_item_id) and row["match_category"] == v.pair.match_item.category
        makers = sorted(MatchPair.objects.filter(pair_id=v.pair_id).values_list("variant_id", "rank"))
        assert row["models"] == " ".join(f"{variant}:{rank}" for variant, rank in makers)
        assert row["verdict"] == ("dope" if v.dope else "nope")
        assert row["shown_ms"] == ("" if v.shown_ms is None else str(v.shown_ms))
        assert row["time"] == v.created_at.isoformat()
        assert row["gold"] == {None: "", True: "dope", False: "nope"}[v.gold]
        assert (row["excluded"], row["counted"]) == (str(int(v.voter.excluded)), str(int(v.voter.counted)))
        assert row["propensity"] == ("" if v.propensity is None else repr(v.propensity))
    assert any(r["gold"] for r in rows) and any(r["excluded"] == "1" for r in rows)
    assert any(len(r["models"].split()) > 1 for r in rows)  # cards several models made name each of them


def test_voters_are_anonymised_by_a_keyed_hash_stable_per_voter(voted, staff, settings):
    rows = [json.loads(line) for line in exported(staff, "jsonl").splitlines()]
    voters = Voter.objects.filter(votes__isnull=False).distinct()
    uuids = {str(v.uuid) for v in voters} | {str(v.uuid).replace("-", "") for v in voters}

    assert {r["voter"] for r in rows} == {export.voter_pseudonym(v.uuid) for v in voters}
    assert not any(r["voter"] in uuids or any(u in json.dumps(r) for u in uuids) for r in rows)
    settings.SECRET_KEY = "another key entirely, for this test only"
    assert export.voter_pseudonym(voters[0].uuid) not in {r["voter"] for r in rows}


def test_the_jsonl_export_names_each_model_with_its_rank(voted, staff):
    rows = [json.loads(line) for line in exported(staff, "jsonl").splitlines()]
    names = dict(Variant.objects.values_list("id", "name"))
    for row in rows:
        makers = sorted(MatchPair.objects.filter(pair_id=row["card"]).values_list("variant_id", "rank"))
        assert [(m["id"], m["rank"]) for m in row["models"]] == makers
        assert all(m["name"] == names[m["id"]] for m in row["models"])
        assert row["verdict"] in ("dope", "nope") and row["gold"] in (None, "dope", "nope")


def fields_equal(api: dict, recomputed: dict, where: str) -> None:
    assert api.keys() == recomputed.keys(), where
    for key, value in api.items():
        if isinstance(value, float) and not isinstance(value, bool):
            # Sums of 1/propensity: the database adds them in its own order, the file in vote order.
            assert recomputed[key] == pytest.approx(value, rel=1e-12, abs=1e-15), f"{where}.{key}"
        else:
            assert recomputed[key] == value, f"{where}.{key}"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_leaderboard_recomputed_from_an_export_is_the_staff_leaderboard(voted, staff, tmp_path, fmt):
    path = tmp_path / f"votes.{fmt}"
    call_command("export_votes", format=fmt, output=str(path), batch=7)
    api = staff.get("/api/leaderboard").json()
    out = io.StringIO()

    call_command("leaderboard", source=str(path), as_json=True, stdout=out)

    recomputed = json.loads(out.getvalue())
    assert [r["variant_id"] for r in recomputed["rows"]] == [r["variant_id"] for r in api["rows"]]
    assert any(r["votes"] for r in api["rows"]) and any(r["rank_group"] for r in api["rows"])
    assert any(r["p_best"] is None for r in api["rows"])  # the retired model is not in the race
    for mine, theirs in zip(recomputed["rows"], api["rows"], strict=True):
        theirs.pop("draw_share")  # how cards are being served now: a fact of the serving design, not of the votes
        mine.pop("draw_share", None)
        fields_equal(theirs, mine, f"row {theirs['variant_id']}")
    fields_equal(api["decision"], recomputed["decision"], "decision")


def test_the_api_and_the_command_export_the_same_rows(voted, staff, tmp_path):
    path = tmp_path / "votes.jsonl"
    call_command("export_votes", format="jsonl", output=str(path))
    assert path.read_text() == exported(staff, "jsonl")


def test_the_export_streams_one_batch_at_a_time(voted, staff, monkeypatch):
    monkeypatch.setattr(export, "BATCH", 5)
    total = Vote.objects.count()
    assert total > 20
    with CaptureQueriesContext(connection) as queries:
        response = staff.get("/api/votes/export", {"format": "csv"})
        chunks = iter(response.streaming_content)
        first = next(chunks)
        before = len(queries.captured_queries)
        rest = list(chunks)

    assert first.decode().count("\n") == 5  # the header and the first four rows: nothing more was read
    assert len(queries.captured_queries) - before >= 2 * (total // 5)  # later batches were read as they were sent
    assert sum(c.decode().count("\n") for c in rest) == total + 1 - 5


BATCH_UNDER_TEST = 200


def test_the_export_holds_one_batch_in_memory_whatever_the_number_of_votes(variants):
    card = MatchPair.objects.filter(variant=variants[0]).values_list("pair_id", flat=True).first()

    def peak_for(n: int) -> int:
        Vote.objects.all().delete()
        voters = Voter.objects.bulk_create(Voter() for _ in range(n))
        Vote.objects.bulk_create(
            Vote(voter=v, pair_id=card, dope=True, token_id=f"m{n}-{i}", propensity=0.1) for i, v in enumerate(voters)
        )
        tracemalloc.start()
        for _ in export.export_lines("jsonl", batch=BATCH_UNDER_TEST):
            pass
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    small, large = peak_for(400), peak_for(4000)
    assert large < 1.5 * small, (small, large)  # ten times the votes, about the same memory


def test_the_export_is_for_staff_only(voted, client, alice):
    for anyone in (client, alice):
        answer = anyone.get("/api/votes/export")
        assert answer.status_code == 403 and answer.json()["detail"]


def test_an_unknown_format_is_a_json_400(voted, staff):
    answer = staff.get("/api/votes/export", {"format": "xlsx"})
    assert answer.status_code == 400 and "csv, jsonl" in answer.json()["detail"]


def test_the_export_is_in_the_openapi_schema(db, client):
    schema = client.get("/api/schema", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/votes/export"]["get"]
    assert {"text/csv", "application/x-ndjson"} <= set(operation["responses"]["200"]["content"])


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("voter,card\nx,1\n", "columns"),
        ('{"voter": "x", "card": 1}\n', "models list"),
        ("{not json\n", "line 1: not JSON"),
    ],
)
def test_the_leaderboard_refuses_a_file_that_is_not_a_vote_export_naming_the_line(db, tmp_path, content, says):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(CommandError, match=says):
        call_command("leaderboard", source=str(path), as_json=True, stdout=io.StringIO())


def test_a_damaged_row_is_refused_with_its_line(voted, staff, tmp_path):
    lines = exported(staff, "csv").splitlines()
    lines[3] = lines[3].replace(",dope,", ",maybe,").replace(",nope,", ",maybe,")
    path = tmp_path / "damaged.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CommandError, match="line 4: verdict must be dope or nope"):
        call_command("leaderboard", source=str(path), stdout=io.StringIO())


def test_the_leaderboard_command_prints_a_table(voted, capsys):
    out = io.StringIO()
    call_command("leaderboard", stdout=out)
    text = out.getvalue()
    assert "approval" in text and all(v.name[:48] in text for v in voted)
