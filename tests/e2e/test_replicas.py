"""Two app processes on one PostgreSQL database behind a sticky proxy (loopback only): the
hospital deployment of ``docs/clinic.md`` in small.

Both replicas run ``uvicorn app.app:app`` with the same ``ARTDS_DATABASE_URL`` (a private
PostgreSQL server, ``tests/pg.py``) and the same ``ARTDS_LEARNING_DIR``; they start together
(one migrates, the other waits on the advisory lock). A :class:`tests.e2e.sticky_proxy.StickyProxy`
pins each browser to one replica by a cookie. Checked, in the browser and in the database:

* a Learning Mode job started in one replica runs exactly once (one claim, one worker, one
  version), whichever replica's job runner claims it; a job running in one replica is cancelled
  from the other, for real, and a new run is accepted right after;
* a version promoted in one replica is served by the other;
* "Log out" in one replica ends the login in the other (and the page open there).
"""

from __future__ import annotations

import contextlib
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from shiny.playwright import controller

from app import shared
from engine.platform.accounts import create_user
from engine.platform.store import Store
from tests.e2e.helpers import USERS, log_in, open_tab, wait_for_shiny
from tests.e2e.sticky_proxy import StickyProxy
from tests.pg import postgres_bin_dir, start_postgres
from tests.served import AppServer, start_app

pytestmark = pytest.mark.e2e

TRAINING_TIMEOUT_MS = 240_000
"""A hang guard for a tiny Learning Mode run on a loaded 2-core machine."""


@dataclass
class Cluster:
    """The two replicas, their database and the proxy in front."""

    replicas: list[AppServer]
    """Replica 0 and 1."""
    proxy: StickyProxy
    """The proxy the browsers use."""
    database_url: str
    """The shared PostgreSQL database."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if postgres_bin_dir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: `make test` installs it with apt-get")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    url, stop_postgres = start_postgres()
    folder = tmp_path_factory.mktemp("replicas")
    replicas: list[AppServer] = []
    proxy: StickyProxy | None = None
    try:
        store = Store(url)
        store.upgrade()
        for role, (username, password) in USERS.items():
            create_user(store, username, password, role, created_by="cli")
        store.dispose()
        env = {"ARTDS_DATABASE_URL": url, "ARTDS_LEARNING_DIR": str(folder / "learning")}
        # Started together, as containers are: one migrates, the other waits.
        replicas = [start_app(env, folder / f"replica{i}.log", wait=False) for i in range(2)]
        for replica in replicas:
            replica.wait_ready()
        proxy = StickyProxy([("127.0.0.1", int(r.url.rsplit(":", 1)[1])) for r in replicas])
        proxy.start()
        yield Cluster(replicas, proxy, url)
    finally:
        if proxy is not None:
            proxy.stop()
        for replica in replicas:
            replica.stop(timeout_s=30)
        stop_postgres()


def _pinned(browser: Browser, cluster: Cluster, replica: int) -> Page:
    """A fresh browser (context) pinned to ``replica`` by the proxy's cookie."""
    context = browser.new_context()
    context.add_cookies([{"name": StickyProxy.COOKIE, "value": str(replica),
                          "url": cluster.proxy.url}])
    return context.new_page()


def _open(page: Page, cluster: Cluster, role: str) -> None:
    page.goto(cluster.proxy.url)
    if page.locator("#login-form").count() > 0:
        log_in(page, role)
    wait_for_shiny(page)
    expect(page.locator(".artds-user")).to_contain_text(USERS[role][0])


def _claims(store: Store, job_id: int) -> list[str]:
    """The workers (app processes) that claimed ``job_id``."""
    return [e["detail"]["worker"] for e in store.events(limit=1000)
            if e["action"] == "training_claimed" and e["detail"]["job"] == job_id]


def _replica_of(cluster: Cluster, worker: str) -> int:
    """Which replica a claim's ``host:pid:start`` names."""
    pid = int(worker.split(":")[1])
    return [r.process.pid for r in cluster.replicas].index(pid)


def _job_done_on(page: Page) -> str:
    job = page.locator("#learning-job")
    expect(job).to_have_attribute("data-status", "done", timeout=TRAINING_TIMEOUT_MS)
    return job.locator("code").inner_text()


def test_learning_mode_and_promotion_across_replicas(browser: Browser, cluster: Cluster) -> None:
    first, second = _pinned(browser, cluster, 0), _pinned(browser, cluster, 1)
    store = Store(cluster.database_url)
    try:
        _open(first, cluster, "physicist")
        _open(second, cluster, "physicist")
        # Each page's websocket went through the proxy to its own replica.
        sockets = {i for i, line in cluster.proxy.seen if line.startswith("GET /websocket/")}
        assert sockets == {0, 1}

        # A tiny run started in replica 1 runs once, whichever replica claims it.
        open_tab(second, "Learning Mode")
        controller.InputSelect(second, "learning-budget").set("tiny")
        second.locator("#learning-start").click()
        version = _job_done_on(second)
        job = store.jobs("nsclc", limit=1)[0]
        assert (job.status, job.model_version) == ("done", version)
        claims = _claims(store, job.id)
        assert len(claims) == 1 and _replica_of(cluster, claims[0]) in (0, 1)
        done = [e for e in store.events(limit=1000) if e["action"] == "training_done"]
        assert [e["detail"]["job"] for e in done] == [job.id]
        assert [v.version for v in store.model_versions("nsclc")].count(version) == 1

        # Promoted in replica 0 (which sees the job's version too) ...
        open_tab(first, "Learning Mode")
        expect(first.locator("#learning-job")).to_have_attribute("data-status", "done",
                                                                 timeout=30_000)
        controller.InputSelect(first, "learning-version").set(version)
        controller.InputText(first, "learning-reason").set("replicas: tiny run")
        first.locator("#learning-promote").click()
        first.locator(".modal-dialog #learning-confirm_promote").click()
        expect(first.locator("#learning-promote_status")).to_contain_text(f"Promoted {version}")
        # ... and served by replica 1, whose session was open all along.
        expect(second.locator("#model-info")).to_contain_text(version, timeout=30_000)

        # A standard run started in replica 0 is cancelled from replica 1, for real ...
        controller.InputSelect(first, "learning-budget").set("standard")
        first.locator("#learning-start").click()
        second_job = second.locator("#learning-job")
        expect(second_job).to_contain_text("member", timeout=TRAINING_TIMEOUT_MS)
        running = store.jobs("nsclc", limit=1)[0]
        assert running.status == "running" and running.id != job.id
        expect(second.locator("#learning-cancel")).to_be_enabled()
        second.locator("#learning-cancel").click()
        expect(second_job).to_have_attribute("data-status", "cancelled", timeout=60_000)
        assert store.job(running.id).status == "cancelled"
        # ... and a new run is accepted at once.
        controller.InputSelect(second, "learning-budget").set("tiny")
        second.locator("#learning-start").click()
        _job_done_on(second)
        newest = store.jobs("nsclc", limit=1)[0]
        assert newest.id > running.id and len(_claims(store, newest.id)) == 1
        shipped = shared.MODEL_CHOICES["nsclc"]["glogd"].model.version
        store.promote("nsclc", shipped, username="e2e-physicist", action="rollback",
                      reason="replicas: clean up")
    finally:
        store.dispose()
        for page in (first, second):
            page.context.close()


def _status_on(replica: AppServer, cookie: str) -> int:
    """Status of ``GET /`` on one replica directly with a session cookie (303: to the login)."""
    request = urllib.request.Request(replica.url + "/",
                                     headers={"Cookie": f"artds_session={cookie}"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_a_logout_in_one_replica_ends_the_session_in_both(browser: Browser,
                                                          cluster: Cluster) -> None:
    here = _pinned(browser, cluster, 0)
    _open(here, cluster, "clinician")
    cookie = next(c for c in here.context.cookies() if c["name"] == "artds_session")
    # The same login in a tab the proxy pins to the other replica.
    there_context: BrowserContext = browser.new_context()
    there_context.add_cookies([
        {"name": StickyProxy.COOKIE, "value": "1", "url": cluster.proxy.url},
        {"name": "artds_session", "value": cookie["value"], "url": cluster.proxy.url},
    ])
    there = there_context.new_page()
    try:
        _open(there, cluster, "clinician")
        assert [_status_on(r, cookie["value"]) for r in cluster.replicas] == [200, 200]
        here.get_by_role("button", name="Log out", exact=True).click()
        expect(here.locator("#login-form")).to_be_visible()
        assert [_status_on(r, cookie["value"]) for r in cluster.replicas] == [303, 303]
        there.wait_for_timeout(1_100)  # the gate re-checks a websocket at most once a second
        with contextlib.suppress(PlaywrightTimeoutError):  # its next action, unless already gone
            there.get_by_role("tab", name="Population").click(timeout=5_000)
        expect(there.locator("#login-form")).to_be_visible()
        expect(there).to_have_url(re.compile(r"/login$"))
    finally:
        here.context.close()
        there_context.close()

