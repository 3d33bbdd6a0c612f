"""Users, login sessions, login attempts and installation settings.

Users carry an argon2 password hash (:mod:`engine.platform.accounts` hashes and verifies; nothing
here sees a plain-text password) and one role of :data:`~engine.platform.store.records.ROLES`;
they are disabled, never deleted. Only the sha256 of a session token is stored, with its expiry,
its last use (for the idle timeout) and its logout time. Login attempts are kept so throttling is
shared by every app process. Every change to a user is an audit event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.platform.store.audit import audit_event
from engine.platform.store.connection import Database
from engine.platform.store.records import ROLES, StoreError, UserInfo
from engine.platform.store.tables import AuthSession, LoginAttempt, Setting, User
from engine.platform.store.values import utc_now

__all__ = ["UserQueries"]


class UserQueries(Database):
    """Settings, users, login attempts and auth sessions."""

    # ---------------------------------------------------------------- settings

    def get_setting(self, key: str) -> str | None:
        """The value of setting ``key``, None when unset."""
        with self.session() as s:
            row = s.get(Setting, key)
            return None if row is None else row.value

    def setting_or_create(self, key: str, make: Callable[[], Any]) -> str:
        """The setting ``key``, created with ``make()`` if absent (first writer wins)."""

        def insert(s: Session) -> str:
            value = str(make())
            s.add(Setting(key=key, value=value))
            return value

        return self._find_or_insert(lambda: self.get_setting(key), insert)

    # ---------------------------------------------------------------- users

    def add_user(
        self, username: str, password_hash: str, role: str, *, created_by: str
    ) -> UserInfo:
        """Create a user (the password already hashed by :mod:`engine.platform.accounts`)."""
        _check_role(role)
        try:
            with self.session() as s:
                user = User(username=username, password_hash=password_hash, role=role,
                            active=True, created_at=utc_now(), created_by=created_by)
                s.add(user)
                s.flush()
                info = _user_info(user)
                s.add(audit_event(created_by, "user_added",
                                  {"username": username, "role": role}))
        except IntegrityError:
            raise StoreError(f"user {username!r} already exists") from None
        return info

    def user(self, username: str) -> UserInfo | None:
        """The user ``username`` (active or not), None when unknown."""
        with self.session() as s:
            u = s.scalar(_by_name(username))
            return None if u is None else _user_info(u)

    def password_hash(self, username: str) -> str | None:
        """The stored hash of an active user (for verification only), None if none."""
        with self.session() as s:
            u = s.scalar(_by_name(username).where(User.active.is_(True)))
            return None if u is None else u.password_hash

    def set_password_hash(self, username: str, password_hash: str, *, by: str,
                          end_sessions: bool = False,
                          keep_session_sha256: str | None = None) -> None:
        """Replace a user's password hash (audited as ``password_changed`` by ``by``).

        Args:
            username: whose password.
            password_hash: the new argon2 hash.
            by: who changes it.
            end_sessions: also end the user's logins, in the same transaction (a password
                change; not a re-hash of the same password at login).
            keep_session_sha256: with ``end_sessions``, the one login to keep (the user's own,
                when they change their password themselves).
        """
        with self.session() as s:
            u = _existing_user(s, username)
            u.password_hash = password_hash
            detail: dict[str, Any] = {"username": username}
            if end_sessions:
                detail["sessions_ended"] = _end_sessions(s, u.id, keep_session_sha256)
            s.add(audit_event(by, "password_changed", detail))

    def set_role(self, username: str, role: str, *, by: str) -> None:
        """Give a user another role of :data:`ROLES` (audited as ``role_changed``)."""
        _check_role(role)
        self._update_user(username, {"role": role}, by=by, action="role_changed",
                          detail={"username": username, "role": role})

    def set_active(self, username: str, active: bool, *, by: str) -> None:
        """Enable or disable a user; disabling also ends their sessions."""
        with self.session() as s:
            u = _existing_user(s, username)
            u.active = active
            if not active:
                _end_sessions(s, u.id, None)
            s.add(audit_event(by, "user_enabled" if active else "user_disabled",
                              {"username": username}))

    def users(self) -> list[UserInfo]:
        """Every user, by username."""
        with self.session() as s:
            return [_user_info(u) for u in s.scalars(select(User).order_by(User.username))]

    def count_users(self) -> int:
        """How many users exist (active or not)."""
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(User)) or 0)

    def _update_user(self, username: str, values: Mapping[str, Any], *, by: str, action: str,
                     detail: Mapping[str, Any]) -> None:
        """Set columns of one user and log ``action`` by ``by``; StoreError when unknown."""
        with self.session() as s:
            n = s.execute(update(User).where(User.username == username).values(**values)).rowcount
            if not n:
                raise StoreError(f"no user {username!r}")
            s.add(audit_event(by, action, detail))

    # ---------------------------------------------------------------- login attempts, sessions

    def record_login_attempt(self, username: str, remote: str, success: bool) -> None:
        """Keep one login attempt and log it (``login`` or ``login_refused``)."""
        with self.session() as s:
            s.add(LoginAttempt(username=username[:64], remote=remote[:64], at=utc_now(),
                               success=success))
            s.add(audit_event(username, "login" if success else "login_refused",
                              {"remote": remote}))

    def failed_logins_since(self, since: datetime, *, username: str | None = None,
                            remote: str | None = None
                            ) -> tuple[int, datetime | None, datetime | None]:
        """Failed attempts after ``since`` for a user, a remote address or both, after the last
        success of that user (a good login clears the count); returns (count, time of the
        oldest, time of the newest)."""
        with self.session() as s:
            q = select(func.count(), func.min(LoginAttempt.at), func.max(LoginAttempt.at)).where(
                LoginAttempt.at > since, LoginAttempt.success.is_(False))
            if username is not None:
                last_ok = s.scalar(select(func.max(LoginAttempt.at)).where(
                    LoginAttempt.username == username, LoginAttempt.success.is_(True)))
                q = q.where(LoginAttempt.username == username)
                if last_ok is not None:
                    q = q.where(LoginAttempt.at > last_ok)
            if remote is not None:
                q = q.where(LoginAttempt.remote == remote)
            count, oldest, newest = s.execute(q).one()
            return int(count or 0), oldest, newest  # aware UTC: UTCDateTime types min/max

    def create_session(self, username: str, token_sha256: str, max_age_s: float) -> datetime:
        """Store a new session of ``username``; returns its expiry (UTC)."""
        now = utc_now()
        expires = now + timedelta(seconds=max_age_s)
        with self.session() as s:
            u = _existing_user(s, username)
            s.add(AuthSession(token_sha256=token_sha256, user_id=u.id, created_at=now,
                              expires_at=expires, revoked_at=None, last_seen_at=now))
        return expires

    def session_user(self, token_sha256: str, *, idle_s: float | None = None,
                     touch_every_s: float | None = None) -> tuple[UserInfo, datetime] | None:
        """The active user of a live session, and its expiry.

        A session is live when it is not revoked, its user is active, its absolute lifetime has
        not passed and, with ``idle_s``, it was used within the last ``idle_s`` seconds.

        Args:
            token_sha256: sha256 of the session token.
            idle_s: idle timeout, seconds (None: no idle limit).
            touch_every_s: record this use as activity (for the idle timeout) when the last
                recorded use is older than this many seconds (None: a read-only check). The
                write is skipped otherwise, so frequent requests do not each take the
                database's write lock.
        """
        now = utc_now()
        with self.session() as s:
            row = s.execute(
                select(User, AuthSession.expires_at, AuthSession.last_seen_at,
                       AuthSession.created_at, AuthSession.id)
                .join(AuthSession, AuthSession.user_id == User.id)
                .where(AuthSession.token_sha256 == token_sha256,
                       AuthSession.revoked_at.is_(None), User.active.is_(True))
            ).first()
            if row is None or row[1] <= now:
                return None
            last_seen = row[2] or row[3]
            if idle_s is not None and last_seen + timedelta(seconds=idle_s) <= now:
                return None
            if touch_every_s is not None and last_seen + timedelta(seconds=touch_every_s) <= now:
                s.execute(update(AuthSession).where(AuthSession.id == row[4])
                          .values(last_seen_at=now))
            return _user_info(row[0]), row[1]

    def revoke_user_sessions(self, username: str, *, by: str,
                             keep_session_sha256: str | None = None) -> int:
        """End every login of ``username`` (but ``keep_session_sha256``'s), in every process
        at once ("Log out everywhere"; audited as ``logout_everywhere``); returns how many."""
        with self.session() as s:
            u = _existing_user(s, username)
            n = _end_sessions(s, u.id, keep_session_sha256)
            s.add(audit_event(by, "logout_everywhere", {"username": username, "sessions": n}))
            return n

    def revoke_session(self, token_sha256: str, *, username: str) -> bool:
        """End a session (logout, audited); False when it was already ended or unknown."""
        with self.session() as s:
            n = s.execute(update(AuthSession).where(
                AuthSession.token_sha256 == token_sha256, AuthSession.revoked_at.is_(None))
                .values(revoked_at=utc_now())).rowcount
            if n:
                s.add(audit_event(username, "logout", {}))
            return bool(n)


def _end_sessions(s: Session, user_id: int, keep_sha256: str | None) -> int:
    """Revoke the open sessions of user ``user_id`` but ``keep_sha256``; returns how many."""
    q = update(AuthSession).where(AuthSession.user_id == user_id,
                                  AuthSession.revoked_at.is_(None))
    if keep_sha256 is not None:
        q = q.where(AuthSession.token_sha256 != keep_sha256)
    return int(s.execute(q.values(revoked_at=utc_now())).rowcount or 0)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise StoreError(f"role {role!r} is not one of {', '.join(ROLES)}")


def _by_name(username: str) -> Select[tuple[User]]:
    return select(User).where(User.username == username)


def _existing_user(s: Session, username: str) -> User:
    """The user row ``username``; StoreError when there is none."""
    u = s.scalar(_by_name(username))
    if u is None:
        raise StoreError(f"no user {username!r}")
    return u


def _user_info(u: User) -> UserInfo:
    return UserInfo(u.id, u.username, u.role, u.active, u.created_at, u.created_by)
