"""Browser tests: run the real app in a subprocess and drive it with Debian's Chromium.

The app starts once per session on a free localhost port (``uvicorn app.app:app``) with its own
temporary SQLite database (``$ARTDS_DATABASE_URL``) and Learning Mode folder, in which one user
per role (:data:`tests.e2e.helpers.USERS`) is created first; the helpers' ``open_app`` logs in
when the login page appears. Playwright uses the system Chromium (never ``playwright install``);
the launch flags keep it offline and quiet. Every test gets a fresh browser context, hence a
fresh Shiny session.

The app serves whatever models/ holds (the environment is passed through unchanged, so an
``ARTDS_MODELS_DIR`` set by the caller applies to the app and to the tests' own ``app.shared``
alike); the tests read ``app.shared`` to know which models to expect, and pass with or without
trained outcome models.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.e2e.helpers import USERS
from tests.served import start_app

EXPECT_TIMEOUT_MS = 15_000
"""How long an ``expect`` waits (Playwright's default is 5 s). A hang guard for a loaded 2-core CI
machine, not a performance budget: the app answers in well under a second there (the slow work
runs outside Shiny's flush, see app/recommending.py)."""

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed")
    return {
        "executable_path": chromium,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def app_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The app's database (a fresh SQLite file) with one user per role of ``USERS``.

    The users are made in this process (the same ``engine.platform.accounts.create_user`` the CLI
    calls;
    ``artds user add`` itself is tested in tests/unit/platform/test_accounts.py)."""
    from engine.platform.accounts import create_user
    from engine.platform.store import Store

    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'artds.sqlite3'}"
    store = Store(url)
    try:
        store.upgrade()
        for role, (username, password) in USERS.items():
            create_user(store, username, password, role, created_by="cli")
    finally:
        store.dispose()
    return url


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory, app_database_url: str) -> Iterator[str]:
    """Start ``uvicorn app.app:app`` on a free port and yield its URL."""
    app_dir = tmp_path_factory.mktemp("app")
    server = start_app({"ARTDS_DATABASE_URL": app_database_url,
                        "ARTDS_LEARNING_DIR": str(app_dir / "learning")}, app_dir / "app.log")
    try:
        yield server.url
    finally:
        server.stop(timeout_s=15)


@pytest.fixture
def console_errors(page: Page) -> list[str]:
    """Console errors and uncaught page errors seen during the test."""
    errors: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    return errors
