"""The app's process-wide database handle (``engine.platform.store``), opened and migrated once.

Sessions share one :class:`engine.platform.store.Store` (its connection pool is thread-safe). The
URL comes from ``$ARTDS_DATABASE_URL`` (default: the SQLite file ``var/artds.sqlite3``); the schema
is migrated on first use, so a fresh database works at once and several app processes starting
together migrate it once (PostgreSQL advisory lock).

:func:`poll_in_thread` watches a cheap database marker (newest promotion, newest audit row) for a
session: it reads it in a database thread (:func:`app.runtime.in_database_thread`), never on the
event loop that every session shares, and invalidates what depends on it only when it changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from shiny import reactive

from app.runtime import in_database_thread
from engine.platform.store import Store

__all__ = ["get_store", "poll_in_thread"]

T = TypeVar("T")

_LOCK = threading.Lock()
_STORE: Store | None = None


def get_store() -> Store:
    """The app's store, created and migrated on first call."""
    global _STORE
    with _LOCK:
        if _STORE is None:
            store = Store()
            store.upgrade()
            _STORE = store
        return _STORE


def poll_in_thread(read: Callable[[], T], every_s: float) -> Callable[[], T]:
    """A reactive view of ``read()`` (a cheap query), re-read every ``every_s`` seconds in a
    worker thread; reading the view makes a caller re-run only when the value changed.

    Call it in a server function. The first value is read at once (so the session starts with
    it and nothing re-runs for it)."""
    value: reactive.Value[T] = reactive.value(read())

    @reactive.effect
    async def _poll() -> None:
        reactive.invalidate_later(every_s)
        new = await in_database_thread(read)
        with reactive.isolate():
            if value() != new:
                value.set(new)

    return value
