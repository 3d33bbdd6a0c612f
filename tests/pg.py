"""A throw-away PostgreSQL server for tests (Debian's ``postgresql`` package, no network).

:func:`start_postgres` runs ``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` into a
temporary folder, listening on 127.0.0.1 on a free port with trust authentication, and returns
its URL and a stop function. PostgreSQL refuses to run as root, so as root (CI) the server runs
as the ``postgres`` user (``runuser``), which the Debian package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.served import free_port

__all__ = ["postgres_bin_dir", "start_postgres"]


def postgres_bin_dir() -> Path | None:
    """Folder of the newest installed PostgreSQL server binaries, None when not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def start_postgres() -> tuple[str, Callable[[], None]]:
    """Start a private server; returns (SQLAlchemy URL of database ``artds``, stop())."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="artds-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        runuser = shutil.which("runuser")
        if runuser is None:
            raise RuntimeError("running as root needs runuser to start PostgreSQL as postgres")
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
        prefix = [runuser, "-u", "postgres", "--"]
    port = free_port()
    log = root / "server.log"

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, cwd=root)

    run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
        "-E", "UTF8", "--no-sync", "--locale=C")
    options = (f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off")
    if as_root:
        subprocess.run(["touch", str(log)], check=True)
        shutil.chown(log, "postgres", "postgres")
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w",
        "-t", "60", "start")
    run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "artds")

    def stop() -> None:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "stop"], capture_output=True, cwd=root)
        shutil.rmtree(root, ignore_errors=True)

    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/artds", stop
