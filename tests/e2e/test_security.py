"""The app's own pages satisfy its Content-Security-Policy in Chromium, and a Shiny session's
files belong to the user who opened it (#14 point 3).

The policy: Chromium reports every ``securitypolicyviolation`` (collected from the first
script of each page) and every console error while an admin goes through every tab with
figures drawn; there must be none. (Dialogs, shown by an inline script Shiny sends with them,
are opened under the same policy by tests/e2e/test_clinic.py's Learning Mode test.)

The binding: a real websocket session of one user, and requests for its ``/session/<id>/``
downloads and uploads with another user's cookie, against an app whose access log is on (the
id must not appear in it)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app.security import SECURITY_HEADERS
from engine.platform.store import Store
from tests.e2e.helpers import USERS, open_app, open_tab, wait_idle
from tests.served import ShinySession, http_get, log_in, page_inputs, served_app
from tests.unit.app import run_async

pytestmark = pytest.mark.e2e

TABS = ("Data input", "Outcome space", "Population", "Report", "Model review",
        "Learning Mode", "Audit trail", "Fractionation planner", "SF2", "Users", "Help")
"""Every tab of the admin's page (the clinician's and physicist's are subsets)."""

COLLECT_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:` +
                              `${e.lineNumber} ${e.sample}`);
});
"""


def test_every_tab_satisfies_the_content_security_policy(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    page.add_init_script(COLLECT_VIOLATIONS)
    response = page.goto(app_url + "/login")
    assert response is not None
    assert response.headers["content-security-policy"] == dict(SECURITY_HEADERS)[
        b"content-security-policy"].decode()
    assert "'unsafe-inline'" not in response.headers["content-security-policy"].split(
        "script-src")[1].split(";")[0]
    open_app(page, app_url, role="admin")  # the start-up case is shown (nothing is stored)
    for tab in TABS:
        open_tab(page, tab)
        if tab == "Outcome space":
            expect(page.locator("#outcome-plot.js-plotly-plot")).to_be_visible()
        wait_idle(page)
    violations = page.evaluate("() => window.__cspViolations")
    assert violations == [] and console_errors == []


def _data_panel(output: str) -> bool:
    return output.startswith(("data-", "model-", "audit-"))


def test_a_session_files_are_refused_to_another_user_and_its_id_stays_out_of_the_log(
    app_database_url: str, tmp_path: Path
) -> None:
    async def scenario(url: str) -> tuple[str, int]:
        physicist = await asyncio.to_thread(log_in, url, *USERS["physicist"])
        clinician = await asyncio.to_thread(log_in, url, *USERS["clinician"])
        status, page = await asyncio.to_thread(http_get, f"{url}/", physicist)
        assert status == 200
        session = ShinySession(url, physicist)
        await session.open(page_inputs(page.decode(), _data_panel))
        await session.wait_for(lambda s: s.session_id is not None, timeout=120)
        sid = session.session_id
        assert sid is not None
        audit_csv = f"{url}/session/{sid}/download/audit-csv?w="
        try:
            for path in (f"/session/{sid}/download/audit-csv?w=",
                         f"/session/{sid}/download/data-inputs_csv?w=",
                         f"/session/{sid}/download/report-download?w="):
                refused, body = await asyncio.to_thread(http_get, url + path, clinician)
                assert (refused, body) == (403, b"This belongs to another session."), path
            upload = await asyncio.to_thread(_post, f"{url}/session/{sid}/upload/x?w=",
                                             clinician)
            assert upload == 403
            mine, body = await asyncio.to_thread(http_get, audit_csv, physicist)
            assert mine == 200 and body.startswith(b"id,time_utc,")
        finally:
            await session.close()
        # the session has ended: its id is no longer served to anyone
        await asyncio.sleep(1.0)
        after, _ = await asyncio.to_thread(http_get, audit_csv, physicist)
        return sid, after

    with served_app(app_database_url, tmp_path, access_log=True) as app:
        sid, after = run_async(scenario(app.url))
        log = app.log_path.read_text()
    assert after == 403
    assert sid not in log and re.search(r"/session/…/download/audit-csv", log)
    store = Store(app_database_url)
    try:
        exports = store.events(limit=500, action="audit_exported")
    finally:
        store.dispose()
    assert [e["username"] for e in exports].count(USERS["clinician"][0]) == 0
    assert [e["username"] for e in exports].count(USERS["physicist"][0]) >= 1


def _post(url: str, cookie: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=b"x" * 10, method="POST",
                                     headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
