"""The database under the store: engine and connection pool, transactions, retries, migrations.

:class:`Database` opens one SQLAlchemy engine per process (SQLite with WAL, foreign keys and a
busy timeout; PostgreSQL through psycopg 3 with a pre-pinged pool), hands out transactions
(:meth:`Database.session`), retries the writes that race with another process on a unique key,
and migrates the schema with Alembic (``engine/platform/alembic/``) under a PostgreSQL advisory
lock, so containers starting together migrate once. The query mixins of
:class:`engine.platform.store.Store` build on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from engine import settings

__all__ = ["Database", "alembic_config"]

_RETRIES = 5
"""Attempts of a write that races with another writer on a unique key."""
_ADVISORY_LOCK_KEY = 0x61727464  # "artd": PostgreSQL advisory lock held while migrating
_ALEMBIC_DIR = Path(__file__).parent.parent / "alembic"
"""The migrations shipped in ``engine/platform/alembic``."""

T = TypeVar("T")


class Database:
    """One engine and session factory per process, shared by every session (thread-safe).

    Args:
        url: SQLAlchemy URL (default :func:`engine.settings.database_url`). ``postgresql://``
            URLs use psycopg 3.
    """

    def __init__(self, url: str | None = None) -> None:
        raw = url or settings.database_url()
        parsed = make_url(raw)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.url = parsed
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            path = parsed.database
            if path and path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
        self.engine: Engine = create_engine(parsed, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url.render_as_string(hide_password=True)!r})"

    def dispose(self) -> None:
        """Close pooled connections (call before fork and at shutdown)."""
        self.engine.dispose()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        with self._sessions() as s, s.begin():
            yield s

    def _retried(self, work: Callable[[Session], T]) -> T:
        """``work(s)`` in a transaction, run again when it trips a unique key.

        Two writers creating the same row at once (e.g. the first save of a patient from two
        processes): the loser's transaction rolls back and reruns, now seeing the winner's row.
        After :data:`_RETRIES` attempts the IntegrityError propagates.
        """
        for attempt in range(_RETRIES):
            try:
                with self.session() as s:
                    return work(s)
            except IntegrityError:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _find_or_insert(self, find: Callable[[], T | None],
                        insert: Callable[[Session], T]) -> T:
        """What ``find()`` returns, else ``insert(s)`` in a transaction (first writer wins).

        When another process inserts the same unique key meanwhile, its row is returned.
        """
        existing = find()
        if existing is not None:
            return existing
        try:
            with self.session() as s:
                return insert(s)
        except IntegrityError:  # another process inserted it first: use theirs
            found = find()
            assert found is not None
            return found

    # ---------------------------------------------------------------- schema

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema to ``revision`` with Alembic (idempotent; safe to run at start-up).

        On PostgreSQL an advisory lock makes concurrent start-ups migrate one after the other.
        """
        from alembic import command

        cfg = alembic_config()
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
                conn.commit()
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_LOCK_KEY})
                    conn.commit()

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at (None before the first migration)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()


def alembic_config() -> Any:
    """Alembic configuration pointing at the migrations shipped in ``engine/platform/alembic``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_ALEMBIC_DIR))
    return cfg


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers work while a writer (e.g. a training worker) commits; foreign keys are
    # off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    with contextlib.suppress(Exception):  # in-memory databases have no WAL
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
