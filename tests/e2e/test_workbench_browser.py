"""The staff workbench in a real headless Chromium: the compare page (arrow keys between queries) and the models
page. Screenshots land in /tmp/e2e-*.png for a person to look at."""

from __future__ import annotations

import re

import pytest

from matching.models import Item
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
