"""The models folder's manifest file (``models/manifest.json``): reading it, its HMAC signature,
the lock and the atomic writes; :mod:`engine.platform.registry` records and checks the artifacts
it lists.

**Signed manifests.** A sha256 in the manifest proves only that a file is the one the manifest
lists: whoever can write ``models/`` can replace weights *and* update their sha256. With a key
configured (``$ARTDS_MODELS_KEY`` or a file named by ``$ARTDS_MODELS_KEY_FILE``, kept outside
every models folder: :func:`engine.settings.models_key`), the manifest carries an HMAC-SHA256
``signature`` over its canonical JSON (every other field, keys sorted, no white space), and a
manifest that is unsigned, signed with another key or changed since it was signed is refused
with one line saying so — no artifact it lists is served. Trainers holding the key sign what
they write (a tampered or unsigned manifest is refused for writing too, so a training run never
signs someone else's change); ``artds models sign`` signs a manifest after checking every file
against its sha256. The signature lives inside the manifest so that it is replaced with it in
one atomic rename. Without a key nothing is verified beyond the sha256s, and the app logs
:func:`unsigned_warning` once at start-up (the trade-off: no secret to manage, but write access
to ``models/`` is enough to serve other weights; see ``docs/clinic.md``).

Writes are atomic: the artifact goes to a temporary file renamed over the target
(``os.replace``), and the manifest is read, updated and replaced while holding an exclusive
``fcntl.flock`` on ``models/.manifest.lock``, so concurrent trainers (processes on one machine)
never lose each other's entries. Readers take no lock (they only ever see a whole manifest), so a
read-only ``models/`` volume serves fine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from engine import settings

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "SIGNATURE_FIELD",
    "ArtifactError",
    "atomic_write",
    "check_signature",
    "display",
    "key_id",
    "manifest_lock",
    "parse_manifest",
    "read_manifest",
    "signed",
    "signing_key",
    "unsigned_warning",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
"""File name of the manifest inside the models folder."""
MANIFEST_SCHEMA = 1
"""Version of the manifest layout written and accepted."""
SIGNATURE_FIELD = "signature"
"""Manifest field holding ``{"alg": "hmac-sha256", "key_id": ..., "mac": ...}``."""
_SIGNATURE_ALG = "hmac-sha256"
_LOCK_NAME = ".manifest.lock"


class ArtifactError(RuntimeError):
    """An artifact or the manifest cannot be used; the message is one line naming the file."""


def display(path: Path) -> str:
    """``path`` relative to the working directory when below it (``models/rtoe/x.pt``)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def unsigned_warning() -> str | None:
    """The warning the app logs once at start-up when no signing key is configured (None when
    one is): what is then not verified, and how to change that."""
    try:
        if settings.models_key() is not None:
            return None
    except ValueError:
        return None  # an unusable key is refused, with its reason, when models load
    return (f"models manifests are not verified: no {settings.MODELS_KEY_ENV} or "
            f"{settings.MODELS_KEY_FILE_ENV} is set, so whoever can write the models folder can "
            "replace weights and update their sha256 and they are served; set a key kept "
            "outside models/ and sign with `artds models sign` (docs/clinic.md)")


def signing_key(root: Path) -> bytes | None:
    """The configured signing key, None when none is configured.

    Raises ArtifactError when the key setting is unusable or its file lies inside ``root``
    (whoever can change the models could then re-sign them)."""
    try:
        found = settings.models_key()
    except ValueError as exc:
        raise ArtifactError(str(exc)) from None
    if found is None:
        return None
    key, file = found
    if file is not None and file.resolve().is_relative_to(root.resolve()):
        raise ArtifactError(
            f"{settings.MODELS_KEY_FILE_ENV}={file}: the key file lies inside the models folder "
            f"{display(root)}; keep it outside (whoever can change the models could re-sign "
            "them)")
    return key


def key_id(key: bytes) -> str:
    """A short public name of a key (an HMAC of a constant: reveals nothing of the key)."""
    return hmac.new(key, b"artds models key id", hashlib.sha256).hexdigest()[:12]


def _mac(key: bytes, manifest: Mapping[str, Any]) -> str:
    """HMAC-SHA256 (hex) of the manifest's canonical JSON without its signature."""
    body = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False,
                      ensure_ascii=False)
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def signed(key: bytes, manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with a fresh signature."""
    return {**manifest, SIGNATURE_FIELD: {"alg": _SIGNATURE_ALG, "key_id": key_id(key),
                                          "mac": _mac(key, manifest)}}


def check_signature(root: Path, manifest: Mapping[str, Any], key: bytes) -> None:
    """Refuse, in one line, a manifest not signed with ``key`` or changed since."""
    path = display(root / MANIFEST_NAME)
    sign = "after checking the models, sign it with `artds models sign"
    sign += "`" if root.resolve() == settings.models_dir().resolve() else \
        f" --models-dir {display(root)}`"
    signature = manifest.get(SIGNATURE_FIELD)
    if not isinstance(signature, dict) or signature.get("alg") != _SIGNATURE_ALG:
        raise ArtifactError(
            f"{path}: not signed, and {settings.MODELS_KEY_ENV} or "
            f"{settings.MODELS_KEY_FILE_ENV} is set: no artifact of it is served; {sign}")
    if signature.get("key_id") != key_id(key):
        raise ArtifactError(
            f"{path}: signed with another key than the one configured "
            f"({settings.MODELS_KEY_ENV}/{settings.MODELS_KEY_FILE_ENV}); no artifact of it is "
            f"served; use the key it was signed with or, {sign}")
    if not hmac.compare_digest(str(signature.get("mac", "")), _mac(key, manifest)):
        raise ArtifactError(
            f"{path}: signature does not match: the manifest changed since it was signed "
            f"(e.g. weights replaced and their sha256 updated); no artifact of it is served; "
            f"restore the models folder or, {sign}")


def read_manifest(root: Path, *, verify: bool = True) -> dict[str, Any]:
    """The manifest as a dict (empty skeleton if the file does not exist), its signature
    checked when a key is configured (``verify``)."""
    manifest = parse_manifest(root)
    if verify and (key := signing_key(root)) is not None and manifest["artifacts"]:
        check_signature(root, manifest, key)
    return manifest


def parse_manifest(root: Path) -> dict[str, Any]:
    """The manifest file as a dict (empty skeleton if it does not exist), unverified."""
    path = root / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"schema": MANIFEST_SCHEMA, "artifacts": {}}
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"{display(path)}: not valid JSON ({exc.msg}, line {exc.lineno}); restore it from "
            "version control or retrain the artifacts"
        ) from None
    if (
        not isinstance(manifest, dict)
        or not isinstance(manifest.get("artifacts"), dict)
        or manifest.get("schema") != MANIFEST_SCHEMA
    ):
        raise ArtifactError(
            f"{display(path)}: not an artds manifest of schema {MANIFEST_SCHEMA} "
            '(expected {"schema": 1, "artifacts": {...}})'
        )
    return manifest


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def manifest_lock(root: Path) -> Iterator[None]:
    """Exclusive lock on ``<root>/.manifest.lock`` for a read-modify-write of the manifest."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / _LOCK_NAME, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest atomically, signed when a key is configured (without one, an old
    signature is kept: it no longer matches, so a reader holding the key refuses the change)."""
    key = signing_key(root)
    if key is not None:
        manifest = signed(key, manifest)
    text = json.dumps(manifest, sort_keys=True, indent=2, allow_nan=False) + "\n"
    atomic_write(root / MANIFEST_NAME, text.encode("utf-8"))
