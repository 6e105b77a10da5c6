"""Tallies maintained as votes come stay equal to a recount of every vote, whatever happens in between."""

from __future__ import annotations

import random

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from matching.models import MatchPair
from tests.voting.conftest import browser, next_card, vote
from voting import ledger
from voting.models import Vote, Voter
from voting.services import voter_set_decision, voters_review


def test_every_kind_of_write_in_a_random_order_leaves_the_tallies_equal_to_a_recount(variants, settings, capsys):
    settings.VSEARCH_QUALIFY_GOLD = 1  # qualification flips voters in and out too
    rng = random.Random(7)
    voters = [browser() for _ in range(6)]
    histogram = variants[0]
    done = {kind: 0 for kind in ("vote", "undo", "fold", "review", "decision", "rebuild", "gold")}
    for step in range(200):
        action = rng.random()
        client = rng.choice(voters)
        if action < 0.6:
            card = next_card(client)
            if "token" in card:
                done["vote"] += vote(client, card["token"], rng.choice(["dope", "nope"])).status_code == 201
        elif action < 0.68:
            if client.post("/api/votes/undo", {}, format="json").status_code == 200:
                done["undo"] += 1
        elif action < 0.76:
            done["fold"] += ledger.fold() >= 0
        elif action < 0.82:
            done["review"] += voters_review().reviewed >= 0
        elif action < 0.9 and Voter.objects.exists():
            voter = rng.choice(list(Voter.objects.all()))
            voter_set_decision(voter=voter, decision=rng.choice(["include", "exclude", ""]))
            done["decision"] += 1
        elif action < 0.94:
            # A rebuild that changed a model's pairs: one of its unvoted cards goes, the tallies are recounted.
            spare = MatchPair.objects.filter(variant=histogram).exclude(pair__in=Vote.objects.values("pair"))
            if spare.exists():
                spare.first().delete()
            ledger.variant_recount(histogram.pk)
            done["rebuild"] += 1
        else:
            # Gold votes never count, whoever casts them.
            voter = Voter.objects.order_by("?").first()
            pair = MatchPair.objects.exclude(pair__in=Vote.objects.values("pair")).first()
            if voter and pair:
                Vote.objects.create(voter=voter, pair_id=pair.pair_id, dope=True, gold=True, token_id=f"g{step}")
                done["gold"] += 1

    assert all(done.values()), done  # every kind of write happened, several times over
    assert Vote.objects.count() > 50 and ledger.folded_through() > 0
    call_command("tallies", "--check")
    assert "match a recount" in capsys.readouterr().out


def test_the_check_reports_a_tally_that_drifted_and_a_rebuild_repairs_it(variants, capsys):
    from tests.voting.conftest import add_votes
    from voting.models import TallyBucket

    add_votes(variants[0], dope=5, nope=5)
    ledger.fold()
    TallyBucket.objects.filter(variant=variants[0]).update(votes=999)

    with pytest.raises(CommandError, match="differ from a recount"):
        call_command("tallies", "--check")
    call_command("tallies", "--rebuild")
    call_command("tallies", "--check")

    assert "match a recount" in capsys.readouterr().out


def test_the_check_reports_a_card_tally_no_vote_accounts_for(variants, capsys):
    from matching.models import MatchPair
    from tests.voting.conftest import add_votes
    from voting.models import CardTally

    add_votes(variants[0], dope=2, nope=1)
    ledger.fold()
    unvoted = MatchPair.objects.filter(variant=variants[1]).exclude(pair__votes__isnull=False).first().pair_id
    CardTally.objects.create(pair_id=unvoted, votes=4, dope=4)  # a tally of a card nobody voted on

    with pytest.raises(CommandError, match="differ from a recount"):
        call_command("tallies", "--check")
    assert f"card {unvoted}: kept (4, 4), recounted None" in capsys.readouterr().err


def test_card_counts_of_every_card_equal_those_asked_for_one_by_one(variants):
    from tests.voting.conftest import add_votes

    add_votes(variants[0], dope=3, nope=2)
    add_votes(variants[1], dope=1, nope=4)
    ledger.fold()
    add_votes(variants[1], dope=2, nope=0)  # not folded yet

    every = ledger.card_counts()  # no IN list: PostgreSQL takes at most 65,535 parameters in one

    assert every and every == {pair: ledger.card_counts({pair})[pair] for pair in every}
