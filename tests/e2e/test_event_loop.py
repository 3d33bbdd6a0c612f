"""Slow work runs off the event loop every session shares (#14 point 2), checked without a
clock: the validation of an uploaded file is held until the test releases it, and meanwhile
the health check and another session must be answered. Were the validation on the event loop
(or inside Shiny's reactive lock), neither could answer before the release, which the test
gives only after both did. No browser: real websocket sessions (:mod:`tests.served`)."""

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

HANG_GUARD_S = 120.0
"""How long the test waits for an answer before it calls the app stuck (not a performance
limit: a stuck loop never answers while the validation is held)."""


def _data_panel(output: str) -> bool:
    return output.startswith(("data-", "model-"))


async def _open(url: str, cookie: str) -> ShinySession:
    status, page = await asyncio.to_thread(http_get, f"{url}/", cookie)
    assert status == 200
    session = ShinySession(url, cookie)
    await session.open(page_inputs(page.decode(), _data_panel))
    await session.wait_for(lambda s: "<textarea" in s.html("data-notes_ui"),
                           timeout=HANG_GUARD_S)
    return session


def _note_input(session: ShinySession) -> str:
    html = session.html("data-notes_ui")
    start = html.index('<textarea id="') + len('<textarea id="')
    return html[start:html.index('"', start)]


async def _wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        await asyncio.sleep(0.05)


def test_health_and_other_sessions_answer_while_an_upload_is_validated(
    app_database_url: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    example = (EXAMPLES_DIR / "nsclc_patients.csv").read_text(encoding="utf-8").splitlines()
    one_case = ("\n".join(example[:2]) + "\n").encode()

    async def scenario(url: str) -> None:
        username, password = USERS["clinician"]
        cookie = await asyncio.to_thread(log_in, url, username, password)
        uploader, writer = await _open(url, cookie), await _open(url, cookie)
        try:
            await uploader.upload("data-upload", "one.csv", one_case)
            await _wait_for_file(gate / "entered")  # the validation is running, and held

            status, body = await asyncio.to_thread(http_get, f"{url}/healthz", None,
                                                   timeout=HANG_GUARD_S)
            assert (status, body) == (200, b"ok")
            await uploader.wait_for(  # the tab says what it is doing meanwhile
                lambda s: "Checking and saving one.csv" in s.html("data-upload_status"),
                timeout=HANG_GUARD_S)

            await writer.set(**{_note_input(writer): "written while another file is checked"})
            await writer.click("data-save_notes")
            await writer.wait_for(lambda s: "1 note saved" in s.html("data-notes_saved"),
                                  timeout=HANG_GUARD_S)
            assert not (gate / "release").exists()  # all of it while the validation was held

            (gate / "release").write_text("go")
            await uploader.wait_for(lambda s: "added" in s.html("data-upload_status")
                                    or "replaced" in s.html("data-upload_status"),
                                    timeout=HANG_GUARD_S)
        finally:
            await uploader.close()
            await writer.close()

    with served_app(app_database_url, tmp_path, module="tests.e2e.slow_app:app",
                    env={"ARTDS_TEST_GATE": str(gate)}) as app:
        run_async(scenario(app.url))
