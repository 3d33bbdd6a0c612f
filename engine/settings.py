"""Where things live and every ``ARTDS_*`` environment variable: the one module that reads them.

Repository paths (models shipped with the code, shipped data, the writable ``var/`` folder) and the
deployment settings an operator sets through the environment are read here and nowhere else, so
that ``docs/clinic.md``'s table of variables has a single place to be checked against. Every
function reads the environment when called (tests and the CLI set variables after import).

| variable | read by | meaning |
| --- | --- | --- |
| ``ARTDS_DATABASE_URL`` | :func:`database_url` | SQLAlchemy URL (default: SQLite in ``var/``) |
| ``ARTDS_MODELS_DIR`` | :func:`models_dir` | shipped models folder (default ``models/``) |
| ``ARTDS_LEARNING_DIR`` | :func:`learning_dir` | writable folder for Learning Mode versions |
| ``ARTDS_SECRET_KEY`` | :func:`secret_key_override` | cookie-signing key (≥ 32 characters) |
| ``ARTDS_SESSION_MAX_AGE_S`` | :func:`session_max_age_s` | login lifetime, seconds |
| ``ARTDS_SESSION_IDLE_S`` | :func:`session_idle_s` | idle timeout, seconds |
| ``ARTDS_COOKIE_SECURE`` | :func:`cookie_secure` | ``1`` behind HTTPS: cookies get ``Secure`` |
| ``ARTDS_ALLOWED_ORIGINS`` | :func:`allowed_origins` | public origins of the app behind a proxy |
| ``ARTDS_ADMIN_USER``, ``ARTDS_ADMIN_PASSWORD`` | :data:`ADMIN_USER_ENV` | first administrator |
| ``ARTDS_PASSWORD`` | :data:`PASSWORD_ENV` | a new password for ``artds user add/passwd`` |
| ``ARTDS_MODELS_KEY``, ``ARTDS_MODELS_KEY_FILE`` | :func:`models_key` | manifests' signing key |
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "ADMIN_PASSWORD_ENV",
    "ADMIN_USER_ENV",
    "ALLOWED_ORIGINS_ENV",
    "ASSETS_DIR",
    "COOKIE_SECURE_ENV",
    "DATABASE_URL_ENV",
    "DATA_DIR",
    "DEFAULT_DATABASE_PATH",
    "DEFAULT_LEARNING_DIR",
    "DEFAULT_SESSION_IDLE_S",
    "DEFAULT_SESSION_MAX_AGE_S",
    "ENGINE_DIR",
    "EXAMPLES_DIR",
    "LEARNING_DIR_ENV",
    "MODELS_DIR",
    "MODELS_DIR_ENV",
    "MODELS_KEY_ENV",
    "MODELS_KEY_FILE_ENV",
    "MODELS_KEY_MIN_CHARS",
    "PASSWORD_ENV",
    "ROOT_DIR",
    "SECRET_KEY_ENV",
    "SESSION_IDLE_ENV",
    "SESSION_LIMITS_S",
    "SESSION_MAX_AGE_ENV",
    "VAR_DIR",
    "allowed_origins",
    "cookie_secure",
    "database_url",
    "env_password",
    "env_text",
    "learning_dir",
    "models_dir",
    "models_key",
    "secret_key_override",
    "session_idle_s",
    "session_max_age_s",
]

ENGINE_DIR = Path(__file__).resolve().parent
"""The ``engine`` package folder."""
ROOT_DIR = ENGINE_DIR.parent
"""The repository (or install) root: the folder holding ``engine/``, ``models/`` and ``assets/``."""
MODELS_DIR = ROOT_DIR / "models"
"""Trained artifacts shipped with the code (read-only when served)."""
ASSETS_DIR = ROOT_DIR / "assets"
"""Static files shipped with the code."""
DATA_DIR = ASSETS_DIR / "data"
"""Public data sets the project ships (provenance in ``assets/data/SOURCES.md``)."""
EXAMPLES_DIR = ASSETS_DIR / "examples"
"""Example input files (patients, expression profiles)."""
VAR_DIR = ROOT_DIR / "var"
"""Writable state of a single-machine install (git-ignored)."""

DATABASE_URL_ENV = "ARTDS_DATABASE_URL"
"""Environment variable naming the database (any SQLAlchemy URL)."""
DEFAULT_DATABASE_PATH = VAR_DIR / "artds.sqlite3"
"""The SQLite file used when ``$ARTDS_DATABASE_URL`` is not set."""
MODELS_DIR_ENV = "ARTDS_MODELS_DIR"
"""Environment variable that overrides :data:`MODELS_DIR`."""
LEARNING_DIR_ENV = "ARTDS_LEARNING_DIR"
"""Environment variable naming the writable folder for Learning Mode model versions."""
DEFAULT_LEARNING_DIR = VAR_DIR / "models"
"""Used when ``$ARTDS_LEARNING_DIR`` is unset."""
SECRET_KEY_ENV = "ARTDS_SECRET_KEY"
"""Environment variable holding the cookie-signing key (else one is generated and stored)."""
SESSION_MAX_AGE_ENV = "ARTDS_SESSION_MAX_AGE_S"
"""Environment variable: session lifetime in seconds (default :data:`DEFAULT_SESSION_MAX_AGE_S`)."""
DEFAULT_SESSION_MAX_AGE_S = 8 * 3600
"""A session lasts one working day, then the user logs in again."""
SESSION_IDLE_ENV = "ARTDS_SESSION_IDLE_S"
"""Environment variable: idle timeout in seconds (default :data:`DEFAULT_SESSION_IDLE_S`)."""
DEFAULT_SESSION_IDLE_S = 30 * 60
"""A session unused for half an hour ends (an unattended workstation), however young it is."""
SESSION_LIMITS_S = (10, 7 * 24 * 3600)
"""Accepted range of both session limits, seconds."""
COOKIE_SECURE_ENV = "ARTDS_COOKIE_SECURE"
"""Environment variable: ``1``/``true``/``yes`` marks the session cookie ``Secure`` (HTTPS)."""
ALLOWED_ORIGINS_ENV = "ARTDS_ALLOWED_ORIGINS"
"""Environment variable: origins (``https://host[:port]``, comma- or space-separated) the app is
also served under, besides the one each request names in its ``Host`` header."""
ADMIN_USER_ENV = "ARTDS_ADMIN_USER"
"""Environment variable: user name of the first administrator (when no user exists)."""
ADMIN_PASSWORD_ENV = "ARTDS_ADMIN_PASSWORD"
"""Environment variable: password of the first administrator."""
PASSWORD_ENV = "ARTDS_PASSWORD"
"""Environment variable: a new password for ``artds user add`` / ``artds user passwd``."""
MODELS_KEY_ENV = "ARTDS_MODELS_KEY"
"""Environment variable: the key of the models manifests' HMAC-SHA256 signature."""
MODELS_KEY_FILE_ENV = "ARTDS_MODELS_KEY_FILE"
"""Environment variable: a file holding that key (read when ``ARTDS_MODELS_KEY`` is unset)."""
MODELS_KEY_MIN_CHARS = 32
"""Shortest accepted models key, characters."""


def env_text(name: str) -> str:
    """The variable's value with surrounding white space removed ("" when unset)."""
    return os.environ.get(name, "").strip()


def env_password(name: str) -> str:
    """A password from the environment, verbatim ("" when unset): white space is part of it."""
    return os.environ.get(name, "")


def database_url() -> str:
    """``$ARTDS_DATABASE_URL`` when set (non-empty), else the default SQLite file's URL."""
    return env_text(DATABASE_URL_ENV) or f"sqlite:///{DEFAULT_DATABASE_PATH}"


def models_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """The models folder: ``given`` when a caller names one (a ``models_dir`` argument or
    ``--models-dir``), else ``$ARTDS_MODELS_DIR`` when set (non-empty), else :data:`MODELS_DIR`."""
    if given is not None and str(given) != "":
        return Path(given)
    override = os.environ.get(MODELS_DIR_ENV, "")
    return Path(override) if override else MODELS_DIR


def learning_dir() -> Path:
    """Folder for Learning Mode versions: ``$ARTDS_LEARNING_DIR`` or ``var/models``."""
    override = env_text(LEARNING_DIR_ENV)
    return Path(override) if override else DEFAULT_LEARNING_DIR


def _seconds_from_env(name: str, default: int) -> int:
    raw = env_text(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number of seconds") from None
    lo, hi = SESSION_LIMITS_S
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} must lie in {lo} … {hi} seconds")
    return value


def session_max_age_s() -> int:
    """Session lifetime, seconds (``$ARTDS_SESSION_MAX_AGE_S``, default 8 hours); ValueError
    naming the variable when it is not a whole number in :data:`SESSION_LIMITS_S`."""
    return _seconds_from_env(SESSION_MAX_AGE_ENV, DEFAULT_SESSION_MAX_AGE_S)


def session_idle_s() -> int:
    """Idle timeout, seconds (``$ARTDS_SESSION_IDLE_S``, default 30 minutes); ValueError as
    :func:`session_max_age_s`."""
    return _seconds_from_env(SESSION_IDLE_ENV, DEFAULT_SESSION_IDLE_S)


def secret_key_override() -> str | None:
    """``$ARTDS_SECRET_KEY`` when set, else None (the store then keeps a generated key);
    ValueError when it is shorter than 32 characters."""
    env = env_text(SECRET_KEY_ENV)
    if not env:
        return None
    if len(env) < 32:
        raise ValueError(f"{SECRET_KEY_ENV} must have at least 32 characters")
    return env


def cookie_secure() -> bool:
    """Whether ``$ARTDS_COOKIE_SECURE`` asks for ``Secure`` cookies (``1``, ``true`` or ``yes``)."""
    return os.environ.get(COOKIE_SECURE_ENV, "") in ("1", "true", "yes")


def models_key() -> tuple[bytes, Path | None] | None:
    """The key signing the models manifests (:mod:`engine.platform.registry`) and the file it
    was read from: ``$ARTDS_MODELS_KEY`` (file None), else the contents of the file
    ``$ARTDS_MODELS_KEY_FILE`` (surrounding white space removed), else None (no signature is
    checked). ValueError naming the variable when both are set, the file cannot be read, or the
    key is shorter than :data:`MODELS_KEY_MIN_CHARS` characters."""
    key, file = env_password(MODELS_KEY_ENV).strip(), env_text(MODELS_KEY_FILE_ENV)
    if key and file:
        raise ValueError(f"set {MODELS_KEY_ENV} or {MODELS_KEY_FILE_ENV}, not both")
    path = None
    if file:
        path = Path(file)
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{MODELS_KEY_FILE_ENV}={file}: cannot read the key "
                             f"({type(exc).__name__})") from None
    if not key:
        return None
    if len(key) < MODELS_KEY_MIN_CHARS:
        where = f"{MODELS_KEY_FILE_ENV}={file}" if path else MODELS_KEY_ENV
        raise ValueError(f"{where}: the key must have at least {MODELS_KEY_MIN_CHARS} "
                         "characters")
    return key.encode("utf-8"), path
def allowed_origins() -> tuple[str, ...]:
    """The origins of ``$ARTDS_ALLOWED_ORIGINS`` (comma- or space-separated, e.g.
    ``https://artds.hospital.example``), lower case without a trailing slash; () when unset.

    Raises:
        ValueError: naming the variable and the entry, when an entry is not
            ``http(s)://host[:port]`` (no path, query or user).
    """
    out = []
    for entry in re.split(r"[,\s]+", env_text(ALLOWED_ORIGINS_ENV)):
        if not entry:
            continue
        origin = entry.lower().rstrip("/")
        parts = urlsplit(origin)
        try:
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:
            port_ok = False
        if (parts.scheme not in ("http", "https") or not parts.hostname or not port_ok
                or parts.path or parts.query or parts.fragment or "@" in parts.netloc):
            raise ValueError(f"{ALLOWED_ORIGINS_ENV}: {entry!r} is not an origin; write "
                             "scheme://host[:port], e.g. https://artds.hospital.example")
        out.append(origin)
    return tuple(out)
