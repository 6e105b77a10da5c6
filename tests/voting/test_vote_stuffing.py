"""A scripted voter that clears its cookie between votes to push one variant up: how far does it get?"""

from __future__ import annotations

from matching.models import MatchPair
from tests.voting.conftest import browser, next_card, vote
from voting.throttles import IPRateThrottle


def test_a_cookie_clearing_script_is_capped_by_the_ip_limit_and_cannot_aim_at_a_variant(variants, monkeypatch, client):
    monkeypatch.setitem(IPRateThrottle.THROTTLE_RATES, "votes_ip", "20/min")
    histogram, random_pairs = variants
    target_pairs = set(MatchPair.objects.filter(variant=random_pairs).values_list("pair_id", flat=True))

    landed = refused = 0
    for _ in range(100):  # a new identity every time: the per-voter limit never applies
        attacker = browser()
        status = vote(attacker, next_card(attacker)["token"], "dope").status_code
        landed += status == 201
        refused += status == 429

    rows = {r["variant_id"]: r for r in client.get("/api/leaderboard").json()["rows"]}
    # The script got exactly its IP's budget in, nothing more...
    assert (landed, refused) == (20, 80)
    # ...and, being blind, it cannot tell the target's cards from the others': its "dope" votes spread
    # over both variants like everyone's, so the target gains no lead it could choose.
    target, other = rows[random_pairs.pk]["approvals"], rows[histogram.pk]["approvals"]
    assert target + other >= 20 and min(target, other) >= 5, (target, other)
    assert len(target_pairs) > 0
