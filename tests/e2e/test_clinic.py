"""The clinic-ready app in Chromium: login, logout, roles, persistence, audit, Learning Mode.

Runs against the e2e app (temporary SQLite database with one user per role, see conftest). Tests
that change what every session sees (promotion) put it back before they end.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import re
import socket
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from shiny.playwright import controller
from sqlalchemy import update

from app import shared
from engine.arclids.cohort import generate_cohort
from engine.platform import accounts as auth
from engine.platform.store import Store
from engine.platform.store.tables import AuthSession
from tests.e2e.helpers import USERS, log_in, open_app, open_tab, wait_idle

pytestmark = pytest.mark.e2e

PHYSICIST_TABS = ("Model review", "Learning Mode", "Audit trail")


def _status(url: str, method: str = "GET") -> int:
    request = urllib.request.Request(url, method=method)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_unauthenticated_requests_are_refused(app_url: str) -> None:
    assert _status(app_url + "/") == 303  # to the login page
    for path in ("/www/app.css", "/vendor/plotly.min.js", "/www/plots.js",
                 "/session/0123/download/report-download?w=", "/anything"):
        assert _status(app_url + path) == 401, path
    assert _status(app_url + "/session/0123/upload/x", method="POST") == 401
    assert _status(app_url + "/login") == 200
    assert _status(app_url + "/healthz") == 200
    # The websocket handshake is refused before Shiny sees it.
    parts = urlsplit(app_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            b"GET /websocket/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n")
        answer = sock.recv(200).decode("latin-1")
    assert answer.startswith("HTTP/1.1 403"), answer


def test_login_wrong_password_logout(page: Page, app_url: str,
                                     console_errors: list[str]) -> None:
    page.goto(app_url)
    expect(page.locator("#login-form")).to_be_visible()
    username, _ = USERS["clinician"]
    page.locator("#username").fill(username)
    page.locator("#password").fill("not the password")
    page.locator("#login-form button[type=submit]").click()
    expect(page.locator(".error")).to_contain_text("Wrong user name or password")
    log_in(page, "clinician")
    expect(page.locator(".artds-user")).to_contain_text(f"{username} · clinician")
    cookie = next(c for c in page.context.cookies() if c["name"] == "artds_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert [e for e in console_errors if "401" not in e] == []  # 401: the wrong login
    page.get_by_role("button", name="Log out", exact=True).click()
    expect(page.locator("#login-form")).to_be_visible()
    page.goto(app_url)  # the old session no longer opens the app
    expect(page.locator("#login-form")).to_be_visible()


def test_login_throttled_after_repeated_failures(page: Page, app_url: str) -> None:
    page.goto(app_url + "/login")
    for _ in range(5):
        page.locator("#username").fill("e2e-nobody")
        page.locator("#password").fill("guess-guess")
        page.locator("#login-form button[type=submit]").click()
        expect(page.locator(".error")).to_contain_text("Wrong user name or password")
    page.locator("#password").fill("guess-guess")
    with page.expect_response(lambda r: r.url.endswith("/login") and
                              r.request.method == "POST") as info:
        page.locator("#login-form button[type=submit]").click()
    assert info.value.status == 429
    expect(page.locator(".error")).to_contain_text("Too many failed logins")


def _idle_for(store: Store, page: Page, seconds: float) -> None:
    """Pretend the browser's session was last used ``seconds`` ago."""
    cookie = next(c for c in page.context.cookies() if c["name"] == "artds_session")
    token = auth.SessionSigner(auth.secret_key(store)).unsign(cookie["value"], 10**6)
    assert token is not None
    with store.session() as s:
        s.execute(update(AuthSession)
                  .where(AuthSession.token_sha256 == hashlib.sha256(token.encode()).hexdigest())
                  .values(last_seen_at=datetime.now(UTC) - timedelta(seconds=seconds)))


def test_idle_session_is_sent_to_the_login_page(
    page: Page, app_url: str, app_database_url: str
) -> None:
    open_app(page, app_url, role="clinician")
    open_tab(page, "Outcome space")
    store = Store(app_database_url)
    try:
        _idle_for(store, page, 31 * 60)  # the default idle timeout is 30 minutes
        page.wait_for_timeout(1_100)  # the gate re-checks a websocket at most once a second
        # The first action after the break, unless the page's own periodic check has already
        # left the app (then there is no tab to click).
        with contextlib.suppress(PlaywrightTimeoutError):
            page.get_by_role("tab", name="Population").click(timeout=5_000)
        expect(page.locator("#login-form")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/login$"))
    finally:
        store.dispose()
    page.goto(app_url)  # the cookie no longer opens the app
    expect(page.locator("#login-form")).to_be_visible()


def test_keyboard_only_login_and_data_entry(page: Page, app_url: str) -> None:
    page.goto(app_url)
    expect(page.locator("#username")).to_be_focused()  # autofocus: type at once
    username, password = USERS["clinician"]
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    expect(page.locator("#password")).to_be_focused()
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    expect(page.locator(".navbar-brand")).to_contain_text("adaptive RT decision support")
    wait_idle(page)

    def tab_to(selector: str, limit: int = 120) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
                return
        raise AssertionError(f"{selector} not reachable with Tab in {limit} presses")

    # The manual form: reach the id field, type, reach "Add this patient", press Enter.
    tab_to("#data-m_patient_id")
    page.keyboard.press("Control+a")
    page.keyboard.type("KEY-001")
    tab_to("#data-add_manual")
    page.keyboard.press("Enter")
    expect(page.locator("#data-form_status")).to_contain_text("1 case added")
    controller.InputSelectize(page, "data-show").expect_selected(
        [str(shared.STARTUP_CASES["nsclc"].iloc[0]["patient_id"]), "KEY-001"])
    # A tab of the navbar opens with the keyboard as well.
    page.get_by_role("tab", name="Outcome space").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#outcome-summary")).to_contain_text("KEY-001")


def test_clinician_role_limits_enforced_on_the_server(
    page: Page, app_url: str, app_database_url: str, console_errors: list[str]
) -> None:
    open_app(page, app_url, role="clinician")
    for tab in ("Data input", "Outcome space", "Population", "Systemic therapy", "Report", "Help"):
        expect(page.get_by_role("tab", name=tab)).to_have_count(1)
    for tab in (*PHYSICIST_TABS, "Users"):
        expect(page.get_by_role("tab", name=tab)).to_have_count(0)
    # Sending a physicist's input by hand does nothing: the server never registered it.
    store = Store(app_database_url)
    before = len(store.jobs(limit=100))
    page.evaluate("() => Shiny.setInputValue('learning-start', 1, {priority: 'event'})")
    page.evaluate("() => Shiny.setInputValue('audit-protocol', 'nsclc')")
    wait_idle(page)
    assert len(store.jobs(limit=100)) == before
    store.dispose()
    expect(page.locator(".shiny-output-error")).to_have_count(0)
    assert console_errors == []


def test_a_demoted_physicist_downloads_nothing_more_and_comes_back_as_a_clinician(
    page: Page, app_url: str, app_database_url: str, console_errors: list[str]
) -> None:
    store = Store(app_database_url)
    try:
        auth.create_user(store, "e2e-demoted", "demoted-pass-1234", "physicist",
                         created_by="cli")
        page.goto(app_url)
        page.locator("#username").fill("e2e-demoted")
        page.locator("#password").fill("demoted-pass-1234")
        page.locator("#login-form button[type=submit]").click()
        expect(page.locator(".artds-user")).to_contain_text("e2e-demoted · physicist")
        open_tab(page, "Audit trail")
        href = page.locator("#audit-csv").get_attribute("href")
        assert href
        status = "async (url) => (await fetch(url)).status"
        assert page.evaluate(status, href) == 200
        store.set_role("e2e-demoted", "clinician", by="e2e-admin")  # in the Users panel
        assert page.evaluate(status, href) == 403  # the open physicist page's download
        page.wait_for_timeout(1_100)  # the gate re-checks a websocket at most once a second
        with contextlib.suppress(PlaywrightTimeoutError):  # the next action ...
            page.get_by_role("tab", name="Population").click(timeout=5_000)
        # ... sends it to the login page, which (the login still valid) opens the app again,
        # built for a clinician.
        expect(page.locator(".artds-user")).to_contain_text("e2e-demoted · clinician")
        for tab in PHYSICIST_TABS:
            expect(page.get_by_role("tab", name=tab)).to_have_count(0)
    finally:
        store.dispose()
    assert [e for e in console_errors if "403" not in e] == []


def test_admin_adds_a_user(page: Page, app_url: str, app_database_url: str) -> None:
    open_app(page, app_url, role="admin")
    for tab in (*PHYSICIST_TABS, "Users"):
        expect(page.get_by_role("tab", name=tab)).to_have_count(1)
    open_tab(page, "Users")
    controller.InputText(page, "users-username").set("e2e-new-clinician")
    page.locator("#users-password").fill("new-clinician-pass")
    page.locator("#users-password2").fill("new-clinician-pass")
    controller.InputActionButton(page, "users-add").click()
    expect(page.locator("#users-add_status")).to_contain_text("Added clinician e2e-new-clinician")
    expect(page.locator("#users-table")).to_contain_text("e2e-new-clinician")
    # Change that user: the role selector follows the chosen user; a new password works.
    controller.InputSelect(page, "users-who").set("e2e-new-clinician")
    controller.InputSelect(page, "users-new_role").expect_selected("clinician")
    page.locator("#users-new_password").fill("replaced-pass-4321")
    page.locator("#users-new_password2").fill("replaced-pass-4321")
    controller.InputActionButton(page, "users-set_password").click()
    expect(page.locator("#users-change_status")).to_contain_text("password changed")
    store = Store(app_database_url)
    assert store.user("e2e-new-clinician").role == "clinician"
    assert auth.authenticate(store, "e2e-new-clinician", "replaced-pass-4321",
                             remote="e2e").user is not None
    store.dispose()


def test_two_patients_compared_side_by_side(page: Page, app_url: str,
                                            console_errors: list[str]) -> None:
    open_app(page, app_url, role="clinician")
    controller.InputSelect(page, "data-example").set("EX-NSCLC-02")
    controller.InputActionButton(page, "data-load_example").click()
    show = controller.InputSelectize(page, "data-show")
    show.expect_selected(["EX-NSCLC-01", "EX-NSCLC-02"])
    open_tab(page, "Outcome space")
    summary = page.locator("#outcome-summary .case-summary")
    expect(summary).to_have_count(2)
    expect(summary.nth(0)).to_contain_text("EX-NSCLC-01")
    expect(summary.nth(1)).to_contain_text("EX-NSCLC-02")
    names = page.evaluate("() => document.getElementById('outcome-plot').data.map(t => t.name)")
    assert any("EX-NSCLC-01" in str(n) for n in names)
    assert any("EX-NSCLC-02" in str(n) for n in names)
    open_tab(page, "Population")
    for pid in ("EX-NSCLC-01", "EX-NSCLC-02"):
        expect(page.locator("#population-plot .legendtext", has_text=pid)).to_have_count(1)
    assert console_errors == []


def test_note_saved_shown_after_reload_escaped_in_app_and_report(
    page: Page, app_url: str, app_database_url: str, console_errors: list[str], tmp_path: Path
) -> None:
    first = str(shared.STARTUP_CASES["nsclc"].iloc[0]["patient_id"])
    text = "<script>window.__pwned = 1</script> Escalate: poor response & high IL-6."
    open_app(page, app_url, role="clinician")
    note = page.get_by_label(f"Notes for {first}")
    note.fill(text)
    note.blur()
    controller.InputActionButton(page, "data-save_notes").click()
    expect(page.locator("#data-notes_saved")).to_contain_text("1 note saved")
    expect(page.locator("#data-notes_saved")).to_contain_text(USERS["clinician"][0])

    page.reload()
    open_app(page, app_url, role="clinician")  # still logged in: no login form
    expect(page.get_by_label(f"Notes for {first}")).to_have_value(text)
    assert page.evaluate("() => window.__pwned") is None
    expect(page.locator("#data-notes_saved script")).to_have_count(0)

    open_tab(page, "Outcome space")  # the recommendation is shown, hence audited
    expect(page.locator("#outcome-summary")).to_contain_text("Recommended:")
    open_tab(page, "Report")
    with page.expect_download() as info:
        controller.DownloadButton(page, "report-download").click()
    saved = tmp_path / "report.html"
    info.value.save_as(saved)
    html = saved.read_text(encoding="utf-8")
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt; Escalate" in html
    assert "<script>window.__pwned" not in html
    assert USERS["clinician"][0] in html
    assert "not clinical evidence" in html.lower()
    store = Store(app_database_url)
    (rec,) = store.recommendations(username=USERS["clinician"][0], limit=1)
    store.dispose()
    assert rec.input_hash in html and rec.model_version in html
    assert f'<td class="num audit-id">{rec.id}</td>' in html
    report_page = page.context.new_page()
    report_page.goto(saved.as_uri())
    expect(report_page.locator("#notes")).to_contain_text("<script>window.__pwned")
    assert report_page.evaluate("() => window.__pwned") is None
    report_page.close()
    assert console_errors == []


def test_inputs_saved_printed_reloaded_and_followed_up(
    page: Page, app_url: str, tmp_path: Path, console_errors: list[str]
) -> None:
    patient = "EX-NSCLC-03"
    open_app(page, app_url, role="clinician")
    controller.InputActionButton(page, "data-clear").click()
    controller.InputSelect(page, "data-example").set(patient)
    controller.InputActionButton(page, "data-load_example").click()
    controller.InputSelectize(page, "data-show").expect_selected([patient])
    versions = page.locator("#data-versions")
    expect(versions).to_contain_text(f"{patient}: version 1 of 1")
    expect(versions).to_contain_text(USERS["clinician"][0])

    # Save the inputs as CSV (the upload format) and as a printable page.
    with page.expect_download() as info:
        controller.DownloadButton(page, "data-inputs_csv").click()
    saved_csv = tmp_path / "inputs.csv"
    info.value.save_as(saved_csv)
    rows = list(csv.DictReader(io.StringIO(saved_csv.read_text(encoding="utf-8"))))
    assert [r["patient_id"] for r in rows] == [patient]
    assert set(shared.PROTOCOLS["nsclc"].feature_names) <= set(rows[0])
    with page.expect_download() as info:
        controller.DownloadButton(page, "data-inputs_print").click()
    printable = tmp_path / "inputs.html"
    info.value.save_as(printable)
    html = printable.read_text(encoding="utf-8")
    assert patient in html and USERS["clinician"][0] in html

    # The saved CSV uploads again unchanged: the same case, no new version.
    controller.InputFile(page, "data-upload").set(
        {"name": "inputs.csv", "mimeType": "text/csv", "buffer": saved_csv.read_bytes()})
    expect(page.locator("#data-upload_status")).to_contain_text("1 replaced")
    expect(versions).to_contain_text(f"{patient}: version 1 of 1")

    # A follow-up (dose given, outcomes) is a new version; the first one stays.
    controller.InputSelect(page, "data-fu_case").set(patient)
    controller.InputNumeric(page, "data-fu_dose").set("2.8")
    controller.InputSelect(page, "data-fu_target").set("1")
    controller.InputSelect(page, "data-fu_oar").set("0")
    controller.InputActionButton(page, "data-save_followup").click()
    expect(page.locator("#data-followup_status")).to_contain_text("new input version")
    expect(versions).to_contain_text(f"{patient}: version 2 of 2")
    page.locator("#data-versions summary").first.click()
    expect(versions).to_contain_text("changed: dose_adapt_gy")

    # Another day: reload the stored case in a fresh session.
    page.reload()
    open_app(page, app_url, role="clinician")
    controller.InputActionButton(page, "data-clear").click()
    expect(page.locator("#data-cases_status")).to_contain_text("Load an example patient")
    controller.InputSelectize(page, "data-saved").set([patient])
    controller.InputActionButton(page, "data-load_saved").click()
    expect(page.locator("#data-saved_status")).to_contain_text("1 case added from the database")
    controller.InputSelectize(page, "data-show").expect_selected([patient])
    expect(versions).to_contain_text(f"{patient}: version 2 of 2")
    assert console_errors == []


def test_audit_trail_lists_and_exports_recommendations(
    page: Page, app_url: str, tmp_path: Path, console_errors: list[str]
) -> None:
    open_app(page, app_url, role="physicist")
    open_tab(page, "Outcome space")
    expect(page.locator("#outcome-summary")).to_contain_text("Recommended:")
    open_tab(page, "Audit trail")
    username = USERS["physicist"][0]
    expect(page.locator("#audit-recommendations")).to_contain_text(username, timeout=15_000)
    expect(page.locator("#audit-events")).to_contain_text("login")
    with page.expect_download() as info:
        controller.DownloadButton(page, "audit-csv").click()
    saved = tmp_path / "audit.csv"
    info.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    mine = [r for r in rows if r["user"] == username]
    assert mine and all(len(r["input_hash"]) == 64 for r in mine)
    assert {"time_utc", "outcome_model_version", "recommended_dose_gy"} <= set(rows[0])
    assert console_errors == []


def _cases_with_outcomes(n: int) -> bytes:
    """A clinic file of ``n`` virtual patients with the dose given and both outcomes."""
    p = shared.PROTOCOLS["nsclc"]
    cohort = generate_cohort("nsclc", seed=777, n_patients=3 * n).complete_table.head(n)
    columns = [*p.id_columns, *p.feature_names, "dose_eval_gy", "dose_adapt_gy",
               *p.outcome_names]
    table = cohort[columns].copy()
    table["patient_id"] = [f"LM-{i:03d}" for i in range(len(table))]
    return table.to_csv(index=False, float_format="%.6g").encode()


def test_learning_mode_tiny_run_then_promotion_and_rollback(
    page: Page, browser: Browser, app_url: str, app_database_url: str,
    console_errors: list[str]
) -> None:
    open_app(page, app_url, role="physicist")
    # Other tests share the database and may already have stored followed-up NSCLC cases.
    store = Store(app_database_url)
    try:
        before = len(store.inputs_with_outcomes("nsclc"))
    finally:
        store.dispose()
    controller.InputFile(page, "data-upload").set(
        {"name": "followed_up.csv", "mimeType": "text/csv", "buffer": _cases_with_outcomes(24)})
    expect(page.locator("#data-upload_status")).to_contain_text("24 cases added")
    open_tab(page, "Learning Mode")
    expect(page.locator("#learning-data_summary")).to_contain_text(
        f"{before + 24} stored NSCLC cases")
    controller.InputSelect(page, "learning-budget").set("tiny")
    page.locator("#learning-start").click()
    job = page.locator("#learning-job")
    expect(job.locator(".progress-bar")).to_be_visible(timeout=30_000)
    # Meanwhile another user's session (same app process) works as usual.
    other = browser.new_context().new_page()
    open_app(other, app_url, role="clinician")
    controller.InputSelect(other, "data-example").set("EX-NSCLC-02")
    controller.InputActionButton(other, "data-load_example").click()
    expect(other.locator("#data-cases_status")).to_contain_text("2 cases loaded")
    other.context.close()
    expect(job).to_have_attribute("data-status", "done", timeout=180_000)
    expect(job).to_contain_text("New version")
    expect(page.locator("#learning-cancel")).to_be_disabled()  # nothing left to cancel
    new_version = job.locator("code").inner_text()
    assert new_version.startswith("learn-nsclc-glogd-")
    comparison = page.locator("#learning-comparison")
    expect(comparison).to_contain_text(new_version)
    expect(comparison).to_contain_text("Held-out AUROC, clinic cases")
    expect(comparison).to_contain_text("AUROC, fresh virtual cohort")
    shipped = shared.MODEL_CHOICES["nsclc"]["glogd"].model.version
    expect(comparison).to_contain_text(shipped)  # compared with the version serving

    controller.InputSelect(page, "learning-version").set(new_version)
    controller.InputText(page, "learning-reason").set("e2e: tiny run")
    page.locator("#learning-promote").click()
    modal = page.locator(".modal-dialog")
    expect(modal).to_contain_text("Promote")
    modal.locator("#learning-confirm_promote").click()
    store = Store(app_database_url)
    try:
        expect(page.locator("#learning-promote_status")).to_contain_text(f"Promoted {new_version}")
        assert store.serving_version("nsclc").version == new_version
        expect(page.locator("#model-info")).to_contain_text(new_version, timeout=20_000)
        expect(page.locator("#learning-history")).to_contain_text("e2e: tiny run")
        # "Roll back" asks first, naming both versions; "Cancel" changes nothing.
        page.locator("#learning-rollback").click()
        expect(modal).to_contain_text(f"from {new_version}")
        expect(modal).to_contain_text(shipped)
        modal.get_by_role("button", name="Cancel").click()
        expect(modal).to_be_hidden()
        assert store.serving_version("nsclc").version == new_version
    finally:
        page.locator("#learning-rollback").click()
        page.locator(".modal-dialog #learning-confirm_rollback").click()
        expect(page.locator("#learning-promote_status")).to_contain_text(
            f"Rolled back to {shipped}")
        assert store.serving_version("nsclc").version == shipped
        actions = [p.action for p in store.promotions("nsclc")][:2]
        store.dispose()
    assert actions == ["rollback", "promote"]
    expect(page.locator("#model-info")).to_contain_text(shipped, timeout=20_000)
    expect(page.locator(".shiny-output-error")).to_have_count(0)
    assert console_errors == []
