"""Accounts and sessions: argon2 password hashes, roles, login throttling, signed session tokens.

Nothing here knows about HTTP; ``app/auth.py`` puts it behind a login page and a cookie.

* Passwords are hashed with argon2id (argon2-cffi defaults); there is no default password
  anywhere: the first admin is created by ``artds user add`` or ``make run`` from what the
  operator types (or ``$ARTDS_ADMIN_PASSWORD``).
* Roles are ranked: a physicist may do everything a clinician may, an admin everything a
  physicist may (:func:`role_allows`).
* A login is refused without checking the password once a user name has
  :data:`MAX_FAILURES_PER_USER` failed attempts within :data:`THROTTLE_WINDOW_S` (or a remote
  address :data:`MAX_FAILURES_PER_REMOTE`); the attempts are rows in the database, so every app
  process applies the same limit.
* A session is a random token; the database keeps only its sha256 with the expiry, the time of
  its last use and the logout time, and the cookie carries the token signed (itsdangerous,
  HMAC-SHA1 over a key from ``$ARTDS_SECRET_KEY`` or generated once and kept in the database).
* A session ends at the first of: logout, its absolute lifetime (``$ARTDS_SESSION_MAX_AGE_S``,
  default 8 hours) and its idle timeout (``$ARTDS_SESSION_IDLE_S``, default 30 minutes without a
  request or an action in the app). Sessions follow the account: each check reads the user's
  role and state afresh, disabling a user ends their sessions, a new password ends the user's
  other sessions (:func:`change_password`), and :func:`end_all_sessions` ("Log out everywhere")
  ends them all.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from engine import settings
from engine.platform.store import ROLES, Store, StoreError, UserInfo

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "MAX_FAILURES_PER_REMOTE",
    "MAX_FAILURES_PER_USER",
    "MIN_PASSWORD_CHARS",
    "THROTTLE_WINDOW_S",
    "LoginResult",
    "SessionSigner",
    "authenticate",
    "change_password",
    "check_password",
    "check_username",
    "create_user",
    "end_all_sessions",
    "end_session",
    "login_wait_s",
    "role_allows",
    "secret_key",
    "session_user",
    "start_session",
    "touch_interval_s",
]

MIN_PASSWORD_CHARS = 10
"""Shortest accepted password, characters."""
MAX_PASSWORD_CHARS = 1024
"""Longest accepted password, characters (argon2 would take more; a bound keeps it cheap)."""
MAX_FAILURES_PER_USER = 5
"""Failed logins of one user name within the window after which logins are refused."""
MAX_FAILURES_PER_REMOTE = 20
"""Failed logins from one address within the window after which logins are refused."""
THROTTLE_WINDOW_S = 15 * 60
"""Throttling window, seconds: failures older than this are forgotten."""
BACKOFF_BASE_S = 30
"""Wait after the :data:`MAX_FAILURES_PER_USER`-th failure of an account, seconds (doubles with
each further failure)."""
BACKOFF_CAP_S = 5 * 60
"""Longest wait an account's failures can cause, seconds."""
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{1,63}")
_RANK = {role: i for i, role in enumerate(ROLES)}
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))  # verified for unknown users (timing)


@dataclass(frozen=True)
class LoginResult:
    """What a login attempt gave."""

    user: UserInfo | None
    """The user when the password was right, else None."""
    error: str | None
    """Why not, for the login page (never says whether the user name exists)."""
    retry_after_s: int = 0
    """Seconds until a throttled login may be tried again (0 when not throttled)."""


def role_allows(role: str | None, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may (clinician < physicist < admin)."""
    if role not in _RANK:
        return False
    return _RANK[role] >= _RANK[needed]


def check_username(username: str) -> str:
    """The user name, or ValueError naming what is wrong."""
    if not _USERNAME.fullmatch(username or ""):
        raise ValueError(
            f"user name {username!r} must be 2-64 characters of letters, digits, '.', '_', '@' "
            "or '-', starting with a letter or digit"
        )
    return username


def check_password(password: str) -> str:
    """The password, or ValueError when it is too short or too long."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"the password must have at most {MAX_PASSWORD_CHARS} characters")
    return password


def create_user(store: Store, username: str, password: str, role: str, *,
                created_by: str) -> UserInfo:
    """Validate and create a user; raises ValueError (bad name, password, role, duplicate)."""
    check_username(username)
    check_password(password)
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    try:
        return store.add_user(username, _HASHER.hash(password), role, created_by=created_by)
    except StoreError as err:
        raise ValueError(str(err)) from None


def change_password(store: Store, username: str, password: str, *, by: str,
                    keep_token: str | None = None) -> None:
    """Set a new password and end the user's logins but ``keep_token``'s (the session of a
    user changing their own password), in every process at once: whoever knew the old password
    is logged out. Raises ValueError (bad password, unknown user)."""
    check_password(password)
    try:
        store.set_password_hash(username, _HASHER.hash(password), by=by, end_sessions=True,
                                keep_session_sha256=None if keep_token is None
                                else _sha256(keep_token))
    except StoreError as err:
        raise ValueError(str(err)) from None


def login_wait_s(store: Store, username: str, remote: str,
                 now: datetime | None = None) -> int:
    """Seconds before ``username`` may try to log in from ``remote`` again; 0 when it may now.

    Neither limit can be turned into a lockout:

    * per account: from the :data:`MAX_FAILURES_PER_USER`-th failure on, each further failure
      doubles the wait after the latest one, from :data:`BACKOFF_BASE_S` up to
      :data:`BACKOFF_CAP_S` (a user who keeps mistyping waits a few minutes at most; a guesser
      gets a handful of tries an hour);
    * per address: after :data:`MAX_FAILURES_PER_REMOTE` failures from one address within
      :data:`THROTTLE_WINDOW_S`, that address may no longer try the user names it has failed
      on, but every other account behind the same address (a clinic behind one proxy) still
      logs in.

    Refused (throttled) attempts are not counted as failures, so trying again early never
    extends the wait.
    """
    now = now or datetime.now(UTC)
    since = now - timedelta(seconds=THROTTLE_WINDOW_S)
    waits = [0]
    n_user, _, last_user = store.failed_logins_since(since, username=username)
    if n_user >= MAX_FAILURES_PER_USER and last_user is not None:
        backoff = min(BACKOFF_BASE_S * 2 ** (n_user - MAX_FAILURES_PER_USER), BACKOFF_CAP_S)
        waits.append(math.ceil(backoff - (now - last_user).total_seconds()))
    n_remote, oldest, _ = store.failed_logins_since(since, remote=remote)
    if n_remote >= MAX_FAILURES_PER_REMOTE and oldest is not None:
        n_pair, _, _ = store.failed_logins_since(since, username=username, remote=remote)
        if n_pair > 0:
            waits.append(math.ceil(THROTTLE_WINDOW_S - (now - oldest).total_seconds()))
    return max(waits)


def authenticate(store: Store, username: str, password: str, *, remote: str) -> LoginResult:
    """Check a login, throttled per account and per remote address (:func:`login_wait_s`);
    records the attempt unless it was refused for throttling."""
    username = (username or "").strip()[:64]
    wait = login_wait_s(store, username or "?", remote)
    if wait > 0:
        store.log_event(username or "?", "login_throttled", {"remote": remote, "wait_s": wait})
        minutes = f"{max(1, round(wait / 60))} minute(s)" if wait >= 90 else f"{wait} seconds"
        return LoginResult(None, f"Too many failed logins. Try again in {minutes}.", wait)
    stored = store.password_hash(username) if username else None
    ok = False
    try:
        ok = _HASHER.verify(stored or _DUMMY_HASH, password or "") and stored is not None
    except (VerificationError, InvalidHashError):
        ok = False
    store.record_login_attempt(username or "?", remote, ok)
    if not ok:
        return LoginResult(None, "Wrong user name or password.")
    if stored is not None and _HASHER.check_needs_rehash(stored):
        store.set_password_hash(username, _HASHER.hash(password), by=username)
    user = store.user(username)
    return LoginResult(user, None if user else "Wrong user name or password.")


def touch_interval_s(idle_s: float) -> float:
    """How stale the recorded last use may get before a use is written again: a quarter of the
    idle timeout, at most 30 s (one write per half minute of activity, not one per request)."""
    return min(30.0, idle_s / 4)


def secret_key(store: Store) -> str:
    """The cookie-signing key: ``$ARTDS_SECRET_KEY``, else generated once and kept in the store
    (so every app process behind a load balancer signs alike)."""
    env = settings.secret_key_override()
    if env:
        return env
    return store.setting_or_create("secret_key", lambda: secrets.token_urlsafe(48))


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionSigner:
    """Signs session tokens for the cookie and checks them (signature and age)."""

    def __init__(self, key: str) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt="artds-session")

    def sign(self, token: str) -> str:
        return self._serializer.dumps(token)

    def unsign(self, value: str, max_age_s: int) -> str | None:
        """The token of a well-signed, young enough cookie value, else None."""
        try:
            token = self._serializer.loads(value, max_age=max_age_s)
        except (BadSignature, ValueError, TypeError):
            return None
        return token if isinstance(token, str) else None


def start_session(store: Store, username: str, max_age_s: int) -> str:
    """A new random session token for ``username`` (stored as its sha256)."""
    token = secrets.token_urlsafe(32)
    store.create_session(username, _sha256(token), max_age_s)
    return token


def session_user(store: Store, token: str, *, idle_s: float | None = None,
                 touch: bool = False) -> UserInfo | None:
    """The user of a live session token, None when unknown, expired, idle for ``idle_s``
    seconds or more, or logged out; ``touch`` records this use as activity."""
    every = touch_interval_s(idle_s or settings.DEFAULT_SESSION_IDLE_S) if touch else None
    found = store.session_user(_sha256(token), idle_s=idle_s, touch_every_s=every)
    return None if found is None else found[0]


def end_session(store: Store, token: str, *, username: str) -> None:
    """Log out: the token stops working in every process at once."""
    store.revoke_session(_sha256(token), username=username)


def end_all_sessions(store: Store, username: str, *, by: str) -> int:
    """Log out everywhere: every login of ``username`` (every browser, every device) stops
    working in every process at once; returns how many were open."""
    return store.revoke_user_sessions(username, by=by)
