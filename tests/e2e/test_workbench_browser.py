"""The staff workbench in a real headless Chromium: the compare page (arrow keys between queries) and the models
page. Screenshots land in /tmp/e2e-*.png for a person to look at."""

from __future__ import annotations

import re

import pytest

from matching.models import Item, Pair
from tests.e2e.test_swipe_browser import CSP, DESKTOP, PHONE, expect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]


def staff_page(browser_context, live_server, path: str, **context_options):
    """A staff member logged in through the admin's form, on `path`."""
    from django.contrib.auth.models import User

    if not User.objects.filter(username="stella").exists():
        User.objects.create_user("stella", password="pw-for-tests-only", is_staff=True, is_superuser=True)
    page = browser_context(**context_options).new_page()
    page.goto(f"{live_server.url}/admin/login/?next={path}")
    page.get_by_label("Username").fill("stella")
    page.get_by_label("Password").fill("pw-for-tests-only")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(path.split("?")[0])))
    return page


def shown_query(page) -> int:
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    return int(page.get_by_test_id("item-input").input_value())


def test_compare_shows_every_model_side_by_side_and_the_arrow_keys_step_through_queries(
    browser_context, live_server, two_variants
):
    ids = list(Item.objects.order_by("id").values_list("id", flat=True))
    page = staff_page(browser_context, live_server, "/staff/compare/", **DESKTOP)
    response = page.reload()
    assert response.headers["content-security-policy"] == CSP

    assert shown_query(page) == ids[0]
    columns = page.get_by_test_id("compare-column")
    expect(columns).to_have_count(2)
    assert {int(columns.nth(i).get_attribute("data-variant-id")) for i in range(2)} == {v.pk for v in two_variants}
    for i in range(2):
        expect(columns.nth(i).get_by_test_id("compare-card")).to_have_count(5)  # k = 5 for each model
    expect(page.get_by_test_id("compare-card").first.locator("img")).to_have_js_property("complete", True)
    page.screenshot(path="/tmp/e2e-compare-desktop.png", full_page=True)

    page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("item-input")).to_have_value(str(ids[1]))
    assert shown_query(page) == ids[1] and page.url.endswith(f"?item={ids[1]}")
    page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("item-input")).to_have_value(str(ids[2]))
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_test_id("item-input")).to_have_value(str(ids[1]))

    # A category: previous/next stay inside it, and the first query shown is its first.
    category = Item.objects.get(pk=ids[5]).category
    in_category = list(Item.objects.filter(category=category).order_by("id").values_list("id", flat=True))
    page.get_by_test_id("category").select_option(category)
    expect(page.get_by_test_id("item-input")).to_have_value(str(in_category[0]))
    page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("item-input")).to_have_value(str(in_category[1]))
    expect(page.get_by_test_id("previous")).to_be_enabled()

    # By id, typed into the field (the arrow keys belong to the field while it has focus).
    page.get_by_test_id("item-input").fill(str(ids[9]))
    page.get_by_test_id("item-input").press("ArrowLeft")
    page.get_by_role("button", name="Show").click()
    assert shown_query(page) == ids[9]
    page.get_by_test_id("item-input").press("Escape")
    page.locator("body").click(position={"x": 5, "y": 400})
    page.keyboard.press("r")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")

    # A reload shows the same query again.
    shown = shown_query(page)
    page.reload()
    assert shown_query(page) == shown


def test_compare_works_on_a_phone(browser_context, live_server, two_variants):
    page = staff_page(browser_context, live_server, "/staff/compare/", **PHONE)
    shown_query(page)
    expect(page.get_by_test_id("compare-column")).to_have_count(2)
    expect(page.get_by_test_id("next")).to_be_visible()
    page.get_by_test_id("next").tap()
    expect(page.get_by_test_id("item-input")).to_have_value(str(Item.objects.order_by("id")[1].pk))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "the page scrolls sideways"
    page.screenshot(path="/tmp/e2e-compare-phone.png", full_page=True)


def votes_on(variant, verdicts_per_card: list[tuple[int, int]]) -> list[int]:
    """Counted votes by fresh voters on the variant's first cards that no other model makes (the public never sees
    a card a model in the rotation makes), folded as serving would; returns the cards."""
    from matching.models import MatchPair
    from voting import ledger
    from voting.models import Vote, Voter

    others = MatchPair.objects.exclude(variant=variant).values("pair_id")
    cards = list(
        MatchPair.objects.filter(variant=variant)
        .exclude(pair_id__in=others)
        .order_by("seq")
        .values_list("pair_id", flat=True)
    )
    n = 0
    for card, (dope, nope) in zip(cards, verdicts_per_card, strict=False):
        for verdict in [True] * dope + [False] * nope:
            n += 1
            Vote.objects.create(voter=Voter.objects.create(), pair_id=card, dope=verdict, token_id=f"b{n}")
    ledger.fold()
    return cards[: len(verdicts_per_card)]


def test_the_public_leaderboard_shows_examples_of_a_retired_model_and_never_of_an_active_one(
    browser_context, live_server, two_variants
):
    from matching.services import variant_set_rotation

    histogram, control = two_variants
    votes_on(histogram, [(4, 0), (0, 3)])
    variant_set_rotation(variant=histogram, rotation="retired")
    page = browser_context(**DESKTOP).new_page()
    page.goto(live_server.url + "/leaderboard/")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")

    page.locator(f"[data-testid=leaderboard-row][data-variant-id='{control.pk}']").click()
    expect(page.get_by_test_id("categories")).to_have_attribute("data-state", "ready")
    expect(page.get_by_test_id("examples")).to_have_count(0)

    page.locator(f"[data-testid=leaderboard-row][data-variant-id='{histogram.pk}']").click()
    expect(page.get_by_test_id("examples")).to_be_visible()
    expect(page.get_by_test_id("example")).to_have_count(2)
    expect(page.get_by_test_id("example-dope").first).to_have_text("✓ 4")
    page.get_by_test_id("categories").screenshot(path="/tmp/e2e-leaderboard-examples.png")


def test_the_staff_examples_page_shows_an_active_models_examples(browser_context, live_server, two_variants):
    from voting.models import NopeReason, Vote

    histogram = two_variants[0]
    cards = votes_on(histogram, [(5, 0), (3, 1), (0, 4), (1, 3)])
    for i, nope in enumerate(Vote.objects.filter(pair_id=cards[2], dope=False)):
        NopeReason.objects.create(vote=nope, reason="colour" if i < 3 else "kind")
    page = staff_page(browser_context, live_server, f"/staff/variants/{histogram.pk}/examples", **DESKTOP)
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.get_by_test_id("model-name")).to_contain_text(histogram.name)
    groups = page.locator(".example-group")
    expect(groups.nth(0).get_by_test_id("example")).to_have_count(2)
    expect(groups.nth(1).get_by_test_id("example")).to_have_count(2)
    rejected = groups.nth(1).locator(f"[data-pair-id='{cards[2]}']")
    expect(rejected.get_by_test_id("example-reasons")).to_have_text("other colour 3 · other kind 1")
    expect(page.get_by_test_id("why-summary")).to_contain_text("other colour 3 · other kind 1")
    page.screenshot(path="/tmp/e2e-examples-desktop.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path="/tmp/e2e-examples-phone.png", full_page=True)
    page.get_by_role("link", name="Compare with the other models").click()
    expect(page.locator(f"[data-testid=compare-column][data-variant-id='{histogram.pk}']")).to_have_class(
        re.compile("is-pinned")
    )
    query = Pair.objects.get(pk=cards[2]).query_item
    page.get_by_test_id("item-input").fill(str(query.pk))
    page.get_by_role("button", name="Show").click()
    card = page.locator(f"[data-testid=compare-card][data-pair-id='{cards[2]}']").first
    expect(card.get_by_test_id("reasons")).to_have_text("other colour 3 · other kind 1")
    expect(card.get_by_test_id("votes")).to_have_text("✓0✕4")


def test_the_staff_page_shows_each_models_build_votes_and_links_and_changes_its_search_method(
    browser_context, live_server, two_variants
):
    from matching.models import Variant

    histogram, control = two_variants
    votes_on(histogram, [(2, 1)])
    page = staff_page(browser_context, live_server, "/staff/", **DESKTOP)
    expect(page.locator(".staff-nav")).to_have_text(re.compile(r"Models\s+Compare\s+Map\s+Admin"))
    rows = page.get_by_test_id("variant-row")
    expect(rows).to_have_count(2)
    row = page.locator(f"[data-testid=variant-row][data-variant-id='{histogram.pk}']")
    expect(row.get_by_test_id("votes")).to_have_text("3")
    expect(row.get_by_test_id("build-time")).to_have_text(re.compile(r"^\d+(\.\d)? s$"))
    assert row.get_by_test_id("examples-link").get_attribute("href") == f"/staff/variants/{histogram.pk}/examples"
    assert row.get_by_test_id("compare-link").get_attribute("href") == f"/staff/compare/?variant={histogram.pk}"
    # The choices sit beside their labels, and the fields are styled (not the browser's raw controls).
    radio = page.get_by_label("Precomputed embeddings", exact=False)
    text = page.get_by_text("Precomputed embeddings", exact=True)
    radio_box, text_box = radio.bounding_box(), text.bounding_box()
    assert radio_box["x"] + radio_box["width"] <= text_box["x"] and abs(radio_box["y"] - text_box["y"]) < 12
    name = page.locator("input[name=name]")
    assert name.evaluate("e => getComputedStyle(e).borderRadius") == "10px"
    assert name.bounding_box()["height"] >= 44
    page.screenshot(path="/tmp/e2e-staff-desktop.png", full_page=True)

    row.get_by_text("search…").click()
    form = row.locator(".search-form")
    expect(form).to_be_visible()
    page.screenshot(path="/tmp/e2e-staff-search.png")
    form.locator("select[name=search]").select_option("annoy")
    form.locator("input[name=n_trees]").fill("8")
    expect(form.locator("input[name=as_new]")).to_be_checked()  # it has votes: a new model, by default
    form.get_by_role("button", name="Apply and build").click()
    expect(page.get_by_test_id("message")).to_contain_text("colour histogram · l2 · annoy 8 trees: added")
    expect(rows).to_have_count(3)
    twin = Variant.objects.get(name="colour histogram · l2 · annoy 8 trees")
    assert twin.pairs_search == "annoy" and twin.feature_set_id == histogram.feature_set_id

    phone = staff_page(browser_context, live_server, "/staff/", **PHONE)
    expect(phone.get_by_test_id("variant-row")).to_have_count(3)
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "the page scrolls sideways"
    phone.screenshot(path="/tmp/e2e-staff-phone.png", full_page=True)
