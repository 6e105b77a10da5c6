"""The staff map and the search page in a real headless Chromium against a live server.

Waits go through the pages' own signals (body[data-state], the canvas's data-drawn/data-thumbs), never fixed
sleeps. Screenshots land in /tmp/e2e-map-*.png and /tmp/e2e-search-*.png for a person to look at.
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from tests.e2e.test_swipe_browser import CSP, DESKTOP, PHONE, expect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

MAX_THUMBS = 300  # map.js: thumbnails once at most this many points are in view


@pytest.fixture
def map_world(served, db):
    """320 demo items (more than the map draws as thumbnails at once) and a colour-histogram model, built."""
    from django.core.management import call_command

    from matching.models import Layout, Variant
    from matching.services import variant_create

    call_command("make_demo_catalog", n=320, seed=3, size=64, verbosity=0)
    variant = variant_create(featurizer="colour-histogram", layer="hsv", metric="l2", k=5)
    assert variant.status == Variant.Status.READY, variant.error
    assert Layout.objects.get(feature_set=variant.feature_set).status == Layout.Status.READY
    return variant


def log_in(page, live_server, then: str, *, name="carol") -> None:
    from django.contrib.auth.models import User

    User.objects.create_user(name, password="a long enough password", is_staff=True)
    page.goto(f"{live_server.url}/admin/login/?next={then}")
    page.fill("#id_username", name)
    page.fill("#id_password", "a long enough password")
    page.click("input[type=submit]")


def canvas_data(page) -> dict:
    canvas = page.get_by_test_id("map-canvas")
    return {
        "drawn": int(canvas.get_attribute("data-drawn")),
        "thumbs": int(canvas.get_attribute("data-thumbs")),
        "view": json.loads(canvas.get_attribute("data-view")),
        "box": canvas.bounding_box(),
    }


def screen_point(page, u: float, v: float) -> tuple[float, float]:
    """Where the map draws unit coordinates (u, v), in page pixels."""
    data = canvas_data(page)
    view, box = data["view"], data["box"]
    return box["x"] + u * view["scale"] + view["x"], box["y"] + v * view["scale"] + view["y"]


def test_the_map_draws_every_point_zooms_into_thumbnails_and_a_click_shows_neighbours(
    browser_context, live_server, map_world
):
    page = browser_context(**DESKTOP).new_page()
    log_in(page, live_server, then="/staff/map/")
    page.wait_for_url("**/staff/map/**")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.get_by_test_id("map-canvas")).to_have_attribute("data-drawn", "320")
    assert canvas_data(page)["thumbs"] == 0  # 320 in view: dots, no thumbnails
    expect(page.get_by_test_id("legend").locator("button")).to_have_count(10)
    page.screenshot(path="/tmp/e2e-map-desktop.png")

    api = page.request.get(f"{live_server.url}/api/maps/{map_world.feature_set_id}").json()
    points = api["points"]
    target = 17
    x, y = screen_point(page, points["x"][target], points["y"][target])

    # Zoom in on the target with the wheel until few enough points are in view for thumbnails.
    page.mouse.move(x, y)
    for _ in range(12):
        page.mouse.wheel(0, -400)
        page.wait_for_function("() => Number(document.querySelector('[data-testid=map-canvas]').dataset.drawn) > 0")
        if canvas_data(page)["drawn"] <= MAX_THUMBS // 3:
            break
    drawn = canvas_data(page)["drawn"]
    assert 0 < drawn <= MAX_THUMBS // 3
    page.wait_for_function(
        "() => { const c = document.querySelector('[data-testid=map-canvas]');"
        " return Number(c.dataset.thumbs) === Number(c.dataset.drawn); }"
    )
    page.screenshot(path="/tmp/e2e-map-zoomed.png")

    x, y = screen_point(page, points["x"][target], points["y"][target])
    page.mouse.click(x, y)
    neighbours = page.get_by_test_id("neighbour")
    expect(neighbours).to_have_count(10)
    item = points["item"][target]
    expect(page.get_by_test_id("map-panel")).to_contain_text(f"#{item}")
    expected = page.request.post(
        f"{live_server.url}/api/search",
        data={"item": item, "model": map_world.pk, "k": 10},
        headers={"X-CSRFToken": next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")},
    ).json()
    shown = [int(n.get_attribute("data-item")) for n in neighbours.all()]
    assert shown == [r["item"] for r in expected["results"]]
    page.screenshot(path="/tmp/e2e-map-selected.png")

    # A neighbour chosen in the panel becomes the selection.
    neighbours.first.click()
    expect(page.get_by_test_id("neighbours")).to_have_attribute("data-item", str(shown[0]))


def test_the_map_on_a_phone_pans_with_a_finger(browser_context, live_server, map_world):
    page = browser_context(**PHONE).new_page()
    log_in(page, live_server, then="/staff/map/", name="dana")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.get_by_test_id("map-canvas")).to_have_attribute("data-drawn", "320")
    before = canvas_data(page)["view"]

    box = canvas_data(page)["box"]
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for step in range(1, 9):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x + 10 * step, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    page.wait_for_function(
        f"() => JSON.parse(document.querySelector('[data-testid=map-canvas]').dataset.view).x > {before['x'] + 40}"
    )
    assert canvas_data(page)["view"]["scale"] == before["scale"]  # a pan, not a zoom
    page.screenshot(path="/tmp/e2e-map-phone.png", full_page=True)


def test_the_map_is_for_staff_only(browser_context, live_server, map_world):
    page = browser_context(**DESKTOP).new_page()
    response = page.goto(live_server.url + "/staff/map/")

    assert "/admin/login/" in page.url and response.status == 200  # sent to log in
    page.goto(live_server.url + "/")
    expect(page.locator(".topnav")).not_to_contain_text("Staff")


# ---------------------------------------------------------------------------------------- search


@pytest.fixture
def search_world(served, demo_catalog):
    """The 30-item demo catalog with a retired colour-histogram model (public search uses it) and, on other
    features, an untrained ResNet-18 in the rotation (staff only)."""
    from matching.models import Variant
    from matching.services import variant_create, variant_set_rotation

    retired = variant_create(featurizer="colour-histogram", layer="hsv", metric="l2", k=5)
    active = variant_create(featurizer="resnet18", layer="penultimate", metric="cosine", k=5)
    assert retired.status == active.status == Variant.Status.READY
    variant_set_rotation(variant=retired, rotation="retired")
    return {"retired": retired, "active": active, "items": demo_catalog}


def catalog_png(tmp_path, item) -> str:
    """A PNG the test writes: the item's pixels, saved again (other bytes than the catalog's file)."""
    from matching.storage import media_path

    with Image.open(media_path(item.image)) as original:
        buffer = io.BytesIO()
        original.convert("RGB").save(buffer, format="PNG", compress_level=9)
    path = tmp_path / "photo.png"
    path.write_bytes(buffer.getvalue())
    return str(path)


@pytest.mark.parametrize("where", ["desktop", "phone"])
def test_a_visitor_searches_by_photo_and_then_for_more_like_a_result(
    browser_context, live_server, search_world, tmp_path, where
):
    item = search_world["items"][5]
    page = browser_context(**(DESKTOP if where == "desktop" else PHONE)).new_page()
    response = page.goto(live_server.url + "/search/")
    assert response.headers["content-security-policy"] == CSP
    expect(page.locator("body")).to_have_attribute("data-state", "idle")
    expect(page.get_by_test_id("model-note")).to_contain_text(search_world["retired"].name)
    camera = page.get_by_test_id("camera-input")
    assert camera.get_attribute("accept") == "image/*" and camera.get_attribute("capture") == "environment"

    page.get_by_test_id("photo-input").set_input_files(catalog_png(tmp_path, item))
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    results = page.get_by_test_id("result")
    expect(results).to_have_count(12)
    assert results.first.get_attribute("data-item") == str(item.pk)  # its own pixels come first
    expect(page.get_by_test_id("query-preview")).to_be_visible()
    for image in results.locator("img").all()[:4]:
        expect(image).to_have_js_property("complete", True)
    page.screenshot(path=f"/tmp/e2e-search-{where}.png", full_page=True)

    other = int(results.nth(1).get_attribute("data-item"))
    results.nth(1).click()
    expect(page.get_by_test_id("status")).to_contain_text(f"item #{other}")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    assert str(other) not in [r.get_attribute("data-item") for r in page.get_by_test_id("result").all()]


def test_a_file_that_is_not_an_image_is_explained_on_the_page(browser_context, live_server, search_world, tmp_path):
    bogus = tmp_path / "notes.png"
    bogus.write_bytes(b"these are my notes, not a picture")
    page = browser_context(**DESKTOP).new_page()
    page.goto(live_server.url + "/search/")
    expect(page.locator("body")).to_have_attribute("data-state", "idle")

    page.get_by_test_id("photo-input").set_input_files(str(bogus))

    expect(page.locator("body")).to_have_attribute("data-state", "error")
    expect(page.get_by_test_id("status")).to_contain_text("not an image")


def test_staff_choose_any_model_and_visitors_see_search_closed_until_a_model_retires(
    browser_context, live_server, search_world, tmp_path
):
    from matching.models import Variant

    staff = browser_context(**DESKTOP).new_page()
    log_in(staff, live_server, then="/search/")
    expect(staff.locator("body")).to_have_attribute("data-state", "idle")
    options = staff.get_by_test_id("model-select").locator("option")
    expect(options).to_have_count(2)
    staff.get_by_test_id("model-select").select_option(str(search_world["active"].pk))
    staff.get_by_test_id("photo-input").set_input_files(catalog_png(tmp_path, search_world["items"][0]))
    expect(staff.get_by_test_id("status")).to_contain_text(search_world["active"].name)
    expect(staff.locator(".topnav")).to_contain_text("Staff")

    Variant.objects.filter(pk=search_world["retired"].pk).update(rotation="active")  # nothing is retired now
    visitor = browser_context(**PHONE).new_page()
    visitor.goto(live_server.url + "/search/")
    expect(visitor.locator("body")).to_have_attribute("data-state", "closed")
    expect(visitor.get_by_test_id("status")).to_contain_text("left the rotation for good")
    expect(visitor.get_by_test_id("photo-input")).to_be_disabled()
