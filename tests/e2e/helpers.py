"""Small helpers shared by the browser tests (logging in, waiting for Shiny, switching panels)."""

from __future__ import annotations

from playwright.sync_api import Page, expect

__all__ = ["USERS", "assert_clean", "log_in", "open_app", "open_tab", "wait_for_shiny", "wait_idle"]

USERS: dict[str, tuple[str, str]] = {
    "clinician": ("e2e-clinician", "clinician-pass-1234"),
    "physicist": ("e2e-physicist", "physicist-pass-1234"),
    "admin": ("e2e-admin", "admin-pass-12345678"),
}
"""Role → (user name, password) created in the e2e app's temporary database (test-only)."""


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


def log_in(page: Page, role: str = "physicist") -> None:
    """Fill and submit the login form shown on ``page`` as the e2e user of ``role``."""
    username, password = USERS[role]
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("#login-form button[type=submit]").click()


def open_app(page: Page, url: str, role: str = "physicist") -> None:
    """Open the app, logging in as ``role`` when the login page appears, and wait for Shiny."""
    page.goto(url)
    if page.locator("#login-form").count() > 0:
        log_in(page, role)
    wait_for_shiny(page)
    expect(page.locator(".navbar-brand")).to_contain_text("adaptive RT decision support")


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    expect(page.get_by_role("tab", name=name)).to_have_attribute("aria-selected", "true")
    wait_idle(page)


def assert_clean(page: Page, console_errors: list[str]) -> None:
    """No output shows an error, no traceback reached the page, the console stayed clean."""
    expect(page.locator(".shiny-output-error")).to_have_count(0)
    assert page.locator("text=Traceback").count() == 0
    assert console_errors == []
