"""The real app in a subprocess (``uvicorn app.app:app``) for the tests that drive it: started on a
free loopback port with the environment given, waited for on ``/healthz``, stopped gracefully
(SIGTERM, as a container's stop) or killed (SIGKILL, as a crash)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["STARTUP_LIMIT_S", "AppServer", "free_port", "start_app"]

ROOT = Path(__file__).resolve().parents[2]
STARTUP_LIMIT_S = 120.0
"""Give up waiting for the app after this long (a hang guard, not a performance check)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AppServer:
    """A running app process."""

    process: subprocess.Popen
    """The uvicorn process."""
    url: str
    """``http://127.0.0.1:<port>``."""
    log_path: Path
    """Its stdout and stderr."""

    def wait_ready(self) -> AppServer:
        """Wait until the app answers ``/healthz`` (it exiting first or a hang is an error)."""
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited early:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise RuntimeError(f"the app did not answer on {self.url}:\n"
                                   f"{self.log_path.read_text()}")
            time.sleep(0.25)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        """Send ``sig`` (SIGTERM: a graceful stop; SIGKILL: a crash) and wait; returns the exit
        code (SIGKILL after ``timeout_s`` when it does not exit)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def start_app(env: dict[str, str], log_path: Path, port: int | None = None, *,
              wait: bool = True) -> AppServer:
    """Start ``uvicorn app.app:app`` with ``env`` added to this process's environment and (with
    ``wait``) wait until it answers ``/healthz``."""
    port = port or free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **env}
    with log_path.open("a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.app:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )
    server = AppServer(proc, f"http://127.0.0.1:{port}", log_path)
    return server.wait_ready() if wait else server
