"""The served artds app on a loopback port, and a minimal Shiny client for it: the one home for
starting the real app in tests and benchmarks.

:func:`start_app` starts ``uvicorn app.app:app`` in a subprocess with the environment given and
waits for ``/healthz`` (:class:`AppServer` stops it gracefully with SIGTERM, as a container's stop,
or kills it with SIGKILL, as a crash); :func:`served_app` does so with its own database for the
length of a ``with`` block; :func:`log_in` logs in through the login form and returns the session
cookie; :class:`ShinySession` opens the app's websocket as a browser would (same ``Origin``, the
cookie), sends the page's initial inputs (read from the page's HTML, with the outputs of the
visible panel marked visible), sets inputs, uploads a file through Shiny's upload protocol and
waits for outputs. It speaks just enough of Shiny's protocol for that: ``init``, ``update``,
``uploadInit``/``uploadEnd``, and the server's ``values``, ``inputMessages``, ``errors``, ``busy``
and ``response`` messages; a benchmark watches the rest (custom messages, arrival times) through
:attr:`ShinySession.on_message`.
"""

from __future__ import annotations

import asyncio
import contextlib
import html as html_lib
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

__all__ = ["STARTUP_LIMIT_S", "AppServer", "ShinySession", "free_port", "http_get", "log_in",
           "page_inputs", "served_app", "start_app"]

ROOT = Path(__file__).resolve().parents[1]
STARTUP_LIMIT_S = 180.0
"""Give up waiting for the app to answer after this long (a hang guard)."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AppServer:
    """A running app process."""

    process: subprocess.Popen
    """The uvicorn process."""
    url: str
    """Its base URL (``http://127.0.0.1:PORT``)."""
    log_path: Path
    """Its standard output and error."""

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
        """Send ``sig`` (SIGTERM: a graceful stop, as a container's stop; SIGKILL: a crash) and
        wait; returns the exit code (SIGKILL after ``timeout_s`` when it does not exit)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def start_app(env: dict[str, str], log_path: Path, port: int | None = None, *,
              wait: bool = True, module: str = "app.app:app", access_log: bool = False,
              root: Path = ROOT) -> AppServer:
    """Start ``uvicorn <module>`` on a loopback port (``port`` or a free one) with ``env`` added
    to this process's environment, its output appended to ``log_path``, and (with ``wait``) wait
    until it answers ``/healthz``. ``root`` is the checkout served (default this one)."""
    port = port or free_port()
    environment = {**os.environ, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1", **env}
    command = [sys.executable, "-m", "uvicorn", module, "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "info" if access_log else "warning"]
    if not access_log:
        command.append("--no-access-log")
    with log_path.open("a") as log:
        proc = subprocess.Popen(command, cwd=root, env=environment, stdout=log,
                                stderr=subprocess.STDOUT)
    server = AppServer(proc, f"http://127.0.0.1:{port}", log_path)
    return server.wait_ready() if wait else server


@contextlib.contextmanager
def served_app(database_url: str, folder: Path, *, module: str = "app.app:app",
               env: dict[str, str] | None = None, access_log: bool = False,
               root: Path = ROOT) -> Iterator[AppServer]:
    """:func:`start_app` with database ``database_url`` and the Learning Mode folder and log in
    ``folder``, stopped (SIGTERM) when the block ends; ``env`` adds variables."""
    server = start_app({"ARTDS_DATABASE_URL": database_url,
                        "ARTDS_LEARNING_DIR": str(folder / "learning"), **(env or {})},
                       folder / "app.log", module=module, access_log=access_log, root=root)
    try:
        yield server
    finally:
        server.stop(timeout_s=15)


def log_in(url: str, username: str, password: str) -> str:
    """Log in through the login form; returns the ``Cookie`` header value of the session."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{url}/login", timeout=30) as response:
        page = response.read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None, "no CSRF token on the login page"
    body = urllib.parse.urlencode({"csrf": html_lib.unescape(csrf.group(1)),
                                   "username": username, "password": password}).encode()
    with opener.open(f"{url}/login", data=body, timeout=30):
        pass
    cookies = {c.name: c.value for c in jar}
    if "artds_session" not in cookies:
        raise RuntimeError(f"logging in as {username} failed")
    return f"artds_session={cookies['artds_session']}"


def http_get(url: str, cookie: str | None = None, *, timeout: float = 60.0) -> tuple[int, bytes]:
    """GET ``url`` (with the cookie); (status, body), redirects not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


_SELECT = re.compile(r"<select\b([^>]*)>(.*?)</select>", re.S)
_TAG = re.compile(r"<(input|textarea|button)\b([^>]*)>")
_OUTPUT = re.compile(r'<[a-z]+\b[^>]*class="[^"]*(?:shiny-[a-z-]*output|shiny-data-frame)'
                     r'[^"]*"[^>]*>')


def _attrs(text: str) -> dict[str, str]:
    return {k: html_lib.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', text)}


def page_inputs(page: str, visible: Callable[[str], bool]) -> dict[str, Any]:
    """The initial input values a browser sends for ``page`` (the app's HTML), and every
    output's ``.clientdata_output_<id>_hidden`` (False when ``visible(id)``)."""
    data: dict[str, Any] = {}
    for attr_text, body in _SELECT.findall(page):
        attrs = _attrs(attr_text)
        if not attrs.get("id"):
            continue
        options = re.findall(r"<option\b([^>]*)>", body)
        chosen = [_attrs(o).get("value", "") for o in options if "selected" in o]
        if "multiple" in attrs:
            data[attrs["id"]] = chosen or None
        else:
            first = [_attrs(o).get("value", "") for o in options[:1]]
            data[attrs["id"]] = (chosen or first or [None])[0]
    for kind, attr_text in _TAG.findall(page):
        attrs = _attrs(attr_text)
        if kind == "input" and attrs.get("type") == "radio":  # a group: its checked value
            if "checked" in attrs and attrs.get("name"):
                data[attrs["name"]] = attrs.get("value")
            continue
        name = attrs.get("id")
        if not name:
            continue
        classes = attrs.get("class", "")
        if kind == "button" and ("action-button" in classes or "task-button" in classes):
            data[f"{name}:shiny.action"] = 0
        elif kind == "input" and "js-range-slider" in classes:  # a range has two ends
            start = float(attrs.get("data-from", "0"))
            data[name] = [start, float(attrs["data-to"])] if "data-to" in attrs else start
        elif kind == "input" and attrs.get("type") == "checkbox":
            data[name] = "checked" in attrs
        elif kind == "input" and attrs.get("type") == "number":
            data[name] = float(attrs["value"]) if attrs.get("value") else None
        elif kind == "input" and attrs.get("type") == "text":
            data[name] = attrs.get("value", "")
        elif kind == "textarea":
            data[name] = ""
    for tag in _OUTPUT.findall(page):
        name = _attrs(tag).get("id")
        if name:
            data[f".clientdata_output_{name}_hidden"] = not visible(name)
    return data


@dataclass
class ShinySession:
    """One Shiny session over the app's websocket, as a browser tab opens it."""

    url: str
    """The app's base URL."""
    cookie: str
    """The session cookie (``artds_session=...``)."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """Output id → its newest value (``{"html": ...}`` for UI outputs)."""
    errors: dict[str, Any] = field(default_factory=dict)
    """Output id → its newest error."""
    input_messages: list[dict] = field(default_factory=list)
    """Every ``inputMessages`` entry received (e.g. a selectize's new choices)."""
    session_id: str | None = None
    """Shiny's session id (from the server's ``config`` message)."""
    busy: bool = False
    """The server said "busy" and not yet "idle"."""
    on_message: Callable[[dict[str, Any], int, float], None] | None = None
    """Called with each message from the server (parsed), its length in characters and its
    arrival (``time.perf_counter()``, taken before parsing), before the session's own
    bookkeeping: what a benchmark times."""
    _ws: Any = None
    _reader: asyncio.Task | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _responses: dict[int, Any] = field(default_factory=dict)
    _tag: int = 0
    _inputs: dict[str, Any] = field(default_factory=dict)
    _clicks: dict[str, int] = field(default_factory=dict)

    async def open(self, inputs: dict[str, Any], *, open_timeout: float = 60.0) -> None:
        """Connect (within ``open_timeout`` seconds) and send ``init`` with ``inputs`` (see
        :func:`page_inputs`)."""
        ws_url = self.url.replace("http://", "ws://") + "/websocket/"
        self._ws = await websockets.connect(
            ws_url, origin=self.url, additional_headers={"Cookie": self.cookie},
            max_size=None, open_timeout=open_timeout)
        self._inputs = dict(inputs)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self._ws.send(json.dumps({"method": "init", "data": inputs}))

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def _read(self) -> None:
        async for raw in self._ws:
            arrived = time.perf_counter()
            message = json.loads(raw)
            if self.on_message is not None:
                self.on_message(message, len(raw), arrived)
            if "config" in message:
                self.session_id = message["config"].get("sessionId")
            self.outputs.update(message.get("values") or {})
            self.errors.update(message.get("errors") or {})
            for name in message.get("values") or {}:
                self.errors.pop(name, None)
            updates = message.get("inputMessages") or []
            self.input_messages.extend(updates)
            echoed = {m["id"]: m["message"]["value"] for m in updates
                      if isinstance(m.get("message"), dict) and "value" in m["message"]}
            if echoed:  # the browser's input takes the value and reports it back
                await self.set(**echoed)
            if "busy" in message:
                self.busy = message["busy"] == "busy"
            response = message.get("response")
            if response is not None:
                self._responses[response["tag"]] = response.get("value")
            self._changed.set()

    async def wait_for(self, condition: Callable[[ShinySession], bool], *,
                       timeout: float = 300.0) -> None:
        """Wait until ``condition(self)`` holds (checked after each message from the server)."""
        async with asyncio.timeout(timeout):
            while not condition(self):
                self._changed.clear()
                await self._changed.wait()

    def value(self, input_id: str) -> Any:
        """The value last sent for an input (None before any)."""
        return self._inputs.get(input_id)

    def html(self, output: str) -> str:
        """The HTML of a UI output ("" until it has one)."""
        value = self.outputs.get(output)
        return value.get("html", "") if isinstance(value, dict) else ""

    async def set(self, **values: Any) -> None:
        """Set inputs by id (``set(**{"data-note_ab12": "text"})``)."""
        self._inputs.update(values)
        await self._ws.send(json.dumps({"method": "update", "data": values}))

    async def click(self, button: str) -> None:
        """Press an action button."""
        self._clicks[button] = self._clicks.get(button, 0) + 1
        await self.set(**{f"{button}:shiny.action": self._clicks[button]})

    async def _request(self, method: str, args: list) -> Any:
        self._tag += 1
        tag = self._tag
        await self._ws.send(json.dumps({"method": method, "args": args, "tag": tag}))
        await self.wait_for(lambda s: tag in s._responses, timeout=120.0)
        return self._responses.pop(tag)

    async def upload(self, input_id: str, name: str, content: bytes) -> None:
        """Upload one file to a file input, as Shiny's JavaScript does (the POST runs in a
        thread, so this coroutine's loop keeps reading the websocket)."""
        job = await self._request("uploadInit", [[{"name": name, "size": len(content),
                                                   "type": "text/csv"}]])
        target = f"{self.url}/{job['uploadUrl']}"
        request = urllib.request.Request(target, data=content, method="POST", headers={
            "Cookie": self.cookie, "Content-Type": "application/octet-stream"})

        def post() -> int:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.status

        status = await asyncio.to_thread(post)
        if status != 200:
            raise RuntimeError(f"upload refused: HTTP {status}")
        await self._request("uploadEnd", [job["jobId"], input_id])
