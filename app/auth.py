"""The login gate in front of the Shiny app: nothing is served without a valid session.

:class:`LoginGate` is an ASGI wrapper around the Shiny app. It serves a plain login page
(``GET/POST /login``, self-contained: no script, no asset), ``POST /logout`` and ``GET /healthz``
(for the container health check; it says nothing but "ok"); every other request (the page, its
static assets, plotly.js, uploads, downloads, the websocket) needs the signed session cookie of a
live session, else:

* a page request (``GET /``) is redirected to ``/login``;
* any other HTTP request gets ``401``;
* a websocket handshake is refused (HTTP 403) before Shiny sees it.

Two checks come before the session check. A websocket whose ``Origin`` is not this server (the
browser's ``Origin`` against the request's ``Host``) is refused, so a page of another site or of
another port of the same host cannot open the app's websocket with the user's cookie
(cross-site websocket hijacking; browsers always send ``Origin`` on websockets, and a reverse
proxy must pass the ``Host`` through). And no HTTP request body may exceed
:data:`MAX_BODY_BYTES`: a declared ``Content-Length`` above it gets ``413`` before anything is
read, and a body streamed without one is cut off with ``413`` once it passes the limit, so an
upload cannot fill the disk before the app's own size check sees it.

The user of an accepted request is put in the ASGI scope (``scope["artds.user"]``), where
:func:`request_user` (UI functions) and :func:`session_user` (server functions) read it, so the
UI is built for the user's role and the server registers only what the role allows.

Sessions follow the account: every check reads the user afresh from the database. A Shiny
session (page, websocket, its downloads and uploads) is built for one role, so once the user's
role changed it is over: the next message from the browser is dropped and the browser sent to
the login page, which, the login still being valid, opens the app again built for the new role;
a download or upload request for that Shiny session (``/session/<id>/…``, the session bound with
:func:`bind_session`) is refused with 403. Disabling a user, a new password (but for the login
that set it) and "Log out everywhere" end the user's logins in every process at once.

Sessions live in the database (``engine.platform.store``): any app process behind a load balancer
accepts them, a logout in one ends them in all, and they expire after ``$ARTDS_SESSION_MAX_AGE_S``
(default 8 hours) or after ``$ARTDS_SESSION_IDLE_S`` (default 30 minutes) without use. Every
accepted request and every message the browser sends over the websocket (an action in the app)
counts as use. An open websocket is re-checked with each message from the browser (at most once a
second): after the session ended, no message reaches the app any more and the browser is sent to the
login page; :func:`watch_session` does the same for an unattended browser within a minute. The
cookie is HttpOnly, SameSite=Lax, and Secure when the request came over HTTPS or
``$ARTDS_COOKIE_SECURE=1``. Login and logout forms carry a CSRF token. The navbar's "Log out" ends
this login (every tab of this browser); "Log out everywhere" ends every login of the user.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from app.runtime import in_database_thread
from engine import settings
from engine.core.schema import MAX_FILE_BYTES
from engine.dvh.sources import ImportLimits
from engine.dvh.uploads import largest_file_bytes
from engine.platform import accounts
from engine.platform.store import Store, UserInfo
from engine.sf2.data import MAX_UPLOAD_BYTES as SF2_MAX_UPLOAD_BYTES

__all__ = [
    "COOKIE_NAME",
    "SESSION_ENDED_MESSAGE",
    "LoginGate",
    "bind_session",
    "duration_text",
    "logout_form",
    "request_user",
    "session_token",
    "session_user",
]

COOKIE_NAME = "artds_session"
"""Name of the session cookie."""
_CSRF_COOKIE = "artds_login_csrf"
_MAX_FORM_BYTES = 8192
_WS_CHECK_EVERY_S = 1.0
"""An open websocket's session is re-checked at most this often (on messages from the browser)."""
SESSION_ENDED_MESSAGE = "artds-session-ended"
"""Shiny custom message telling the browser to go to the login page (``www/session.js``)."""
_USER_KEY = "artds.user"
_TOKEN_KEY = "artds.token"
_CSRF_KEY = "artds.csrf"

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]],
                   Awaitable[None]]


def request_user(request: HTTPConnection | None) -> UserInfo | None:
    """The logged-in user of a request the gate let through (None outside the gate)."""
    return None if request is None else request.scope.get(_USER_KEY)


def session_token(conn: HTTPConnection) -> str | None:
    """The raw session token of an accepted request (for logout and re-checks)."""
    return conn.scope.get(_TOKEN_KEY)


def session_user(session: Any) -> UserInfo | None:
    """The logged-in user of a Shiny session (from its websocket's scope)."""
    conn = getattr(session, "http_conn", None)
    return None if conn is None else conn.scope.get(_USER_KEY)


def logout_form(request: HTTPConnection | None) -> str:
    """HTML of the navbar's logout form (POST with the CSRF token of this session): "Log out"
    ends this login, "Log out everywhere" every login of the user."""
    token = "" if request is None else request.scope.get(_CSRF_KEY, "")
    return (f'<form method="post" action="logout" class="artds-logout d-flex gap-1">'
            f'<input type="hidden" name="csrf" value="{html.escape(token)}">'
            '<button type="submit" name="scope" value="this" '
            'class="btn btn-sm btn-outline-secondary" '
            'title="End this login (every tab of this browser)">Log out</button>'
            '<button type="submit" name="scope" value="everywhere" '
            'class="btn btn-sm btn-outline-secondary" '
            'title="End every login of yours: other browsers and devices too">'
            'Log out everywhere</button>'
            '</form>')


@dataclass(frozen=True)
class _Bound:
    """What a Shiny session of this process was built for."""

    username: str
    """Its user."""
    role: str
    """The role its page and server were built for."""


_BOUND: dict[str, _Bound] = {}
_BOUND_LOCK = threading.Lock()
_SHINY_SESSION_PATH = re.compile(r"^/session/([^/]+)/")


def bind_session(session: Any) -> None:
    """Record the user and role a Shiny session was built for (call in the server function):
    a download or upload request for it is refused once the requester's role differs (the
    session ends at its next message), and the record goes when the session ends."""
    user = session_user(session)
    if user is None:
        return
    with _BOUND_LOCK:
        _BOUND[session.id] = _Bound(user.username, user.role)

    def forget() -> None:
        with _BOUND_LOCK:
            _BOUND.pop(session.id, None)

    session.on_ended(forget)


def _bound_to(path: str) -> _Bound | None:
    """The user a ``/session/<id>/…`` path's Shiny session was built for (None: other paths,
    or a session this process does not hold)."""
    found = _SHINY_SESSION_PATH.match(path)
    if found is None:
        return None
    with _BOUND_LOCK:
        return _BOUND.get(found.group(1))


def _csrf_for(token: str) -> str:
    return hashlib.sha256(f"logout:{token}".encode()).hexdigest()[:32]


def _remote(conn: HTTPConnection) -> str:
    client = conn.client
    return client.host if client else "unknown"


SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
"""Sent with every HTTP response (app, login page, assets, downloads): the app is never framed
by another site (clickjacking), files are not content-sniffed into scripts, and no URL (with
its session-bound download paths) is sent to other origins as a referrer."""


def _with_security_headers(send: Any) -> Any:
    """``send`` that adds :data:`SECURITY_HEADERS` to the response start (once, not doubled)."""

    async def secured(message: dict) -> None:
        if message.get("type") == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return secured


MAX_BODY_BYTES = max(MAX_FILE_BYTES, SF2_MAX_UPLOAD_BYTES,
                     largest_file_bytes(ImportLimits())) + 1024 * 1024
"""Largest HTTP request body accepted (bytes): the largest upload the app takes (case files
:data:`engine.core.schema.MAX_FILE_BYTES`, expression files
:data:`engine.sf2.data.MAX_UPLOAD_BYTES`, plan files :class:`engine.dvh.ImportLimits` — the
RTDOSE's 512 MiB, room for a 1-mm dose grid over a whole thorax; Shiny sends each file of a
multiple upload in its own request) plus 1 MiB for the multipart framing; anything larger is
refused with 413 before it is written anywhere."""


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def same_origin(scope: dict) -> bool:
    """True when the request carries no ``Origin`` or one whose host[:port] is the ``Host``."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    host = _header(scope, b"host")
    netloc = urlsplit(origin).netloc.lower()
    return host is not None and netloc == host.lower()


async def _too_large(scope: dict, receive: Any, send: Any) -> None:
    await PlainTextResponse(f"Request body larger than {MAX_BODY_BYTES:,} bytes.",
                            status_code=413)(scope, receive, send)


def _bounded_receive(receive: Any, limit: int) -> Any:
    """``receive`` that raises :class:`_BodyTooLarge` once the body passes ``limit`` bytes."""
    seen = 0

    async def bounded() -> dict:
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge
        return message

    return bounded


class _BodyTooLarge(Exception):
    """A streamed request body passed :data:`MAX_BODY_BYTES`."""


class LoginGate:
    """ASGI wrapper: login page, logout, and a session check on everything else.

    Args:
        app: the Shiny app (any ASGI app).
        store: the database holding users, sessions and login attempts.
    """

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store
        self.signer = accounts.SessionSigner(accounts.secret_key(store))
        self.max_age_s = settings.session_max_age_s()
        self.idle_s = settings.session_idle_s()
        self.secure_env = settings.cookie_secure()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._serve(scope, receive, send)
            return
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await self._serve(scope, receive, tracked)
        except _BodyTooLarge:
            if not started:
                await _too_large(scope, receive, _with_security_headers(send))

    async def _serve(self, scope: dict, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        conn = HTTPConnection(scope)
        path = scope.get("path", "")
        if kind == "websocket" and not same_origin(scope):
            await receive()  # the websocket.connect message
            await send({"type": "websocket.close", "code": 1008})
            return
        if kind == "http":
            send = _with_security_headers(send)
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                await _too_large(scope, receive, send)
                return
            receive = _bounded_receive(receive, MAX_BODY_BYTES)
            if path == "/login":
                response = await self._login(Request(scope, receive))
                await response(scope, receive, send)
                return
            if path == "/logout":
                response = await self._logout(Request(scope, receive))
                await response(scope, receive, send)
                return
            if path == "/healthz":
                await PlainTextResponse("ok")(scope, receive, send)
                return
        found = await run_in_threadpool(self._cookie_user, conn)
        if found is None:
            if kind == "websocket":
                await receive()  # the websocket.connect message
                await send({"type": "websocket.close", "code": 1008})
                return
            if scope.get("method") == "GET" and path in ("/", ""):
                response: Response = RedirectResponse("login", status_code=303)
            else:
                response = PlainTextResponse("Log in first.", status_code=401)
            await response(scope, receive, send)
            return
        user, token = found
        bound = _bound_to(path) if kind == "http" else None
        if bound is not None and (bound.username, bound.role) != (user.username, user.role):
            # A download or upload of a Shiny session built for another role (or user).
            await PlainTextResponse("This page is out of date: your account changed. Reload "
                                    "the page.", status_code=403)(scope, receive, send)
            return
        inner = {**scope, _USER_KEY: user, _TOKEN_KEY: token, _CSRF_KEY: _csrf_for(token)}
        if kind == "websocket":
            receive = self._guarded_receive(receive, send, token, user)
        await self.app(inner, receive, send)

    def _guarded_receive(self, receive: Any, send: Any, token: str, built_for: UserInfo) -> Any:
        """The websocket's ``receive`` for the app: each message from the browser is a use of
        the session (idle timeout) and re-checks it; once the session has ended (logout, expiry,
        idle, user disabled, password changed elsewhere) or the user's role is no longer the one
        the page was built for, nothing more reaches the app and the browser is told to go to
        the login page (which opens the app again for a changed role)."""
        state = {"checked": float("-inf"), "ended": False, "told": False}

        async def guarded() -> dict:
            while True:
                message = await receive()
                if message.get("type") != "websocket.receive":
                    return message
                now = time.monotonic()
                if not state["ended"] and now - state["checked"] >= _WS_CHECK_EVERY_S:
                    user = await run_in_threadpool(self._live_user, token, True)
                    state["checked"] = now
                    state["ended"] = user is None or user.role != built_for.role
                if not state["ended"]:
                    return message
                if not state["told"]:  # drop the message; the browser leaves for /login
                    state["told"] = True
                    await send({"type": "websocket.send",
                                "text": json.dumps({"custom": {SESSION_ENDED_MESSAGE: {}}})})

        return guarded

    # ------------------------------------------------------------------ sessions

    def _cookie_user(self, conn: HTTPConnection) -> tuple[UserInfo, str] | None:
        raw = conn.cookies.get(COOKIE_NAME)
        if not raw:
            return None
        token = self.signer.unsign(raw, self.max_age_s)
        if token is None:
            return None
        user = self._live_user(token, True)
        return None if user is None else (user, token)

    def _live_user(self, token: str, touch: bool) -> UserInfo | None:
        """The user of a live session (``touch``: this counts as use for the idle timeout)."""
        return accounts.session_user(self.store, token, idle_s=self.idle_s, touch=touch)

    def _secure(self, conn: HTTPConnection) -> bool:
        return self.secure_env or conn.url.scheme in ("https", "wss")

    # ------------------------------------------------------------------ login / logout

    async def _login(self, request: Request) -> Response:
        if request.method == "GET":
            if await run_in_threadpool(self._cookie_user, request) is not None:
                return RedirectResponse("./", status_code=303)
            return self._login_page(request)
        if request.method != "POST":
            return PlainTextResponse("Method not allowed.", status_code=405)
        form = await _small_form(request)
        if form is None:
            return PlainTextResponse("Bad request.", status_code=400)
        csrf_cookie = request.cookies.get(_CSRF_COOKIE, "")
        if not csrf_cookie or not secrets.compare_digest(csrf_cookie, form.get("csrf", "")):
            return self._login_page(request, error="The login form expired; please try again.",
                                    status=400)
        username = form.get("username", "").strip()
        result = await run_in_threadpool(
            accounts.authenticate, self.store, username, form.get("password", ""),
            remote=_remote(request))
        if result.user is None:
            status = 429 if result.retry_after_s else 401
            page = self._login_page(request, error=result.error, username=username,
                                    status=status)
            if result.retry_after_s:
                page.headers["Retry-After"] = str(result.retry_after_s)
            return page
        token = await run_in_threadpool(accounts.start_session, self.store,
                                        result.user.username, self.max_age_s)
        response = RedirectResponse("./", status_code=303)
        response.set_cookie(COOKIE_NAME, self.signer.sign(token), max_age=self.max_age_s,
                            httponly=True, samesite="lax", secure=self._secure(request), path="/")
        response.delete_cookie(_CSRF_COOKIE, path="/")
        return response

    async def _logout(self, request: Request) -> Response:
        if request.method != "POST":
            return PlainTextResponse("Use the Log out button.", status_code=405)
        found = await run_in_threadpool(self._cookie_user, request)
        response = RedirectResponse("login", status_code=303)
        if found is not None:
            user, token = found
            form = await _small_form(request) or {}
            if not secrets.compare_digest(form.get("csrf", ""), _csrf_for(token)):
                return PlainTextResponse("Bad request.", status_code=400)
            if form.get("scope") == "everywhere":
                await run_in_threadpool(accounts.end_all_sessions, self.store, user.username,
                                        by=user.username)
            else:
                await run_in_threadpool(accounts.end_session, self.store, token,
                                        username=user.username)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    def _login_page(self, request: Request, *, error: str | None = None, username: str = "",
                    status: int = 200) -> Response:
        csrf = request.cookies.get(_CSRF_COOKIE) or secrets.token_urlsafe(24)
        no_users = self.store.count_users() == 0
        response = Response(_LOGIN_HTML.format(
            error=(f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""),
            setup=(_SETUP_HINT if no_users else ""),
            username=html.escape(username),
            csrf=html.escape(csrf),
            idle=duration_text(self.idle_s),
            max_age=duration_text(self.max_age_s),
        ), status_code=status, media_type="text/html; charset=utf-8")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.set_cookie(_CSRF_COOKIE, csrf, max_age=3600, httponly=True, samesite="strict",
                            secure=self._secure(request), path="/")
        return response


def duration_text(seconds: float) -> str:
    """``1800`` → "30 minutes", ``28800`` → "8 hours" (for the login page)."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if (seconds >= size and seconds % size == 0) or seconds >= 2 * size:
            n = round(seconds / size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    n = round(seconds)
    return f"{n} second{'s' if n != 1 else ''}"


async def _small_form(request: Request) -> dict[str, str] | None:
    """A urlencoded form body of at most a few kilobytes (None when bigger or malformed)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            return None
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return None
    return {k: v[0] for k, v in parsed.items()}


_SETUP_HINT = (
    '<p class="hint">No user exists yet. Create the first administrator on the server with '
    "<code>artds user add --username NAME --role admin</code> (or start it with "
    "<code>make run</code>, which asks for one).</p>"
)

_LOGIN_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in — artds</title>
<link rel="icon" href="data:,">
<style>
 body {{ font-family: "Helvetica Neue", Helvetica, Arial, sans-serif; background: #f3f5f7;
        color: #1f2328; margin: 0; }}
 main {{ max-width: 380px; margin: 10vh auto; background: #fff; padding: 28px 32px;
        border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }}
 h1 {{ font-size: 1.25rem; margin: 0 0 4px; }}
 p.sub {{ color: #5c6670; margin: 0 0 18px; font-size: .9rem; }}
 label {{ display: block; font-weight: 600; margin: 12px 0 4px; font-size: .9rem; }}
 input[type=text], input[type=password] {{ width: 100%; box-sizing: border-box; padding: 8px;
        border: 1px solid #b8c0c8; border-radius: 4px; font-size: 1rem; }}
 input:focus, button:focus {{ outline: 3px solid #80b3e6; outline-offset: 1px; }}
 button {{ margin-top: 18px; width: 100%; padding: 9px; background: #0b5394; color: #fff;
        border: 0; border-radius: 4px; font-size: 1rem; cursor: pointer; }}
 .error {{ background: #fdecea; border-left: 4px solid #c0392b; padding: 8px 10px;
        font-size: .9rem; }}
 .hint {{ background: #fff4e5; border-left: 4px solid #e69f00; padding: 8px 10px;
        font-size: .85rem; }}
 .foot {{ color: #5c6670; font-size: .78rem; margin-top: 18px; }}
</style></head>
<body><main>
<h1>artds</h1>
<p class="sub">Adaptive radiotherapy decision support</p>
{setup}{error}
<form method="post" action="login" id="login-form">
<input type="hidden" name="csrf" value="{csrf}">
<label for="username">User name</label>
<input type="text" id="username" name="username" value="{username}" autocomplete="username"
 required autofocus maxlength="64">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required
 maxlength="1024">
<button type="submit">Log in</button>
</form>
<p class="foot">You are logged out after {idle} without use, after {max_age} at the latest, or
when you log out. Figures from virtual trials are not clinical evidence.</p>
</main></body></html>
"""


def watch_session(session: Any, store: Store, *, every_s: float | None = None) -> None:
    """Re-check the Shiny session's login every ``every_s`` seconds (default: a minute, or a
    quarter of the idle timeout when that is shorter); once it has expired, been idle too long,
    been logged out (in any tab or process), the user disabled or given a new password
    elsewhere, or the user's role is no longer the one the session was built for, send the
    browser to the login page and close the session. This catches an unattended browser; a
    browser in use is caught at its next message by the gate (:class:`LoginGate`). The check
    itself is not a use."""
    import asyncio

    from shiny import reactive

    idle_s = settings.session_idle_s()
    interval_s = every_s if every_s is not None else min(60.0, max(2.0, idle_s / 4))
    token = session_token(session.http_conn)
    built_for = session_user(session)

    @reactive.effect
    async def _check() -> None:
        reactive.invalidate_later(interval_s)
        user = None if token is None else await in_database_thread(
            accounts.session_user, store, token, idle_s=idle_s)
        alive = user is not None and built_for is not None and user.role == built_for.role
        if not alive:
            await session.send_custom_message(SESSION_ENDED_MESSAGE, {})
            await asyncio.sleep(1.0)
            await session.close()
