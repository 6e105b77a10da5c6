"""Browser-test world: a live server, two small ready variants, and headless Chromium (Playwright, sync API)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import skip_or_fail

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def chromium():
    """One Chromium per module; each test opens its own context (cookies, localStorage, viewport)."""
    if not CHROMIUM.exists():
        skip_or_fail("Chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with pytest.MonkeyPatch.context() as mp, sync_api.sync_playwright() as p:
        # Playwright's sync API keeps an asyncio loop on this thread, so Django would refuse every ORM call
        # made here, database setup and flush included ("async context"). They are in fact synchronous.
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# Chromium logs each Content-Security-Policy violation on the console ("... violates the following Content Security
# Policy directive ..."); the page's own securitypolicyviolation events are logged too, in case one is not.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => console.error(
  `Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`
));
"""


@pytest.fixture
def browser_context(chromium):
    """Opens browser contexts (viewport, touch…) for one test and closes them after it, passed or not.

    Every page runs under the site's Content-Security-Policy; the test fails if any page of it broke the policy.
    """
    contexts, violations = [], []

    def on_console(message):
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    def open_context(**options):
        context = chromium.new_context(**options)
        context.set_default_timeout(10_000)
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        context.on("console", on_console)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()
    assert violations == [], "Content-Security-Policy violations:\n" + "\n".join(violations)


@pytest.fixture
def served(settings):
    """Settings for pages served by the live server: plain static files (no collectstatic manifest), and the
    production Content-Security-Policy."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.VSEARCH_CSP = settings.DEFAULT_CSP
    from django.core.cache import cache

    # Rotation, exposure counts and throttle buckets are cached: start from nothing.
    cache.clear()
    yield settings
    cache.clear()


@pytest.fixture
def two_variants(served, demo_catalog):
    """The 30-item demo catalog with two variants built eagerly: colour histograms (L2) and a random baseline."""
    from matching.models import Variant
    from matching.services import variant_create

    variants = [
        variant_create(featurizer="colour-histogram", layer="hsv", metric="l2"),
        variant_create(metric="random"),
    ]
    for variant in variants:
        variant.refresh_from_db()
        assert variant.status == Variant.Status.READY, f"{variant.name}: {variant.status} {variant.error!r}"
        assert variant.pairs.exists()
    return variants
