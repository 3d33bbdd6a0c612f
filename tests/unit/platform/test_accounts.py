"""engine.platform.accounts: argon2 hashes, roles, throttled logins, signed session tokens;
`artds user`."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from engine import settings
from engine.platform import accounts as auth
from engine.platform.store import Store
from engine.platform.store.tables import AuthSession

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "correct horse battery"


def test_roles_are_ranked() -> None:
    assert auth.role_allows("admin", "physicist") and auth.role_allows("physicist", "clinician")
    assert not auth.role_allows("clinician", "physicist")
    assert not auth.role_allows("physicist", "admin")
    assert not auth.role_allows(None, "clinician") and not auth.role_allows("root", "clinician")


def test_passwords_are_argon2_hashed_never_stored_plain(sqlite_store: Store) -> None:
    auth.create_user(sqlite_store, "ann", PASSWORD, "clinician", created_by="cli")
    stored = sqlite_store.password_hash("ann")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    for bad_name in ("", "a", "has space", "x" * 65, "<script>"):
        with pytest.raises(ValueError, match="user name"):
            auth.create_user(sqlite_store, bad_name, PASSWORD, "clinician", created_by="cli")
    with pytest.raises(ValueError, match="at least 10"):
        auth.create_user(sqlite_store, "bob", "short", "clinician", created_by="cli")
    with pytest.raises(ValueError, match="role"):
        auth.create_user(sqlite_store, "bob", PASSWORD, "surgeon", created_by="cli")
    with pytest.raises(ValueError, match="already exists"):
        auth.create_user(sqlite_store, "ann", PASSWORD, "admin", created_by="cli")


def test_login_right_wrong_and_unknown_user(sqlite_store: Store) -> None:
    auth.create_user(sqlite_store, "ann", PASSWORD, "physicist", created_by="cli")
    ok = auth.authenticate(sqlite_store, "ann", PASSWORD, remote="1.2.3.4")
    assert ok.user is not None and ok.user.role == "physicist" and ok.error is None
    wrong = auth.authenticate(sqlite_store, "ann", "nope", remote="1.2.3.4")
    unknown = auth.authenticate(sqlite_store, "zed", PASSWORD, remote="1.2.3.4")
    assert wrong.user is None and unknown.user is None
    assert wrong.error == unknown.error  # does not tell whether the user exists
    sqlite_store.set_active("ann", False, by="root")
    assert auth.authenticate(sqlite_store, "ann", PASSWORD, remote="1.2.3.4").user is None


def test_login_is_throttled_after_repeated_failures(sqlite_store: Store) -> None:
    auth.create_user(sqlite_store, "ann", PASSWORD, "clinician", created_by="cli")
    for _ in range(auth.MAX_FAILURES_PER_USER):
        assert auth.authenticate(sqlite_store, "ann", "guess", remote="5.6.7.8").user is None
    blocked = auth.authenticate(sqlite_store, "ann", PASSWORD, remote="9.9.9.9")
    assert blocked.user is None and blocked.retry_after_s > 0
    assert "Too many failed logins" in blocked.error
    # Another user from another address is unaffected.
    auth.create_user(sqlite_store, "bob", PASSWORD, "clinician", created_by="cli")
    assert auth.authenticate(sqlite_store, "bob", PASSWORD, remote="8.8.8.8").user is not None


def test_an_address_over_its_limit_keeps_other_accounts_working(sqlite_store: Store) -> None:
    """20 failures from one address (e.g. a clinic behind one proxy) refuse the names that
    failed there, never the other accounts behind the same address."""
    auth.create_user(sqlite_store, "ann", PASSWORD, "clinician", created_by="cli")
    auth.create_user(sqlite_store, "guess0", PASSWORD, "clinician", created_by="cli")
    for k in range(auth.MAX_FAILURES_PER_REMOTE):
        auth.authenticate(sqlite_store, f"guess{k}", "x", remote="6.6.6.6")
    refused = auth.authenticate(sqlite_store, "guess0", PASSWORD, remote="6.6.6.6")
    assert refused.user is None and refused.retry_after_s > 0
    assert auth.authenticate(sqlite_store, "ann", PASSWORD, remote="6.6.6.6").user is not None
    assert auth.authenticate(sqlite_store, "guess0", PASSWORD, remote="7.7.7.7").user is not None


def test_throttled_attempts_do_not_extend_the_wait(sqlite_store: Store) -> None:
    """Trying again while throttled is refused but not counted: the wait still ends when the
    last real failure's back-off does, and then the right password works."""
    from datetime import UTC, datetime, timedelta

    auth.create_user(sqlite_store, "ann", PASSWORD, "clinician", created_by="cli")
    for _ in range(auth.MAX_FAILURES_PER_USER):
        auth.authenticate(sqlite_store, "ann", "guess", remote="5.6.7.8")
    since = datetime.now(UTC) - timedelta(hours=1)
    n_before, _, last = sqlite_store.failed_logins_since(since, username="ann")
    for _ in range(10):
        assert auth.authenticate(sqlite_store, "ann", PASSWORD, remote="5.6.7.8").user is None
    n_after, _, last_after = sqlite_store.failed_logins_since(since, username="ann")
    assert (n_after, last_after) == (n_before, last)
    assert len(sqlite_store.events(action="login_throttled")) == 10  # audited, not counted
    later = last + timedelta(seconds=auth.BACKOFF_BASE_S + 1)
    assert auth.login_wait_s(sqlite_store, "ann", "5.6.7.8", now=later) == 0


def test_account_back_off_doubles_and_is_capped(sqlite_store: Store) -> None:
    from datetime import UTC, datetime, timedelta

    auth.create_user(sqlite_store, "ann", PASSWORD, "clinician", created_by="cli")

    def wait_after(extra_s: float) -> int:
        _, _, last = sqlite_store.failed_logins_since(
            datetime.now(UTC) - timedelta(hours=1), username="ann")
        return auth.login_wait_s(sqlite_store, "ann", "1.1.1.1",
                                 now=last + timedelta(seconds=extra_s))

    for _ in range(auth.MAX_FAILURES_PER_USER - 1):
        sqlite_store.record_login_attempt("ann", "1.1.1.1", False)
    assert wait_after(0) == 0  # below the limit: no wait
    sqlite_store.record_login_attempt("ann", "1.1.1.1", False)
    assert wait_after(0) == auth.BACKOFF_BASE_S
    sqlite_store.record_login_attempt("ann", "1.1.1.1", False)
    assert wait_after(0) == 2 * auth.BACKOFF_BASE_S
    for _ in range(10):
        sqlite_store.record_login_attempt("ann", "1.1.1.1", False)
    assert wait_after(0) == auth.BACKOFF_CAP_S  # a few minutes at most, never a lockout
    assert wait_after(auth.BACKOFF_CAP_S + 1) == 0


def test_session_tokens_signed_stored_hashed_and_revocable(sqlite_store: Store) -> None:
    auth.create_user(sqlite_store, "ann", PASSWORD, "clinician", created_by="cli")
    token = auth.start_session(sqlite_store, "ann", 3600)
    assert auth.session_user(sqlite_store, token).username == "ann"
    signer = auth.SessionSigner(auth.secret_key(sqlite_store))
    cookie = signer.sign(token)
    assert cookie != token and cookie.count(".") == 2  # payload.timestamp.signature
    assert signer.unsign(cookie, 3600) == token
    assert signer.unsign(cookie[:-2] + "xx", 3600) is None  # tampered
    assert auth.SessionSigner("another key of enough length....").unsign(cookie, 3600) is None
    auth.end_session(sqlite_store, token, username="ann")
    assert auth.session_user(sqlite_store, token) is None


def test_secret_key_from_env_or_generated_once(sqlite_store: Store, monkeypatch) -> None:
    monkeypatch.delenv(settings.SECRET_KEY_ENV, raising=False)
    first = auth.secret_key(sqlite_store)
    assert len(first) >= 32 and auth.secret_key(sqlite_store) == first
    monkeypatch.setenv(settings.SECRET_KEY_ENV, "k" * 40)
    assert auth.secret_key(sqlite_store) == "k" * 40
    monkeypatch.setenv(settings.SECRET_KEY_ENV, "short")
    with pytest.raises(ValueError):
        auth.secret_key(sqlite_store)


def test_session_max_age_from_env(monkeypatch) -> None:
    monkeypatch.delenv(settings.SESSION_MAX_AGE_ENV, raising=False)
    assert settings.session_max_age_s() == 8 * 3600
    monkeypatch.setenv(settings.SESSION_MAX_AGE_ENV, "60")
    assert settings.session_max_age_s() == 60
    monkeypatch.setenv(settings.SESSION_MAX_AGE_ENV, "soon")
    with pytest.raises(ValueError, match="whole number"):
        settings.session_max_age_s()


def test_session_idle_timeout_from_env(monkeypatch) -> None:
    monkeypatch.delenv(settings.SESSION_IDLE_ENV, raising=False)
    assert settings.session_idle_s() == 30 * 60
    monkeypatch.setenv(settings.SESSION_IDLE_ENV, "600")
    assert settings.session_idle_s() == 600
    for bad, why in (("half an hour", "whole number"), ("5", "10 … 604800"),
                     ("9999999", "10 … 604800")):
        monkeypatch.setenv(settings.SESSION_IDLE_ENV, bad)
        with pytest.raises(ValueError, match=why):
            settings.session_idle_s()
    assert auth.touch_interval_s(1800) == 30 and auth.touch_interval_s(20) == 5


def test_idle_session_ends_unless_used(sqlite_store: Store) -> None:
    auth.create_user(sqlite_store, "ann", PASSWORD, "clinician", created_by="cli")
    token = auth.start_session(sqlite_store, "ann", 3600)
    with sqlite_store.session() as s:  # last used 20 minutes ago
        s.execute(update(AuthSession).values(
            last_seen_at=datetime.now(UTC) - timedelta(minutes=20)))
    assert auth.session_user(sqlite_store, token, idle_s=30 * 60, touch=True) is not None
    assert auth.session_user(sqlite_store, token, idle_s=60) is not None  # the use was recorded
    with sqlite_store.session() as s:
        s.execute(update(AuthSession).values(
            last_seen_at=datetime.now(UTC) - timedelta(minutes=31)))
    assert auth.session_user(sqlite_store, token, idle_s=30 * 60, touch=True) is None
    assert auth.session_user(sqlite_store, token) is not None  # lifetime alone: still valid


def _artds(args: list[str], db: Path, stdin: str = "", env: dict | None = None):
    """`artds ARGS` in a subprocess, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], input=stdin, capture_output=True,
        text=True, cwd=ROOT, env={"ARTDS_DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin",
                                  **(env or {})}, timeout=120)


def _artds_here(args: list[str], db: Path, monkeypatch, capsys, stdin: str = "",
                env: dict | None = None) -> tuple[int, str, str]:
    """`artds ARGS` in this process (same parser and code; no interpreter start-up):
    (exit code, stdout, stderr)."""
    from engine.cli import main

    monkeypatch.setenv("ARTDS_DATABASE_URL", f"sqlite:///{db}")
    for name in ("ARTDS_PASSWORD", "ARTDS_ADMIN_USER", "ARTDS_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))  # not a terminal: nothing is asked
    capsys.readouterr()
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_user_add_list_role_disable(tmp_path: Path, monkeypatch, capsys) -> None:
    db = tmp_path / "cli.sqlite3"
    # The real command line once (entry point, exit code, piped password) ...
    added = _artds(["user", "add", "--username", "ann", "--role", "clinician",
                    "--password-stdin"], db, stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "created clinician ann" in added.stdout

    # ... the rest in this process.
    def artds(*args: str, stdin: str = "", env: dict | None = None) -> tuple[int, str, str]:
        return _artds_here(list(args), db, monkeypatch, capsys, stdin=stdin, env=env)

    # No password anywhere: refused with one line, exit code 2.
    code, _, err = artds("user", "add", "--username", "bob", "--role", "admin")
    assert code == 2 and "no password given" in err
    code, _, err = artds("user", "add", "--username", "bob", "--role", "admin",
                         "--password-stdin", stdin="short\n")
    assert code == 2 and "at least 10 characters" in err
    code, _, err = artds("user", "add", "--username", "bob", "--role", "admin",
                         env={"ARTDS_PASSWORD": PASSWORD})
    assert code == 0, err
    assert artds("user", "role", "--username", "ann", "--role", "physicist")[0] == 0
    assert artds("user", "disable", "--username", "bob")[0] == 0
    code, out, _ = artds("user", "list")
    assert [line.split("\t")[:3] for line in out.splitlines()] == [
        ["ann", "physicist", "active"], ["bob", "admin", "disabled"]]
    store = Store(f"sqlite:///{db}")
    assert auth.authenticate(store, "ann", PASSWORD, remote="x").user is not None
    assert auth.authenticate(store, "bob", PASSWORD, remote="x").user is None
    # A new password set on the server ends the user's open logins.
    token = auth.start_session(store, "ann", 3600)
    code, out, _ = artds("user", "passwd", "--username", "ann", "--password-stdin",
                         stdin="another long password\n")
    assert code == 0 and "their open logins ended" in out
    assert auth.session_user(store, token) is None
    assert auth.authenticate(store, "ann", "another long password", remote="x").user
    store.dispose()


def test_serve_refuses_to_start_without_a_first_admin(tmp_path: Path, monkeypatch,
                                                      capsys) -> None:
    code, _, err = _artds_here(["serve", "--port", "1"], tmp_path / "serve.sqlite3",
                               monkeypatch, capsys)
    assert code == 2
    assert "no user exists yet" in err and "ARTDS_ADMIN_USER" in err


def test_first_admin_from_environment(tmp_path: Path) -> None:
    from engine.cli.clinic import ensure_first_admin

    store = Store(f"sqlite:///{tmp_path / 'first.sqlite3'}")
    store.upgrade()
    import os

    os.environ["ARTDS_ADMIN_USER"], os.environ["ARTDS_ADMIN_PASSWORD"] = "root", PASSWORD
    try:
        ensure_first_admin(store)
        ensure_first_admin(store)  # a second start changes nothing
    finally:
        del os.environ["ARTDS_ADMIN_USER"], os.environ["ARTDS_ADMIN_PASSWORD"]
    assert [(u.username, u.role, u.created_by) for u in store.users()] == [
        ("root", "admin", "setup")]
    store.dispose()
