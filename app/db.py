"""The process-wide database handle of the app (``engine.store``), opened and migrated once.

Sessions share one :class:`engine.store.Store` (its connection pool is thread-safe). The URL comes
from ``$ARTDS_DATABASE_URL`` (default: the SQLite file ``var/artds.sqlite3``); the schema is
migrated on first use, so a fresh database works at once and several app processes starting
together migrate it once (PostgreSQL advisory lock).
"""

from __future__ import annotations

import threading

from engine.store import Store

__all__ = ["get_store"]

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
