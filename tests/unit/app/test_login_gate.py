"""app.auth.LoginGate as plain ASGI (no browser): cookies, idle timeout, the guarded websocket.

The gate wraps a stand-in app that records what reaches it, so these tests see exactly what the
gate lets through. The browser's side (sent to the login page) is in tests/e2e/test_clinic.py.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from app import auth as gate_module
from app.auth import COOKIE_NAME, LoginGate
from engine import settings
from engine.platform import accounts as auth
from engine.platform.store import Store
from engine.platform.store.tables import AuthSession
from tests.unit.app import run_async

PASSWORD = "correct horse battery"
IDLE_S = 600


class Inner:
    """Stand-in app: answers HTTP with 200, and on a websocket records every message."""

    def __init__(self) -> None:
        self.http_paths: list[str] = []
        self.ws_messages: list[str] = []

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "http":
            self.http_paths.append(scope["path"])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"app"})
            return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            self.ws_messages.append(message["text"])


@pytest.fixture
def gate(sqlite_store: Store, monkeypatch) -> tuple[LoginGate, Inner, str]:
    """The gate around :class:`Inner` (idle timeout 10 minutes) and a live session's cookie."""
    monkeypatch.setenv(settings.SESSION_IDLE_ENV, str(IDLE_S))
    monkeypatch.setattr(gate_module, "_WS_CHECK_EVERY_S", 0.0)  # check every message
    auth.create_user(sqlite_store, "ann", PASSWORD, "clinician", created_by="cli")
    inner = Inner()
    g = LoginGate(inner, sqlite_store)
    token = auth.start_session(sqlite_store, "ann", g.max_age_s)
    return g, inner, g.signer.sign(token)


def _scope(kind: str, path: str, cookie: str | None) -> dict:
    headers = [(b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", f"{COOKIE_NAME}={cookie}".encode()))
    return {"type": kind, "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": headers, "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
            "scheme": "http" if kind == "http" else "ws", "root_path": "", "method": "GET",
            "http_version": "1.1"}


def _get(g: LoginGate, path: str, cookie: str | None) -> tuple[int, dict[bytes, bytes]]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    run_async(g(_scope("http", path, cookie), receive, send))
    return sent[0]["status"], dict(sent[0].get("headers", []))


def _idle_for(store: Store, seconds: float) -> None:
    with store.session() as s:
        s.execute(update(AuthSession).values(
            last_seen_at=datetime.now(UTC) - timedelta(seconds=seconds)))


def _last_used(store: Store) -> datetime:
    with store.session() as s:
        return s.query(AuthSession.last_seen_at).scalar()


def test_requests_need_a_live_session_and_count_as_use(gate, sqlite_store: Store) -> None:
    g, inner, cookie = gate
    assert _get(g, "/", None)[0] == 303 and _get(g, "/www/app.css", None)[0] == 401
    assert _get(g, "/", cookie)[0] == 200 and inner.http_paths == ["/"]
    _idle_for(sqlite_store, IDLE_S - 60)  # in use 9 minutes ago: still live, and now used again
    assert _get(g, "/www/app.css", cookie)[0] == 200
    assert datetime.now(UTC) - _last_used(sqlite_store) < timedelta(seconds=60)
    _idle_for(sqlite_store, IDLE_S + 1)  # unused for longer than the idle timeout
    status, headers = _get(g, "/", cookie)
    assert status == 303 and headers[b"location"] == b"login"
    assert _get(g, "/www/app.css", cookie)[0] == 401
    assert inner.http_paths == ["/", "/www/app.css"]


def test_login_page_names_both_limits(gate) -> None:
    g, _, _ = gate
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    run_async(g(_scope("http", "/login", None), receive, send))
    page = b"".join(m.get("body", b"") for m in sent).decode()
    assert "after 10 minutes without use" in page and "after 8 hours at the latest" in page


def _websocket(g: LoginGate, cookie: str, script) -> list[dict]:
    """Open a websocket through the gate; ``script(push)`` sends browser messages (``push(text)``
    or ``push(None)`` to disconnect). Returns what the gate and app sent to the browser."""
    to_app: asyncio.Queue = asyncio.Queue()
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def main() -> None:
        await to_app.put({"type": "websocket.connect"})
        task = asyncio.create_task(g(_scope("websocket", "/websocket/", cookie), to_app.get,
                                     send))

        async def push(text: str | None) -> None:
            await to_app.put({"type": "websocket.disconnect", "code": 1000} if text is None
                             else {"type": "websocket.receive", "text": text})
            for _ in range(50):  # let the gate (a thread for the database) and app run
                await asyncio.sleep(0.01)

        await script(push)
        await asyncio.wait_for(task, 10)

    run_async(main())
    return sent


def test_websocket_messages_count_as_use_and_stop_when_idle(gate, sqlite_store: Store) -> None:
    g, inner, cookie = gate

    async def script(push) -> None:
        await push("first")
        _idle_for(sqlite_store, IDLE_S - 60)
        await push("second")  # a use: restarts the idle clock
        assert datetime.now(UTC) - _last_used(sqlite_store) < timedelta(seconds=60)
        _idle_for(sqlite_store, IDLE_S + 1)
        await push("third")  # the session ended: dropped, the browser is told
        await push("fourth")
        await push(None)

    sent = _websocket(g, cookie, script)
    assert inner.ws_messages == ["first", "second"]
    told = [json.loads(m["text"]) for m in sent if m["type"] == "websocket.send"]
    assert told == [{"custom": {gate_module.SESSION_ENDED_MESSAGE: {}}}]  # once


def test_websocket_stops_after_logout_elsewhere(gate, sqlite_store: Store) -> None:
    g, inner, cookie = gate
    token = g.signer.unsign(cookie, g.max_age_s)

    async def script(push) -> None:
        await push("before")
        auth.end_session(sqlite_store, token, username="ann")  # e.g. "Log out" in another tab
        await push("after")
        await push(None)

    _websocket(g, cookie, script)
    assert inner.ws_messages == ["before"]


def test_websocket_without_a_live_session_is_refused(gate, sqlite_store: Store) -> None:
    g, inner, cookie = gate
    _idle_for(sqlite_store, IDLE_S + 1)

    async def script(push) -> None:
        return None

    sent = _websocket(g, cookie, script)
    assert sent == [{"type": "websocket.close", "code": 1008}] and inner.ws_messages == []


def test_every_http_response_carries_the_security_headers(gate) -> None:
    """Login page, redirect, refusal, health check and the app itself: no framing by other
    sites, no content sniffing, no referrer to other origins."""
    g, _inner, cookie = gate
    for path, who in (("/login", None), ("/", None), ("/www/app.css", None), ("/healthz", None),
                      ("/", cookie)):
        _status, headers = _get(g, path, who)
        assert headers[b"x-frame-options"] == b"DENY", path
        assert headers[b"x-content-type-options"] == b"nosniff", path
        assert headers[b"referrer-policy"] == b"same-origin", path


def _ws_with_origin(g: LoginGate, cookie: str, origin: str | None) -> list[dict]:
    sent: list[dict] = []
    scope = _scope("websocket", "/websocket/", cookie)
    if origin is not None:
        scope["headers"] = [*scope["headers"], (b"origin", origin.encode())]
    messages = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    run_async(g(scope, receive, send))
    return sent


@pytest.mark.parametrize("origin", ["http://testserver:9999", "http://evil.example",
                                    "null", "https://testserver.evil.example"])
def test_a_websocket_from_another_origin_is_refused_even_with_the_cookie(gate, origin) -> None:
    g, inner, cookie = gate
    sent = _ws_with_origin(g, cookie, origin)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert inner.ws_messages == []


@pytest.mark.parametrize("origin", ["http://testserver", "http://TESTSERVER", None])
def test_a_websocket_from_the_app_itself_is_accepted(gate, origin) -> None:
    g, _inner, cookie = gate
    sent = _ws_with_origin(g, cookie, origin)
    assert sent[0] == {"type": "websocket.accept"}


def _post(g: LoginGate, cookie: str | None, chunks: list[bytes],
          declared: int | None) -> tuple[int, int]:
    """POST ``chunks`` as the body; returns (status, how many chunks the gate read)."""
    scope = _scope("http", "/upload", cookie) | {"method": "POST"}
    if declared is not None:
        scope["headers"] = [*scope["headers"], (b"content-length", str(declared).encode())]
    queue = list(chunks)
    read = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal read
        read += 1
        body = queue.pop(0) if queue else b""
        return {"type": "http.request", "body": body, "more_body": bool(queue)}

    async def send(message: dict) -> None:
        sent.append(message)

    run_async(g(scope, receive, send))
    return sent[0]["status"], read


class Reader(Inner):
    """Stand-in app that reads the whole request body before answering (as an upload does)."""

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "http":
            while (await receive()).get("more_body"):
                pass
        await super().__call__(scope, receive, send)


def test_request_bodies_are_bounded_before_anything_is_stored(sqlite_store: Store) -> None:
    auth.create_user(sqlite_store, "ann", PASSWORD, "clinician", created_by="cli")
    g = LoginGate(Reader(), sqlite_store)
    cookie = g.signer.sign(auth.start_session(sqlite_store, "ann", g.max_age_s))
    mib = b"x" * (1024 * 1024)
    # a declared size above the limit is refused before one byte is read
    assert _post(g, cookie, [mib], gate_module.MAX_BODY_BYTES + 1) == (413, 0)
    # a streamed body without a declared size is cut off once it passes the limit
    n_chunks = gate_module.MAX_BODY_BYTES // len(mib) + 3
    status, read = _post(g, cookie, [mib] * n_chunks, None)
    assert status == 413 and read < n_chunks
    # a body within the limit reaches the app
    assert _post(g, cookie, [mib, mib], 2 * len(mib)) == (200, 2)


# ------------------------------------------------------------------ sessions follow the account


class _ShinySession:
    """Stand-in Shiny session: its id, the websocket's scope (with the user it was built for)
    and its on-ended callbacks."""

    def __init__(self, sid: str, user) -> None:
        from starlette.requests import HTTPConnection

        self.id = sid
        self.http_conn = HTTPConnection({"type": "websocket", "headers": [],
                                         gate_module._USER_KEY: user})
        self.ended: list = []

    def on_ended(self, callback) -> None:
        self.ended.append(callback)


def _login(g: LoginGate, store: Store, username: str) -> str:
    """A new login's cookie (another browser or device)."""
    return g.signer.sign(auth.start_session(store, username, g.max_age_s))


def test_a_demoted_physicists_open_session_can_no_longer_download(gate, sqlite_store) -> None:
    g, inner, ann = gate
    auth.create_user(sqlite_store, "phil", PASSWORD, "physicist", created_by="cli")
    phil = _login(g, sqlite_store, "phil")
    shiny = _ShinySession("f" * 64, sqlite_store.user("phil"))
    gate_module.bind_session(shiny)
    download = f"/session/{'f' * 64}/download/audit-csv"
    upload = f"/session/{'f' * 64}/upload/job-1"
    try:
        assert _get(g, download, phil)[0] == 200
        assert _get(g, download, ann)[0] == 403  # another user's request for phil's session
        sqlite_store.set_role("phil", "clinician", by="root")
        assert _get(g, download, phil)[0] == 403
        assert _get(g, upload, phil)[0] == 403
        assert inner.http_paths == [download]  # the refused requests never reached the app
        assert _get(g, "/", phil)[0] == 200  # the login holds: a new page for the new role
    finally:
        for forget in shiny.ended:  # the Shiny session ends: its record goes
            forget()
    assert gate_module._bound_to(download) is None


def test_an_open_websocket_ends_when_the_role_changes(gate, sqlite_store: Store) -> None:
    g, inner, cookie = gate

    async def script(push) -> None:
        await push("as a clinician")
        sqlite_store.set_role("ann", "physicist", by="root")
        await push("after the change")  # dropped: the page was built for a clinician
        await push(None)

    sent = _websocket(g, cookie, script)
    assert inner.ws_messages == ["as a clinician"]
    told = [json.loads(m["text"]) for m in sent if m["type"] == "websocket.send"]
    assert told == [{"custom": {gate_module.SESSION_ENDED_MESSAGE: {}}}]
    assert _get(g, "/", cookie)[0] == 200  # the login page sends it back to a rebuilt app


def test_disabling_a_user_ends_their_open_websocket(gate, sqlite_store: Store) -> None:
    g, inner, cookie = gate

    async def script(push) -> None:
        await push("before")
        sqlite_store.set_active("ann", False, by="root")
        await push("after")
        await push(None)

    _websocket(g, cookie, script)
    assert inner.ws_messages == ["before"]
    assert _get(g, "/", cookie)[0] == 303


def test_a_new_password_ends_the_users_other_logins(gate, sqlite_store: Store) -> None:
    g, _inner, mine = gate
    other = _login(g, sqlite_store, "ann")  # the same user in another browser
    token = g.signer.unsign(mine, g.max_age_s)
    auth.change_password(sqlite_store, "ann", "a brand new password", by="ann", keep_token=token)
    assert _get(g, "/www/app.css", mine)[0] == 200  # the login that changed it
    assert _get(g, "/www/app.css", other)[0] == 401
    assert auth.authenticate(sqlite_store, "ann", PASSWORD, remote="x").user is None
    # Set by an administrator: every login of the user ends.
    auth.change_password(sqlite_store, "ann", "yet another password", by="root")
    assert _get(g, "/www/app.css", mine)[0] == 401
    assert auth.authenticate(sqlite_store, "ann", "yet another password", remote="x").user


def _logout(g: LoginGate, cookie: str, scope: str) -> int:
    token = g.signer.unsign(cookie, g.max_age_s)
    body = f"csrf={gate_module._csrf_for(token)}&scope={scope}".encode()
    request = _scope("http", "/logout", cookie) | {"method": "POST"}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    run_async(g(request, receive, send))
    return sent[0]["status"]


def test_log_out_ends_this_login_and_log_out_everywhere_every_login(gate, sqlite_store) -> None:
    g, inner, first = gate
    second, third = _login(g, sqlite_store, "ann"), _login(g, sqlite_store, "ann")
    assert _logout(g, third, "this") == 303  # "Log out": this login only
    assert _get(g, "/www/app.css", third)[0] == 401
    assert _get(g, "/www/app.css", second)[0] == 200

    async def script(push) -> None:
        await push("before")
        assert _logout(g, second, "everywhere") == 303  # from another browser
        await push("after")  # this browser's open app ends at its next action
        await push(None)

    _websocket(g, first, script)
    assert inner.ws_messages == ["before"]
    assert _get(g, "/www/app.css", first)[0] == 401 and _get(g, "/www/app.css", second)[0] == 401
    assert sqlite_store.events(limit=1)[0]["action"] == "logout_everywhere"
    html_form = gate_module.logout_form(None)
    assert 'value="everywhere"' in html_form and ">Log out everywhere</button>" in html_form
