"""In Chromium: the dark-mode preference is followed and no page load leaves the server (the
page icon used to come from a font server)."""

from __future__ import annotations

import pytest

from tests.e2e.test_browser_e2e import SLOW_MS, app_url, browser, go_to, wait_idle

__all__ = ["app_url", "browser"]  # fixtures used here, defined in test_browser_e2e

pytestmark = pytest.mark.browser


def test_dark_preference_gives_the_dark_theme_and_nothing_is_fetched_elsewhere(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, color_scheme="dark")
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda r: (
            elsewhere.append(r.url)
            if r.url.startswith("http") and not r.url.startswith(app_url)
            else None
        ),
    )
    page.goto(app_url, timeout=SLOW_MS)
    page.get_by_role("heading", name="CXR Pneumonia Lab").wait_for(timeout=SLOW_MS)
    wait_idle(page)
    background = page.evaluate("getComputedStyle(document.querySelector('.stApp')).backgroundColor")
    assert background == "rgb(17, 26, 32)"  # [theme.dark] backgroundColor #111a20
    go_to(page, "Train")
    wait_idle(page)
    icon = page.evaluate("document.querySelector('link[rel~=\"icon\"]')?.href || ''")
    assert icon.startswith(app_url) or icon.startswith("data:"), icon
    assert elsewhere == [], elsewhere
    page.close()


def test_light_preference_gives_the_light_theme(browser, app_url) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, color_scheme="light")
    page.goto(app_url, timeout=SLOW_MS)
    page.get_by_role("heading", name="CXR Pneumonia Lab").wait_for(timeout=SLOW_MS)
    wait_idle(page)
    background = page.evaluate("getComputedStyle(document.querySelector('.stApp')).backgroundColor")
    assert background == "rgb(248, 250, 251)"  # [theme.light] backgroundColor #f8fafb
    page.close()
