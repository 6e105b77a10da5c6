"""A scripted voter that clears its cookie between votes to push one variant up: how far does it get?"""

from __future__ import annotations

from matching.models import MatchPair
from tests.voting.conftest import browser, next_card, vote
from voting.models import Vote
from voting.throttles import IPRateThrottle


def test_a_cookie_clearing_script_is_capped_by_the_ip_limit_and_cannot_aim_at_a_variant(variants, monkeypatch):
    monkeypatch.setitem(IPRateThrottle.THROTTLE_RATES, "votes_ip", "20/min")
    histogram, random_pairs = variants
    target_only = set(MatchPair.objects.filter(variant=random_pairs).values_list("pair_id", flat=True)) - set(
        MatchPair.objects.filter(variant=histogram).values_list("pair_id", flat=True)
    )

    statuses = []
    for _ in range(100):  # a new identity every time: the per-voter limit never applies
        attacker = browser()
        statuses.append(vote(attacker, next_card(attacker)["token"], "dope").status_code)

    # The script got exactly its IP's budget in, nothing more...
    assert (statuses.count(201), statuses.count(429)) == (20, 80)
    assert Vote.objects.filter(dope=True).count() == 20
    # ...and, being blind, it cannot steer its "dope" votes to the target's cards: they land on the target's own
    # cards about as often as balanced serving draws them (half the time; fewer than 5 of 20 has p < 0.006).
    on_target = Vote.objects.filter(pair_id__in=target_only).count()
    assert 5 <= on_target <= 15, on_target
