"""Temporary files of a served app go once used (#14 point 5): an uploaded file is deleted as
soon as it is read (Shiny would keep it until the session ends), and the folder of a planner
run is removed when the session that started it ends mid-run (the run is cancelled). The app's
temporary folder is a test folder (``$TMPDIR``), watched by the test. No browser: real
websocket sessions (:mod:`tests.served`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from engine.settings import EXAMPLES_DIR
from tests.e2e.helpers import USERS
from tests.served import ShinySession, http_get, log_in, page_inputs, served_app
from tests.unit.app import run_async

pytestmark = pytest.mark.e2e

HANG_GUARD_S = 240.0
"""How long to wait for the app before calling it stuck (not a performance limit)."""


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


async def _open(url: str, cookie: str) -> ShinySession:
    status, page = await asyncio.to_thread(http_get, f"{url}/", cookie)
    assert status == 200
    session = ShinySession(url, cookie)
    await session.open(page_inputs(page.decode(), lambda o: o.startswith(
        ("data-", "planner-"))))
    await session.wait_for(lambda s: "<textarea" in s.html("data-notes_ui"),
                           timeout=HANG_GUARD_S)
    return session


async def _gone(condition, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


def test_uploads_and_planner_folders_are_removed_after_use(
    app_database_url: str, tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    cases = (EXAMPLES_DIR / "nsclc_patients.csv").read_bytes()

    async def scenario(url: str) -> None:
        cookie = await asyncio.to_thread(log_in, url, *USERS["physicist"])
        session = await _open(url, cookie)
        try:
            await session.upload("data-upload", "cases.csv", cases)
            await session.wait_for(lambda s: "added" in s.html("data-upload_status")
                                   or "replaced" in s.html("data-upload_status"),
                                   timeout=HANG_GUARD_S)
            assert _files(temp) == []  # read and saved: the upload is gone, session open

            refused = b"patient_id\nonly-an-id\n"
            await session.upload("data-upload", "bad.csv", refused)
            await session.wait_for(lambda s: "was not loaded" in s.html("data-upload_status"),
                                   timeout=HANG_GUARD_S)
            assert _files(temp) == []  # refused files go too

            await session.set(**{"planner-episodes": 5000, "planner-scenarios": 20})
            await session.click("planner-run")
            await _gone(lambda: any(p.name.startswith("artds-plan-") for p in temp.iterdir()),
                        "the planner run never started")
        finally:
            await session.close()  # mid-run: the run is cancelled, its folder removed
        await _gone(lambda: not any(p.name.startswith("artds-plan-") for p in temp.iterdir()),
                    "the planner folder of an ended session was left behind")

    with served_app(app_database_url, tmp_path, env={"TMPDIR": str(temp)}) as app:
        run_async(scenario(app.url))
