"""The app with one slow step injected, for tests/e2e/test_event_loop.py (never served otherwise).

Serve it as ``uvicorn tests.e2e.slow_app:app`` with ``$ARTDS_TEST_GATE`` naming a folder: the
validation of an uploaded case file (``read_cases`` as the Data input panel calls it) then
writes ``entered`` in that folder and waits until the test writes ``release`` there, so the test
can check what the app does while a validation is running, for as long as it likes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from app.app import app
from app.panels.data_input import upload

__all__ = ["app"]

_GATE = Path(os.environ["ARTDS_TEST_GATE"])
_LIMIT_S = 300.0
"""Give up waiting for the release after this long (a hang guard)."""
_read_cases = upload.read_cases


def _held_read_cases(*args: Any, **kwargs: Any) -> Any:
    (_GATE / "entered").write_text("validating")
    deadline = time.monotonic() + _LIMIT_S
    while not (_GATE / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return _read_cases(*args, **kwargs)


upload.read_cases = _held_read_cases
