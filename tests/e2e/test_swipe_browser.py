"""The swipe and leaderboard pages in a real headless Chromium against a live server.

Waits go through the page's own signals (body[data-state], the vote counter), never fixed sleeps.
Screenshots land in /tmp/e2e-*.png for a person to look at.
"""

from __future__ import annotations

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    # WhiteNoise looks for collectstatic output; the live server serves static files from the apps instead.
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}


def expect(*args, **kwargs):
    from playwright.sync_api import expect

    return expect(*args, **kwargs)


def open_swipe(browser_context, live_server, **context_options):
    page = browser_context(**context_options).new_page()
    response = page.goto(live_server.url + "/")
    assert response.headers["content-security-policy"] == CSP  # what the page runs under (the fixture checks it)
    wait_ready(page)
    return page


def wait_ready(page):
    """A card is on screen, standing still, and takes input."""
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    moving = page.evaluate("document.querySelector('[data-testid=card]').getAnimations().map(a => a.animationName)")
    assert moving == [], f"state is ready but the card still animates: {moving}"
    for image in ("query-image", "match-image"):
        expect(page.get_by_test_id(image)).to_have_js_property("complete", True)


def shown_pair(page) -> tuple[str, str]:
    return (
        page.get_by_test_id("query-image").get_attribute("src"),
        page.get_by_test_id("match-image").get_attribute("src"),
    )


def expect_count(page, n: int):
    expect(page.get_by_test_id("vote-count")).to_have_text(str(n))
    wait_ready(page)


def votes_by_card():
    """{(query image url, match image url): dope} for every vote in the database."""
    from voting.models import Vote

    return {
        (v.pair.query_item.image_url, v.pair.match_item.image_url): v.dope
        for v in Vote.objects.select_related("pair__query_item", "pair__match_item")
    }


def card_centre(page) -> tuple[float, float, float]:
    box = page.get_by_test_id("card").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"]


def log_in_as_staff(page, live_server, then: str) -> None:
    from django.contrib.auth.models import User

    User.objects.create_user("carol", password="a long enough password", is_staff=True)
    page.goto(f"{live_server.url}/admin/login/?next={then}")
    page.fill("#id_username", "carol")
    page.fill("#id_password", "a long enough password")
    page.click("input[type=submit]")


def test_desktop_mouse_drag_and_arrow_key_vote_and_the_leaderboard_counts_them(
    browser_context, live_server, two_variants
):
    page = open_swipe(browser_context, live_server, **DESKTOP)
    first = shown_pair(page)

    # Drag right past 30% of the card's width, in small steps like a hand would.
    x, y, width = card_centre(page)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + width * 0.5, y + 10, steps=12)
    page.mouse.up()
    expect_count(page, 1)
    second = shown_pair(page)
    assert second != first
    page.screenshot(path="/tmp/e2e-desktop.png")

    page.keyboard.press("ArrowLeft")
    expect_count(page, 2)
    assert votes_by_card() == {first: True, second: False}

    # The public board is a snapshot that leaves out the newest votes: these two are not on it yet...
    page.goto(live_server.url + "/leaderboard/")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.get_by_test_id("status")).to_contain_text("Votes cast before")
    public = page.request.get(live_server.url + "/api/leaderboard").json()
    assert public["live"] is False and sum(r["votes"] for r in public["rows"]) == 0

    # ...staff see them live.
    log_in_as_staff(page, live_server, then="/leaderboard/")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.get_by_test_id("status")).to_contain_text("Live numbers")
    expect(page.get_by_test_id("chart")).to_be_visible()
    api = {row["variant_id"]: row for row in page.request.get(live_server.url + "/api/leaderboard").json()["rows"]}
    rows = page.get_by_test_id("leaderboard-row")
    expect(rows).to_have_count(2)
    shown = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        shown[int(row.get_attribute("data-variant-id"))] = (
            int(row.get_by_test_id("votes").inner_text()),
            int(row.get_by_test_id("approvals").inner_text()),
        )
    assert shown == {vid: (r["votes"], r["approvals"]) for vid, r in api.items()}
    assert set(shown) == {v.pk for v in two_variants}
    # Each card was served by at least one variant, and counts for every variant that produced it.
    assert sum(votes for votes, _ in shown.values()) >= 2
    assert sum(approvals for _, approvals in shown.values()) >= 1
    page.screenshot(path="/tmp/e2e-leaderboard.png", full_page=True)

    voted = next(vid for vid, (votes, _) in shown.items() if votes)
    page.locator(f"[data-testid=leaderboard-row][data-variant-id='{voted}']").click()
    expect(page.get_by_test_id("categories")).to_be_visible()


def test_phone_touch_swipe_and_nope_tap_vote(browser_context, live_server, two_variants):
    page = open_swipe(browser_context, live_server, **PHONE)
    first = shown_pair(page)

    # Playwright has no swipe gesture: feed raw touches through the DevTools protocol, as a finger would.
    x, y, width = card_centre(page)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for step in range(1, 11):
        point = {"x": x + width * 0.5 * step / 10, "y": y + step}
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    expect_count(page, 1)
    second = shown_pair(page)
    page.screenshot(path="/tmp/e2e-phone.png")

    page.get_by_test_id("nope").tap()
    expect_count(page, 2)
    assert votes_by_card() == {first: True, second: False}


def test_undo_takes_the_vote_back_and_shows_its_card_again(browser_context, live_server, two_variants):
    page = open_swipe(browser_context, live_server, **DESKTOP)
    voted = shown_pair(page)

    page.get_by_test_id("dope").click()
    expect_count(page, 1)
    assert shown_pair(page) != voted
    assert votes_by_card() == {voted: True}

    page.get_by_test_id("undo").click()
    expect_count(page, 0)
    assert shown_pair(page) == voted
    assert votes_by_card() == {}
    expect(page.get_by_test_id("status")).to_contain_text("undone")


def test_a_vote_whose_post_fails_once_is_retried_and_lands(browser_context, live_server, two_variants):
    page = open_swipe(browser_context, live_server, **DESKTOP)
    voted = shown_pair(page)
    posts = []

    def fail_first(route):
        posts.append(route.request.post_data_json)
        if len(posts) == 1:
            route.fulfill(status=500, json={"detail": "server hiccup"})
        else:
            route.continue_()

    page.route("**/api/votes", fail_first)
    page.get_by_test_id("dope").click()
    expect(page.get_by_test_id("status")).to_contain_text("Trying again")
    assert votes_by_card() == {}
    expect_count(page, 1)
    expect(page.get_by_test_id("status")).to_have_text("Your vote is saved.")
    assert votes_by_card() == {voted: True}
    assert len(posts) == 2 and posts[0] == posts[1]


def test_the_staff_page_and_the_admin_run_under_the_content_security_policy(browser_context, live_server, two_variants):
    from django.contrib.auth.models import User

    User.objects.create_user("stella", password="pw-for-tests-only", is_staff=True, is_superuser=True)
    page = browser_context(**DESKTOP).new_page()

    login = page.goto(live_server.url + "/admin/login/?next=/staff/")
    assert login.headers["content-security-policy"] == CSP
    page.get_by_label("Username").fill("stella")
    page.get_by_label("Password").fill("pw-for-tests-only")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("variant-row")).to_have_count(2)
    page.get_by_label("Precomputed embeddings", exact=False).check()
    expect(page.locator("fieldset.weights-only")).to_be_hidden()  # staff.js ran

    page.goto(live_server.url + "/admin/matching/variant/")
    expect(page.locator("#result_list")).to_be_visible()
    page.goto(live_server.url + f"/admin/matching/variant/{two_variants[0].pk}/change/")
    expect(page.locator("#content-main form")).to_be_visible()


def test_each_vote_is_one_round_trip_its_answer_bringing_the_card_after_next(
    browser_context, live_server, two_variants
):
    page = browser_context(**DESKTOP).new_page()
    requests = []
    page.on("request", lambda request: requests.append((request.method, request.url.split("?")[0])))
    page.goto(live_server.url + "/")
    wait_ready(page)

    for n in range(1, 6):
        page.keyboard.press("ArrowRight" if n % 2 else "ArrowLeft")
        expect_count(page, n)
        wait_ready(page)

    api = [(method, url.removeprefix(live_server.url)) for method, url in requests if "/api/" in url]
    assert api.count(("POST", "/api/votes")) == 5
    # The first card and one card ahead come from GET; every later card came with a vote's answer.
    assert api.count(("GET", "/api/pairs/next")) == 2, api


def test_after_a_nope_one_tap_on_a_reason_chip_records_why_and_the_next_card_is_already_there(
    browser_context, live_server, two_variants
):
    from voting.models import NopeReason

    page = open_swipe(browser_context, live_server, **PHONE)
    noped = shown_pair(page)
    page.get_by_test_id("nope").tap()
    expect_count(page, 1)
    chips = page.get_by_test_id("reasons")
    expect(chips).to_be_visible()
    assert shown_pair(page) != noped  # the next card is on screen while the chips are offered
    # The chips lie over the status line: the card and the buttons do not move, nothing is covered.
    card, chip_box, button = (page.get_by_test_id(t).bounding_box() for t in ("card", "reasons", "nope"))
    assert card["y"] + card["height"] <= chip_box["y"] and chip_box["y"] + chip_box["height"] <= button["y"]
    assert chip_box["x"] >= 0 and chip_box["x"] + chip_box["width"] <= 390
    page.screenshot(path="/tmp/e2e-reasons-phone.png")

    with page.expect_response("**/api/votes/reason") as sent:
        page.get_by_role("button", name="other colour").tap()
    assert sent.value.status == 201
    expect(chips).to_be_hidden()
    reason = NopeReason.objects.select_related("vote__pair__query_item", "vote__pair__match_item").get()
    assert reason.reason == "colour" and not reason.vote.dope
    assert (reason.vote.pair.query_item.image_url, reason.vote.pair.match_item.image_url) == noped

    page.get_by_test_id("dope").tap()  # a dope offers no chips
    expect_count(page, 2)
    expect(chips).to_be_hidden()


def test_a_reason_is_never_sent_before_its_vote_and_a_key_picks_a_chip(browser_context, live_server, two_variants):
    from voting.models import NopeReason

    page = open_swipe(browser_context, live_server, **DESKTOP)
    events = []
    page.on("request", lambda r: events.append(("sent", r.url.split("/api/")[-1])) if r.method == "POST" else None)
    page.on(
        "response", lambda r: events.append(("answered", r.url.split("/api/")[-1])) if "/api/votes" in r.url else None
    )
    held = []
    page.route("**/api/votes", lambda route: held.append(route))  # the vote hangs: its reason must wait for it

    page.keyboard.press("ArrowLeft")
    expect(page.get_by_test_id("reasons")).to_be_visible()
    page.screenshot(path="/tmp/e2e-reasons-desktop.png")
    page.keyboard.press("3")  # other pattern
    expect(page.get_by_test_id("reasons")).to_be_hidden()
    expect(page.get_by_test_id("status")).to_have_text("Thanks, noted.")

    with page.expect_response("**/api/votes/reason") as sent:
        held[0].continue_()
    assert sent.value.status == 201
    assert events.index(("answered", "votes")) < events.index(("sent", "votes/reason"))
    assert events.count(("sent", "votes/reason")) == 1
    assert NopeReason.objects.get().reason == "pattern"
