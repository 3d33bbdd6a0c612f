"""Trained artifacts under ``models/``: state_dicts and small JSON results, with a hashed manifest.

Layout (see ``models/README.md``)::

    models/
      manifest.json               {"schema": 1, "artifacts": {"<family>/<name>.pt": {...}, ...}}
      <family>/<name>.pt          torch state_dict: a flat dict[str, torch.Tensor]
      <family>/<name>.json        small JSON result (cross-validation table, ROC points, ...)

Every artifact file is listed in ``manifest.json`` under its path relative to ``models/`` with its
sha256 and size, the training seed and config, the hash of the training data, the cohort
version, metrics, creation time (UTC) and the artds and torch versions
(:class:`ArtifactMeta`). Loading refuses a file that is not listed, missing, changed since it was
recorded (sha256 mismatch) or not a state_dict of tensors, with a one-line
:class:`ArtifactError`; state_dicts are read with ``torch.load(..., weights_only=True)``, so an
artifact can never run code while loading.

The manifest file itself — its reading, HMAC signature, locking and atomic writes — is
:mod:`engine.platform.manifest`'s (``ArtifactError``, :data:`MANIFEST_NAME` and
:func:`unsigned_warning` are re-exported here).

``torch.save`` output is byte-deterministic for identical state_dicts only when the archive name
inside the zip is fixed; torch derives it from the file name, so artifacts are serialised to
memory first (archive name ``archive``) and the recorded sha256 is always that of the bytes
written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np
import pandas as pd
import torch

from engine import __version__ as ARTDS_VERSION
from engine import settings
from engine.platform.manifest import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    ArtifactError,
    atomic_write,
    display,
    manifest_lock,
    parse_manifest,
    read_manifest,
    signing_key,
    unsigned_warning,
    write_manifest,
)

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "NOT_FITTING",
    "ArtifactError",
    "ArtifactMeta",
    "Provenance",
    "data_hash",
    "ensemble_version",
    "fitting",
    "list_artifacts",
    "load_artifact",
    "load_json_artifact",
    "save_artifact",
    "save_json_artifact",
    "sign_manifest",
    "unsigned_warning",
    "verify_manifest",
]

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class ArtifactMeta:
    """What ``manifest.json`` records about one artifact file."""

    file: str
    """Path of the artifact relative to the models folder, ``"<family>/<name>.pt"`` or
    ``".json"``; the manifest key (not repeated inside the entry)."""
    sha256: str
    """SHA-256 of the file's bytes, lowercase hex."""
    bytes: int
    """File size, bytes."""
    family: str
    """Model family, e.g. ``"rtoe"`` (outcome estimators); the sub-folder."""
    name: str
    """Artifact name within the family (file name without extension)."""
    seed: int
    """Random seed the artifact was trained with."""
    config: dict[str, Any]
    """Training configuration (JSON object: hyperparameters, protocol, ...); read-only."""
    data_hash: str
    """:func:`data_hash` of the training table, hex."""
    cohort_version: str
    """Version label of the cohort / virtual trial trained on."""
    metrics: dict[str, Any]
    """Evaluation metrics (JSON object, e.g. ``{"auroc": 0.74}``); read-only."""
    created: str
    """Creation time, ISO-8601 UTC (``YYYY-MM-DDTHH:MM:SSZ``)."""
    artds_version: str
    """artds version that wrote the artifact."""
    torch_version: str
    """torch version that wrote the artifact."""

    def entry(self) -> dict[str, Any]:
        """The manifest entry (every field but :attr:`file`, which is its key)."""
        out = asdict(self)
        del out["file"]
        return out

    @classmethod
    def from_entry(cls, file: str, entry: Mapping[str, Any]) -> ArtifactMeta:
        """Build from a manifest key and entry; raises ArtifactError on missing fields."""
        names = [f.name for f in fields(cls) if f.name != "file"]
        missing = [n for n in names if n not in entry]
        if missing:
            raise ArtifactError(
                f"{MANIFEST_NAME}: entry {file!r} lacks {', '.join(missing)}; "
                "retrain the artifact to rewrite its entry"
            )
        return cls(file=file, **{n: entry[n] for n in names})


class Provenance(TypedDict):
    """How an artifact was made: the keyword arguments of :func:`save_artifact` and
    :func:`save_json_artifact`, recorded in its :class:`ArtifactMeta`."""

    seed: int
    """Training seed."""
    config: Mapping[str, Any]
    """Training configuration, JSON object."""
    data_hash: str
    """:func:`data_hash` of the training table."""
    cohort_version: str
    """Version label of the training cohort."""
    metrics: Mapping[str, Any]
    """Evaluation metrics, JSON object with finite numbers (None for an undefined one)."""


def ensemble_version(
    kind: str, protocol_name: str, arch: str, sha256s: Sequence[str], *, hex_per_member: int = 64
) -> str:
    """Version string of an ensemble, ``<kind>-<protocol>-<arch>-<10 hex>``, from its members'
    artifact sha256s in member order: the sha256 of the concatenated first ``hex_per_member`` hex
    digits of each. The one home of every model version the app, audit trail and JSON show.

    The families keep the digest width they were first released with, so that versions already
    in audit trails stay valid: shipped outcome ensembles (``"rtoe"``) 4 hex per member, decision
    makers (``"odm"``) 8, Learning Mode ensembles (``"learn"``) the whole hash.
    """
    joined = "".join(s[:hex_per_member] for s in sha256s)
    return f"{kind}-{protocol_name}-{arch}-{hashlib.sha256(joined.encode()).hexdigest()[:10]}"


def data_hash(frame: pd.DataFrame) -> str:
    """SHA-256 (hex) of a canonical CSV rendering of ``frame``; stable across runs and machines.

    Columns sorted by name, index dropped, floats as ``"%.10g"``, missing values empty, ``"\\n"``
    line ends, UTF-8. Row order matters (sort the rows first if it should not); a change in
    any value beyond the 10th significant digit changes the hash.
    """
    columns = sorted(frame.columns, key=str)
    text = frame[columns].to_csv(index=False, float_format="%.10g", lineterminator="\n")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- paths and messages -------------------------------------------------------------------------


def _check_segment(kind: str, value: str) -> None:
    """Family and artifact names must be one safe path segment."""
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value) or ".." in value:
        raise ValueError(
            f"artifact {kind} {value!r} must be 1-128 characters of letters, digits, '_', '-' "
            "or '.', start with a letter or digit, and not contain '..'"
        )


def _key(family: str, name: str, suffix: str) -> str:
    """Manifest key ``"<family>/<name><suffix>"`` after validating both names."""
    _check_segment("family", family)
    _check_segment("name", name)
    return f"{family}/{name}{suffix}"


def _hint(family: str, name: str, config: Mapping[str, Any] | None = None) -> str:
    """How to get a good artifact back: the ``artds train`` command, with ``--protocol`` when the
    config records one or the name starts with a protocol name (``nsclc_...``)."""
    from engine.core.protocols import PROTOCOL_NAMES

    command = f"artds train {family}"
    protocol = (config or {}).get("protocol")
    if not isinstance(protocol, str):
        protocol = name.split("_", 1)[0]
    if protocol in PROTOCOL_NAMES:
        command += f" --protocol {protocol}"
    return f"retrain with `{command}` or restore the file"


def _unusable(
    path: Path, problem: str, family: str, name: str, config: Mapping[str, Any] | None = None
) -> ArtifactError:
    """The one-line error of an artifact that cannot be used: which file, what is wrong with
    it, and how to get a good one back (:func:`_hint`)."""
    return ArtifactError(f"{display(path)}: {problem}; {_hint(family, name, config)}")


NOT_FITTING: tuple[type[Exception], ...] = (RuntimeError, KeyError, TypeError, ValueError,
                                            IndexError)
"""What building a model from an intact artifact raises when the artifact does not fit this
code (another feature graph or dose grid, a config lacking a key, a renamed parameter)."""


@contextlib.contextmanager
def fitting(meta: ArtifactMeta, models_dir: Path | str | None = None) -> Iterator[None]:
    """Inside the block a model is built from the verified artifact ``meta``: an exception of
    :data:`NOT_FITTING` becomes the one-line :class:`ArtifactError` naming the file, what is
    wrong and how to get a good one back ("models/rtoe/x.pt: does not fit this code (ValueError:
    ...); retrain with `artds train rtoe --protocol nsclc` or restore the file")."""
    try:
        yield
    except ArtifactError:
        raise
    except NOT_FITTING as exc:
        path = Path(meta.file) if models_dir is None else Path(models_dir) / meta.file
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        # "Error(s) in loading state_dict for X:" says what failed, its next line why.
        first = " ".join(lines[:2]) if len(lines) > 1 and lines[0].endswith(":") else \
            (lines[0] if lines else "")
        raise _unusable(path, f"does not fit this code ({type(exc).__name__}: {first[:300]})",
                        meta.family, meta.name, meta.config) from exc


# --- manifest -----------------------------------------------------------------------------------


def _numpy_json(value: Any) -> Any:
    """``json.dumps`` hook: numpy scalars and arrays as plain Python numbers and lists."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_object(label: str, value: Any) -> dict[str, Any]:
    """``value`` round-tripped through strict JSON (finite numbers only) as a dict.

    numpy scalars and arrays become Python numbers and lists; tuples become lists.
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"{label} must be a JSON object (a dict), got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, sort_keys=True, allow_nan=False, default=_numpy_json))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{label} must be JSON-serialisable with finite numbers (use None for an undefined "
            f"metric): {exc}"
        ) from None


def _register(
    root: Path,
    family: str,
    name: str,
    key: str,
    data: bytes,
    *,
    seed: int,
    config: Mapping[str, Any],
    data_hash: str,
    cohort_version: str,
    metrics: Mapping[str, Any],
) -> ArtifactMeta:
    """Write an artifact's bytes and its manifest entry atomically, under the manifest lock.

    The keyword arguments are the artifact's :class:`Provenance`, spelled out so that a missing
    or unknown one is a ``TypeError`` here.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    meta = ArtifactMeta(
        file=key,
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        family=family,
        name=name,
        seed=int(seed),
        config=_json_object("config", config),
        data_hash=str(data_hash),
        cohort_version=str(cohort_version),
        metrics=_json_object("metrics", metrics),
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        artds_version=ARTDS_VERSION,
        torch_version=torch.__version__,
    )
    with manifest_lock(root):
        manifest = read_manifest(root)  # a signed one must be intact before it is re-signed
        atomic_write(root / key, data)
        manifest["artifacts"][key] = meta.entry()
        write_manifest(root, manifest)
    return meta


def verify_manifest(models_dir: Path) -> list[ArtifactMeta]:
    """Check a models folder: its signature (when a key is configured) and every listed file
    against its sha256. Returns the entries; raises ArtifactError (one line) at the first
    problem."""
    root = Path(models_dir)
    manifest = read_manifest(root)
    metas = [ArtifactMeta.from_entry(k, e) for k, e in sorted(manifest["artifacts"].items())]
    for meta in metas:
        _verified_bytes(root, meta.family, meta.name, Path(meta.file).suffix, manifest=manifest)
    return metas


def sign_manifest(models_dir: Path) -> list[ArtifactMeta]:
    """Sign a models folder's manifest with the configured key, after checking every listed
    file against its sha256 (what is signed is what is on disk). Returns the entries signed.

    Raises:
        ArtifactError: no key configured, no manifest, or a listed file missing or changed.
    """
    root = Path(models_dir)
    key = signing_key(root)
    if key is None:
        raise ArtifactError(
            f"no signing key: set {settings.MODELS_KEY_ENV} or {settings.MODELS_KEY_FILE_ENV} "
            "(a key of at least 32 characters, kept outside the models folder)")
    if not (root / MANIFEST_NAME).is_file():
        raise ArtifactError(f"{display(root / MANIFEST_NAME)}: no manifest to sign")
    with manifest_lock(root):
        manifest = parse_manifest(root)
        metas = [ArtifactMeta.from_entry(k, e) for k, e in sorted(manifest["artifacts"].items())]
        for meta in metas:
            _verified_bytes(root, meta.family, meta.name, Path(meta.file).suffix,
                            manifest=manifest)
        write_manifest(root, manifest)
    return metas


def _verified_bytes(root: Path, family: str, name: str, suffix: str, *,
                    manifest: dict[str, Any] | None = None) -> tuple[bytes, ArtifactMeta]:
    """The bytes of a listed artifact whose sha256 matches the manifest (read and verified
    here unless given), and its meta."""
    key = _key(family, name, suffix)
    path = root / key
    manifest_path = display(root / MANIFEST_NAME)
    manifest = read_manifest(root) if manifest is None else manifest
    entry = manifest["artifacts"].get(key)
    if entry is None:
        raise _unusable(path, f"not listed in the manifest {manifest_path}", family, name)
    meta = ArtifactMeta.from_entry(key, entry)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _unusable(
            path, f"missing file (listed in {manifest_path})", family, name, meta.config
        ) from None
    if hashlib.sha256(data).hexdigest() != meta.sha256:
        raise _unusable(
            path,
            f"sha256 mismatch (file changed since it was recorded in {manifest_path})",
            family,
            name,
            meta.config,
        )
    return data, meta


# --- state_dicts --------------------------------------------------------------------------------


def save_artifact(
    models_dir: Path,
    family: str,
    name: str,
    state: Mapping[str, torch.Tensor],
    **provenance: Unpack[Provenance],
) -> ArtifactMeta:
    """Save a state_dict as ``<models_dir>/<family>/<name>.pt`` and record it in the manifest.

    Tensors are detached, moved to the CPU and copied into their own contiguous storage first
    (so a view never drags its whole base storage along); identical inputs give byte-identical
    files. An existing artifact of the same name is replaced.

    Args:
        models_dir: the models folder (usually :func:`models_dir`).
        family: model family, one path segment (e.g. ``"rtoe"``).
        name: artifact name, one path segment (e.g. ``"nsclc_glogd_tcp_0"``).
        state: flat mapping of parameter name to tensor (a ``state_dict()``).
        **provenance: ``seed``, ``config``, ``data_hash``, ``cohort_version`` and ``metrics``
            (see :class:`Provenance`).

    Returns:
        The recorded :class:`ArtifactMeta`.

    Raises:
        ValueError: bad names, a state that is not a flat dict of tensors, non-JSON config or
            metrics.
    """
    root = Path(models_dir)
    key = _key(family, name, ".pt")
    if not isinstance(state, Mapping) or not state:
        raise ValueError("state must be a non-empty dict of parameter name -> tensor")
    clean: dict[str, torch.Tensor] = {}
    for param, tensor in state.items():
        if not isinstance(param, str) or not isinstance(tensor, torch.Tensor):
            raise ValueError(
                f"state must map str to torch.Tensor; entry {param!r} is {type(tensor).__name__}"
            )
        clean[param] = tensor.detach().to("cpu").contiguous().clone()
    buffer = io.BytesIO()
    torch.save(clean, buffer)
    return _register(root, family, name, key, buffer.getvalue(), **provenance)


def load_artifact(
    models_dir: Path, family: str, name: str
) -> tuple[dict[str, torch.Tensor], ArtifactMeta]:
    """Load ``<models_dir>/<family>/<name>.pt`` after checking it against the manifest.

    Returns:
        ``(state_dict, meta)``; tensors on the CPU.

    Raises:
        ArtifactError: not listed in the manifest, missing file, sha256 mismatch, or the file
            is not a state_dict of tensors (including pickles that ``weights_only`` refuses).
    """
    root = Path(models_dir)
    data, meta = _verified_bytes(root, family, name, ".pt")
    path = root / meta.file
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refusal (UnpicklingError) or a corrupt archive
        raise _unusable(
            path, f"not a state_dict of tensors ({_load_failure(exc)})", family, name, meta.config
        ) from None
    if not isinstance(state, Mapping):
        found = f"a {type(state).__name__}"
    else:
        bad = [
            (k, v)
            for k, v in state.items()
            if not (isinstance(k, str) and isinstance(v, torch.Tensor))
        ]
        found = f"entry {bad[0][0]!r} is a {type(bad[0][1]).__name__}" if bad else ""
    if found:
        raise _unusable(
            path,
            f"not a state_dict of tensors (expected a flat dict of name -> tensor; {found})",
            family,
            name,
            meta.config,
        )
    return dict(state), meta


def _load_failure(exc: Exception) -> str:
    """One line saying why ``torch.load(weights_only=True)`` refused a file."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    marker = "WeightsUnpickler error:"
    if marker in text:
        detail = text.split(marker, 1)[1].strip().split("\n", 1)[0]
        detail = re.split(r" was not an allowed global| Please use", detail)[0].rstrip(". ")
        return f"weights_only load refused it: {detail or 'unsupported pickle content'}"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"torch.load failed: {first.split('. ')[0].rstrip('.')[:160]}"


def list_artifacts(models_dir: Path, family: str | None = None) -> list[ArtifactMeta]:
    """Manifest entries (all, or of one family), sorted by file; no hash checks here."""
    manifest = read_manifest(Path(models_dir))
    return [
        ArtifactMeta.from_entry(key, entry)
        for key, entry in sorted(manifest["artifacts"].items())
        if family is None or entry.get("family") == family
    ]


# --- JSON results -------------------------------------------------------------------------------


def save_json_artifact(
    models_dir: Path,
    family: str,
    name: str,
    payload: Mapping[str, Any],
    **provenance: Unpack[Provenance],
) -> ArtifactMeta:
    """Save a small JSON result as ``<models_dir>/<family>/<name>.json`` and record it.

    The payload is written as strict JSON (finite numbers, keys sorted, indent 2), so identical
    payloads give identical files. Other arguments as in :func:`save_artifact`.
    """
    root = Path(models_dir)
    key = _key(family, name, ".json")
    body = _json_object("payload", payload)
    text = json.dumps(body, sort_keys=True, indent=2, allow_nan=False) + "\n"
    return _register(root, family, name, key, text.encode("utf-8"), **provenance)


def load_json_artifact(
    models_dir: Path, family: str, name: str
) -> tuple[dict[str, Any], ArtifactMeta]:
    """Load ``<models_dir>/<family>/<name>.json`` after checking it against the manifest.

    Raises:
        ArtifactError: not listed, missing, sha256 mismatch, or not a JSON object.
    """
    root = Path(models_dir)
    data, meta = _verified_bytes(root, family, name, ".json")
    path = root / meta.file
    try:
        payload = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _unusable(path, f"not valid JSON ({exc})", family, name, meta.config) from None
    if not isinstance(payload, dict):
        raise _unusable(
            path, f"not a JSON object (got {type(payload).__name__})", family, name, meta.config
        )
    return payload, meta


def _reject_constant(token: str) -> float:
    """``json.loads`` hook refusing ``NaN``/``Infinity`` (not JSON)."""
    raise ValueError(f"non-standard constant {token}")
