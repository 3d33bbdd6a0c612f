"""app.security and its use by the login gate, as plain ASGI (no browser): origins and
``$ARTDS_ALLOWED_ORIGINS``, Shiny sessions bound to their user, session ids kept out of access
logs, and a Content-Security-Policy that the app's own inline scripts satisfy. Chromium's view
of the policy and a real app's session binding are in tests/e2e/test_security.py."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest

from app import security
from app.auth import COOKIE_NAME, LoginGate
from engine import settings
from engine.platform import accounts as auth
from engine.platform.store import Store
from tests.unit.app import run_async

PASSWORD = "correct horse battery"
SID = "a1b2c3d4" * 8


def _scope(kind: str, path: str, cookie: str | None, *, host: str = "testserver",
           origin: str | None = None, method: str = "GET") -> dict:
    headers = [(b"host", host.encode())]
    if cookie:
        headers.append((b"cookie", f"{COOKIE_NAME}={cookie}".encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": kind, "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": headers, "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
            "scheme": "http" if kind == "http" else "ws", "root_path": "", "method": method,
            "http_version": "1.1"}


@pytest.mark.parametrize(("origin", "host", "allowed", "expected"), [
    (None, "testserver", (), True),
    ("http://testserver", "testserver", (), True),
    ("http://TestServer:80", "testserver", (), True),  # the default port is the same origin
    ("https://app.example:443", "app.example", (), True),
    ("http://testserver:9999", "testserver", (), False),  # another port of the same host
    ("http://evil.example", "testserver", (), False),
    ("https://testserver.evil.example", "testserver", (), False),
    ("null", "testserver", (), False),
    ("not an origin", "testserver", (), False),
    # behind a proxy that does not pass the Host through: the public origin is listed
    ("https://artds.hospital.example", "app:8000", ("https://artds.hospital.example",), True),
    ("http://artds.hospital.example", "app:8000", ("https://artds.hospital.example",), False),
    ("https://evil.example", "app:8000", ("https://artds.hospital.example",), False),
])
def test_origins(origin, host, allowed, expected) -> None:
    scope = _scope("websocket", "/websocket/", None, host=host, origin=origin)
    assert security.origin_allowed(scope, allowed) is expected


def test_allowed_origins_are_read_and_checked(monkeypatch) -> None:
    monkeypatch.delenv(settings.ALLOWED_ORIGINS_ENV, raising=False)
    assert settings.allowed_origins() == ()
    monkeypatch.setenv(settings.ALLOWED_ORIGINS_ENV,
                       " https://ArtDS.hospital.example/, http://10.0.0.5:8080  ")
    assert settings.allowed_origins() == ("https://artds.hospital.example",
                                          "http://10.0.0.5:8080")
    for bad in ("artds.hospital.example", "https://h.example/path", "ftp://h.example",
                "https://user@h.example", "https://h.example:99999"):
        monkeypatch.setenv(settings.ALLOWED_ORIGINS_ENV, bad)
        with pytest.raises(ValueError, match="ARTDS_ALLOWED_ORIGINS"):
            settings.allowed_origins()


class ShinyLike:
    """Stand-in app: a websocket gets Shiny's config message with :data:`SID`; HTTP records
    the path and answers 200."""

    def __init__(self) -> None:
        self.http_paths: list[str] = []

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "http":
            self.http_paths.append(scope["path"])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"file"})
            return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(
            {"config": {"workerId": "", "sessionId": SID, "user": None}})})
        while (await receive())["type"] != "websocket.disconnect":
            pass


@pytest.fixture
def gate(sqlite_store: Store) -> tuple[LoginGate, ShinyLike, dict[str, str]]:
    inner = ShinyLike()
    g = LoginGate(inner, sqlite_store)
    cookies = {}
    for name, role in (("phil", "physicist"), ("cleo", "clinician")):
        auth.create_user(sqlite_store, name, PASSWORD, role, created_by="cli")
        cookies[name] = g.signer.sign(auth.start_session(sqlite_store, name, g.max_age_s))
    return g, inner, cookies


async def _request(g: LoginGate, scope: dict, body: bytes = b"") -> tuple[int, dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await g(scope, receive, send)
    return sent[0]["status"], dict(sent[0].get("headers", []))


def test_a_shiny_session_files_belong_to_its_user_only(gate) -> None:
    g, inner, cookies = gate
    download = f"/session/{SID}/download/audit-csv"
    upload = f"/session/{SID}/upload/job1"

    async def scenario() -> list[int]:
        to_app: asyncio.Queue = asyncio.Queue()
        await to_app.put({"type": "websocket.connect"})
        socket = asyncio.create_task(g(_scope("websocket", "/websocket/", cookies["phil"]),
                                       to_app.get, _ignore))
        for _ in range(100):  # until the gate has seen Shiny's config message
            if g.sessions.owner(SID) is not None:
                break
            await asyncio.sleep(0.01)
        statuses = [
            (await _request(g, _scope("http", download, cookies["cleo"])))[0],
            (await _request(g, _with_length(_scope("http", upload, cookies["cleo"],
                                                    method="POST"), 4), b"data"))[0],
            (await _request(g, _scope("http", "/session/someone-else/download/x",
                                      cookies["phil"])))[0],
            (await _request(g, _scope("http", download, cookies["phil"])))[0],
        ]
        await to_app.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(socket, 10)
        statuses.append((await _request(g, _scope("http", download, cookies["phil"])))[0])
        return statuses

    # another user's session: 403 for download and upload; no such session: 403; the owner
    # gets the file; once the session has ended, nobody does
    assert run_async(scenario()) == [403, 403, 403, 200, 403]
    assert inner.http_paths == [download]  # only the owner's request reached Shiny
    assert len(g.sessions) == 0


def _with_length(scope: dict, n: int) -> dict:
    return {**scope, "headers": [*scope["headers"], (b"content-length", str(n).encode())]}


async def _ignore(message: dict) -> None:
    return None


def test_posts_from_another_origin_are_refused(gate, monkeypatch) -> None:
    g, inner, cookies = gate
    post = _scope("http", "/anything", cookies["phil"], origin="http://testserver:9999",
                  method="POST")
    assert run_async(_request(g, post))[0] == 403
    own = _scope("http", "/anything", cookies["phil"], origin="http://testserver",
                 method="POST")
    assert run_async(_request(g, own))[0] == 200
    read = _scope("http", "/anything", cookies["phil"], origin="http://elsewhere")
    assert run_async(_request(g, read))[0] == 200  # a plain read needs no origin check
    assert inner.http_paths == ["/anything", "/anything"]

    monkeypatch.setenv(settings.ALLOWED_ORIGINS_ENV, "https://artds.hospital.example")
    proxied = LoginGate(inner, g.store)
    behind = _scope("http", "/anything", cookies["phil"], host="app:8000",
                    origin="https://artds.hospital.example", method="POST")
    assert run_async(_request(proxied, behind))[0] == 200
    assert run_async(_request(g, behind))[0] == 403  # without the setting: refused


def test_access_logs_never_hold_a_session_id() -> None:
    security.redact_access_log()
    security.redact_access_log()  # idempotent
    logger = logging.getLogger("uvicorn.access")
    assert sum(isinstance(f, security.RedactSessionIds) for f in logger.filters) == 1
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:  # the call uvicorn's access log makes
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                    f"/session/{SID}/download/audit-csv?w=", "1.1", 200)
        logger.info(f"GET /session/{SID}/upload/x")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert seen == ['127.0.0.1:5000 - "GET /session/…/download/audit-csv?w= HTTP/1.1" 200',
                    "GET /session/…/upload/x"]


def test_the_policy_allows_exactly_the_app_inline_scripts(monkeypatch, tmp_path) -> None:
    """Every inline script of every role's page, as the app serves it, is one of
    CSP_SCRIPT_SOURCES (a Shiny or bslib upgrade that changes one fails here, before a browser
    refuses it), and no script may be inline or evaluated otherwise."""
    policy = security.content_security_policy()
    scripts = re.search(r"script-src ([^;]+)", policy).group(1).split()
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert set(security.inline_script_hashes(security.CSP_SCRIPT_SOURCES)) <= set(scripts)
    # a dialog shows itself with an inline script of the installed Shiny's own writing
    assert len(security.dialog_scripts()) == 1 and "shiny-modal" in security.dialog_scripts()[0]
    assert set(security.inline_script_hashes(security.dialog_scripts())) <= set(scripts)

    # the real app (imported here with a database of its own; app.db keeps it for the process)
    monkeypatch.setenv(settings.DATABASE_URL_ENV, f"sqlite:///{tmp_path / 'app.sqlite3'}")
    monkeypatch.setenv(settings.LEARNING_DIR_ENV, str(tmp_path / "learning"))
    from app.app import app as served
    from app.db import get_store

    found: set[str] = set()
    for role in ("clinician", "physicist", "admin"):
        name = f"csp-{role}"
        auth.create_user(get_store(), name, PASSWORD, role, created_by="cli")
        cookie = served.signer.sign(auth.start_session(get_store(), name, served.max_age_s))
        status, headers, page = run_async(_page(served, _scope("http", "/", cookie)))
        assert status == 200
        assert headers[b"content-security-policy"] == policy.encode()
        for attrs, body in re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S):
            executable = "src=" not in attrs and not re.search(
                r'type="(application/json|application/html-dependencies)"', attrs)
            if executable and body.strip():
                found.add(body)
        assert 'onclick="' not in page and "javascript:" not in page
    assert found == set(security.CSP_SCRIPT_SOURCES)


async def _page(app, scope: dict) -> tuple[int, dict, str]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], dict(sent[0].get("headers", [])), body.decode()


def test_an_upload_must_declare_its_length(gate) -> None:
    """Without a declared length Shiny would write part of an oversized upload to disk before
    the streamed limit cuts it off: refused (411) before the app sees it."""
    g, inner, cookies = gate
    upload = _scope("http", f"/session/{SID}/upload/job1", cookies["phil"], method="POST")
    assert run_async(_request(g, upload, b"data"))[0] == 411
    assert inner.http_paths == []
