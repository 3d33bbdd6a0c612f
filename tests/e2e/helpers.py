"""Small helpers shared by the browser tests (waiting for Shiny, switching panels)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

__all__ = ["open_app", "open_tab", "wait_for_shiny", "wait_idle"]


def wait_for_shiny(page: Page) -> None:
    """Wait until Shiny has initialised and is not busy."""
    page.wait_for_function("() => window.Shiny && window.Shiny.initializedPromise")
    page.evaluate("() => window.Shiny.initializedPromise")
    wait_idle(page)


def wait_idle(page: Page) -> None:
    """Wait until the server is idle and no visible output is recalculating.

    Outputs on hidden panels are not computed until shown, and keep ``.recalculating``.
    """
    page.wait_for_function(
        "() => !document.documentElement.classList.contains('shiny-busy')"
        " && [...document.querySelectorAll('.recalculating')]"
        "      .every((el) => el.offsetParent === null)"
    )


def open_app(page: Page, url: str) -> None:
    page.goto(url)
    wait_for_shiny(page)
    expect(page.locator(".navbar-brand")).to_contain_text("adaptive RT decision support")


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    expect(page.get_by_role("tab", name=name)).to_have_attribute("aria-selected", "true")
    wait_idle(page)
