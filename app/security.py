"""HTTP hardening of the app's responses and requests, used by the login gate (:mod:`app.auth`).

* **Headers** (:data:`SECURITY_HEADERS`, :func:`with_security_headers`): every HTTP response
  carries a Content-Security-Policy (:func:`content_security_policy`), ``X-Frame-Options: DENY``,
  ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin``.
* **Origins** (:func:`origin_allowed`): a websocket, and any request that is not a plain read
  (not GET/HEAD/OPTIONS), is refused when its ``Origin`` is neither this server (the ``Host`` the
  request came with) nor one of ``$ARTDS_ALLOWED_ORIGINS`` (the public origin a reverse proxy
  serves the app under, when it does not pass the ``Host`` through).
* **Shiny sessions bound to their user** (:class:`SessionBindings`): Shiny serves a session's
  downloads, uploads and data under ``/session/<id>/…``; the id a websocket's session gets is
  recorded with the websocket's logged-in user, and a request for that path with another user's
  cookie (or for an id this process does not serve) is refused with 403 before Shiny sees it,
  so nothing is downloaded, uploaded or audited under the other user's name.
* **Access logs** (:class:`RedactSessionIds`): the ``/session/<id>/`` part of a logged path is
  written as ``/session/…/``, so the log never holds a live session's id.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "CSP_SCRIPT_SOURCES",
    "SECURITY_HEADERS",
    "RedactSessionIds",
    "SessionBindings",
    "SessionOwner",
    "content_security_policy",
    "header",
    "inline_script_hashes",
    "origin_allowed",
    "redact_access_log",
    "shiny_session_of",
    "shiny_upload",
    "with_security_headers",
]

CSP_SCRIPT_SOURCES: tuple[str, ...] = (
    # Shiny's busy indicators and bslib's cards and sidebar: the page's only inline scripts
    # (measured on every tab of every role; tests/e2e/test_security.py checks that Chromium
    # reports no violation). Allowed by their sha256, so no other inline script runs.
    "document.documentElement.dataset.shinyBusySpinners = true;"
    "document.documentElement.dataset.shinyBusyPulse = true;",
    "window.bslib.Card.initializeAllCards();",
    "bslib.Sidebar.initCollapsibleAll()",
    "(function() { var datepicker = $.fn.datepicker.noConflict(); "
    "$.fn.bsDatepicker = datepicker; })();",
)
"""Text of each inline script the app's pages hold (from Shiny and bslib, not from artds)."""


def modal_scripts() -> tuple[str, ...]:
    """The inline scripts of a Shiny modal dialog (``ui.modal``: it shows the dialog with
    Bootstrap), read from the installed Shiny so an upgrade that changes them is followed. The
    Learning Mode's confirmations are such dialogs; they are inserted after the page loads, so
    they are allowed beside :data:`CSP_SCRIPT_SOURCES` rather than found in the page."""
    from shiny import ui

    return tuple(re.findall(r"<script>(.*?)</script>", str(ui.modal("", title="")), re.S))


def inline_script_hashes(scripts: Iterable[str]) -> list[str]:
    """CSP source expressions (``'sha256-…'``) allowing exactly these inline scripts."""
    return [f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
            for s in scripts]


def content_security_policy() -> str:
    """The Content-Security-Policy of every response.

    Scripts only from the app itself (Shiny, bslib, plotly.js, ``www/``) and, by hash, the
    inline scripts of :data:`CSP_SCRIPT_SOURCES` and :func:`modal_scripts`: an injected
    ``<script>``, event-handler attribute or ``javascript:`` URL does not run, and no string is
    evaluated as code (so the app uses no Shiny conditional panel: their conditions are
    evaluated strings). Styles may be inline
    (Shiny, bslib and plotly set ``style`` attributes and plotly adds ``<style>`` elements);
    images and fonts also from ``data:``/``blob:`` URLs (plotly's "download as PNG", the
    favicon); the websocket and downloads only to the app; nothing is framed or frames the app;
    forms post only to the app; no plugin objects.
    """
    scripts = " ".join(["'self'", *inline_script_hashes((*CSP_SCRIPT_SOURCES,
                                                          *modal_scripts()))])
    return "; ".join([
        "default-src 'self'",
        f"script-src {scripts}",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "frame-src 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    ])


SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", content_security_policy().encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
"""Sent with every HTTP response (app, login page, assets, downloads): the policy above, the app
is never framed by another site (clickjacking), files are not content-sniffed into scripts, and
no URL (with its session-bound download paths) is sent to other origins as a referrer."""


def with_security_headers(send: Any) -> Any:
    """ASGI ``send`` that adds :data:`SECURITY_HEADERS` to the response start (once, not
    doubled)."""

    async def secured(message: dict) -> None:
        if message.get("type") == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return secured


def header(scope: dict, name: bytes) -> str | None:
    """The first value of request header ``name`` (lower case), None when absent."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _origin_key(origin: str) -> tuple[str, str] | None:
    """(scheme, host[:port] without the scheme's default port) of an origin, lower case."""
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    netloc = parts.hostname if port in (None, _DEFAULT_PORTS[parts.scheme]) else (
        f"{parts.hostname}:{port}")
    return parts.scheme, netloc


def origin_allowed(scope: dict, allowed: Iterable[str] = ()) -> bool:
    """True when the request carries no ``Origin``, or one whose host[:port] is the request's
    ``Host`` (this server as the browser reached it), or one of ``allowed`` (e.g.
    ``$ARTDS_ALLOWED_ORIGINS``: ``https://artds.hospital.example``). ``null`` and malformed
    origins are refused."""
    origin = header(scope, b"origin")
    if origin is None:
        return True
    key = _origin_key(origin)
    if key is None:
        return False
    host = header(scope, b"host")
    if host is not None and key[1] == (_origin_key(f"{key[0]}://{host}") or ("", ""))[1]:
        return True
    return key in {k for k in (_origin_key(a) for a in allowed) if k is not None}


_SESSION_PATH = re.compile(r"^/session/([^/]+)/([^/]*)")


def _session_path(scope: dict) -> re.Match[str] | None:
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return _SESSION_PATH.match(path)


def shiny_session_of(scope: dict) -> str | None:
    """The Shiny session id an HTTP request is for (``/session/<id>/…``: downloads, uploads,
    data of outputs), None for any other path."""
    found = _session_path(scope)
    return found.group(1) if found else None


@dataclass(frozen=True)
class SessionOwner:
    """Whom a Shiny session of this process was opened for."""

    user_id: int
    """The logged-in user's id."""
    role: str
    """The role the session's page and server were built for (a changed role ends it)."""
def shiny_upload(scope: dict) -> bool:
    """Whether an HTTP request uploads a file to a Shiny session (``POST
    /session/<id>/upload/<job>``)."""
    found = _session_path(scope)
    return scope.get("method") == "POST" and found is not None and found.group(2) == "upload"


class SessionBindings:
    """Which logged-in user each Shiny session of this process belongs to (thread-safe).

    The login gate records a session's id when Shiny tells it to the browser over the
    websocket (:meth:`watch_send`) and forgets it when the websocket ends; :meth:`owner` then
    says whose it is. A Shiny session lives in one process, so one process's bindings are all a
    request for it needs (behind several replicas, sticky routing sends it to that process).
    """

    def __init__(self) -> None:
        self._owners: dict[str, SessionOwner] = {}
        self._lock = threading.Lock()

    def owner(self, session_id: str) -> SessionOwner | None:
        """Whose the session is and the role its page was built for, None when this process
        serves no such session."""
        with self._lock:
            return self._owners.get(session_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._owners)

    def watch_send(self, send: Any, user_id: int, role: str, bound: list[str]) -> Any:
        """A websocket's ``send`` that binds the Shiny session id in Shiny's first message
        (``{"config": {"sessionId": …}}``) to ``user_id`` and the ``role`` the page was built
        for; the id is appended to ``bound`` so the caller can :meth:`forget` it when the
        websocket ends."""

        async def watched(message: dict) -> None:
            if not bound and message.get("type") == "websocket.send":
                session_id = _config_session_id(message.get("text"))
                if session_id is not None:
                    with self._lock:
                        self._owners[session_id] = SessionOwner(user_id, role)
                    bound.append(session_id)
            await send(message)

        return watched

    def forget(self, session_ids: Iterable[str]) -> None:
        with self._lock:
            for session_id in session_ids:
                self._owners.pop(session_id, None)


def _config_session_id(text: str | None) -> str | None:
    """The session id of Shiny's ``config`` message, None for any other message."""
    if not text or not text.startswith('{"config"'):
        return None
    import json

    try:
        config = json.loads(text)["config"]
    except (ValueError, KeyError, TypeError):
        return None
    session_id = config.get("sessionId") if isinstance(config, dict) else None
    return session_id if isinstance(session_id, str) and session_id else None


_LOGGED_SESSION = re.compile(r"/session/[^/\s?\"]+/")


class RedactSessionIds(logging.Filter):
    """Writes ``/session/<id>/`` as ``/session/…/`` in a log record (its message and its
    arguments), so access logs never hold a live Shiny session id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _LOGGED_SESSION.sub("/session/…/", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_LOGGED_SESSION.sub("/session/…/", a) if isinstance(a, str)
                                else a for a in record.args)
        return True


def redact_access_log(logger_names: Iterable[str] = ("uvicorn.access", "uvicorn.error")
                      ) -> None:
    """Add :class:`RedactSessionIds` to uvicorn's loggers (idempotent)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSessionIds) for f in logger.filters):
            logger.addFilter(RedactSessionIds())

