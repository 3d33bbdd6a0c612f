"""Alembic environment for the artds database (run through ``engine.platform.store.Store.upgrade``).

The connection comes from ``config.attributes["connection"]`` (the store passes its own, so the
URL, driver and SQLite pragmas are those of the running app); without one, ``$ARTDS_DATABASE_URL``
(or the default SQLite file) is used, so plain ``alembic`` commands work too. SQLite runs in
batch mode, which rebuilds tables for the ALTERs it does not support.
"""

from __future__ import annotations

from alembic import context

from engine.platform.store import Store
from engine.platform.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    store = Store()
    with store.engine.connect() as conn:
        _run(conn)
        conn.commit()
    store.dispose()


if context.is_offline_mode():
    raise SystemExit("artds migrations run online only (artds db upgrade)")
run_migrations_online()
