"""A small sticky reverse proxy on loopback for the multi-replica tests (standard library only).

Like a hospital's load balancer with sticky sessions: each browser is pinned to one app process
by a cookie (:data:`StickyProxy.COOKIE`, the backend's index). A connection whose first request
carries no such cookie goes to the next backend in turn and its first response sets the cookie.
The proxy reads only the head of a connection's first request (and of its first response, to
add the cookie); the rest — keep-alive requests, uploads, websockets — is piped through
untouched, so the ``Host`` header (the proxy's own address) reaches the app as the browser sent
it, as a proxy configured with ``proxy_set_header Host $host`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import threading
from dataclasses import dataclass, field

__all__ = ["StickyProxy"]

_HEAD_LIMIT = 64 * 1024


@dataclass
class StickyProxy:
    """Serve on ``127.0.0.1:<free port>`` and pin browsers to ``backends`` (``(host, port)``)."""

    backends: list[tuple[str, int]]
    """The app processes, by index."""
    seen: list[tuple[int, str]] = field(default_factory=list)
    """(backend index, first request line) of every connection, in order."""

    COOKIE = "artds_replica"
    """The cookie naming a browser's backend (its index)."""

    def __post_init__(self) -> None:
        self._turn = itertools.cycle(range(len(self.backends)))
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        """Start serving on a thread of its own; returns the proxy's URL."""
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0, limit=_HEAD_LIMIT))
            port = self._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="sticky-proxy", daemon=True)
        self._thread.start()
        ready.wait(30)
        return self.url

    def stop(self) -> None:
        """Close the listening socket and every open connection, then the loop."""

        async def close_all() -> None:
            if self._server is not None:
                self._server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        if self._thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._thread = None

    def _backend_for(self, head: bytes) -> tuple[int, bool]:
        """(backend index, whether it was just chosen and the cookie must be set)."""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"cookie":
                found = re.search(rf"(?:^|;)\s*{self.COOKIE}=(\d+)".encode(), value)
                if found and int(found.group(1)) < len(self.backends):
                    return int(found.group(1)), False
        return next(self._turn), True

    async def _handle(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        try:
            head = await client_r.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            client_w.close()
            return
        index, chosen = self._backend_for(head)
        self.seen.append((index, head.split(b"\r\n", 1)[0].decode("latin-1")))
        try:
            app_r, app_w = await asyncio.open_connection(*self.backends[index],
                                                         limit=_HEAD_LIMIT)
        except OSError:
            client_w.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            client_w.close()
            return
        app_w.write(head)
        set_cookie = (f"Set-Cookie: {self.COOKIE}={index}; Path=/; HttpOnly\r\n".encode()
                      if chosen else None)
        await asyncio.gather(self._pipe(client_r, app_w),
                             self._pipe(app_r, client_w, set_cookie))
        for writer in (client_w, app_w):
            writer.close()

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    set_cookie: bytes | None = None) -> None:
        """Copy ``src`` to ``dst`` until either side closes (then close both directions)."""
        try:
            if set_cookie is not None:  # the first response's head gets the cookie
                head = await src.readuntil(b"\r\n\r\n")
                status, _, rest = head.partition(b"\r\n")
                dst.write(status + b"\r\n" + set_cookie + rest)
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()
