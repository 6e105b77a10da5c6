"""The staff page in a real browser: a model the catalog outgrew is marked stale, and one click refreshes it."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.e2e.test_swipe_browser import DESKTOP, expect, log_in_as_staff

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]


def test_a_stale_model_is_marked_on_the_staff_page_and_one_click_refreshes_it(
    browser_context, live_server, two_variants, tmp_path
):
    from matching.models import Variant
    from matching.selectors import variant_coverage

    call_command("make_demo_catalog", n=7, seed=8, size=64, verbosity=0)  # imported after the models were built
    page = browser_context(**DESKTOP).new_page()
    log_in_as_staff(page, live_server, then="/staff/")

    stale = page.get_by_test_id("stale")
    expect(stale).to_have_count(2)  # both models lack the 7 new items
    expect(stale.first).to_contain_text("stale: 7 new items")
    page.screenshot(path=tmp_path / "staff-stale.png", full_page=True)

    row = page.locator(f"[data-testid=variant-row][data-variant-id='{two_variants[0].pk}']")
    row.get_by_test_id("refresh").click()

    expect(page.get_by_test_id("message")).to_contain_text("refreshing")
    expect(page.get_by_test_id("stale")).to_have_count(1)  # the other model is still stale
    expect(row.get_by_test_id("stale")).to_have_count(0)
    page.screenshot(path=tmp_path / "staff-refreshed.png", full_page=True)
    assert variant_coverage(Variant.objects.get(pk=two_variants[0].pk)).stale is False
