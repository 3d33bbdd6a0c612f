"""Database fixtures for the unit tests: a fresh SQLite file, and a real PostgreSQL server.

``store`` is parametrised over both backends. The PostgreSQL server (Debian's package, installed
by ``make test``) starts once per test process; each test gets its own database. Outside CI a
machine without PostgreSQL skips those cases; under CI (``$CI`` set) a missing server fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.platform.store import Store
from tests.pg import postgres_bin_dir, start_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a private PostgreSQL server's maintenance database (started once per process)."""
    if postgres_bin_dir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: `make test` installs it with apt-get")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    url, stop = start_postgres()
    try:
        yield url
    finally:
        stop()


def _postgres_database(server_url: str) -> str:
    """A new empty database on the server; returns its URL."""
    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return _sqlite_url(tmp_path)
    return _postgres_database(request.getfixturevalue("postgres_server"))


def _sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite database file in the test's folder."""
    return f"sqlite:///{tmp_path / 'artds.sqlite3'}"


def _migrated_store(url: str) -> Iterator[Store]:
    """A migrated, empty store at ``url``, disposed of after the test."""
    s = Store(url)
    s.upgrade()
    try:
        yield s
    finally:
        s.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated, empty store on SQLite and on PostgreSQL."""
    yield from _migrated_store(store_url)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty SQLite store (for tests that need no second backend)."""
    yield from _migrated_store(_sqlite_url(tmp_path))
