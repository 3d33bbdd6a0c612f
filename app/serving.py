"""Which outcome model Operation Mode serves: the promoted version, read from the database.

The shipped GLoGD-GNN ensembles (``models/``) are registered as model versions at start-up. Until
a physicist promotes a Learning Mode version, the shipped one serves; after a promotion every app
process serves the promoted version (sessions poll the newest promotion id), and a rollback is a
promotion of an earlier version. Loaded ensembles are cached per version (versions are immutable:
their folder is named by the hash of their artifacts and re-checked on load).

:func:`model_ref` names a served model so that a worker process (:func:`app.runtime.cpu_pool`)
can load the same one (:func:`app.recommending.recommend_in_worker`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from app import shared
from app.recommending import ModelRef
from engine import settings
from engine.arclids.architectures import REFERENCE
from engine.arclids.outcomes import OutcomeModel
from engine.arclids.serving import LOAD_ERRORS, load_learned_version, one_line
from engine.platform.store import ModelVersionInfo, Store

__all__ = [
    "Served",
    "model_ref",
    "register_shipped_models",
    "served_model",
    "shipped_metrics",
]

_CACHE: dict[str, OutcomeModel] = {}
_REFS: dict[str, ModelRef] = {}
"""Version → how to load it again, for every Learning Mode version in :data:`_CACHE`."""
_LOCK = threading.Lock()


def model_ref(protocol_name: str, model: OutcomeModel) -> ModelRef | None:
    """How to load ``model`` (an object the app serves) elsewhere; None for a model the app did
    not load from its catalogue or a registered version (e.g. a test double)."""
    for key, choice in shared.MODEL_CHOICES[protocol_name].items():
        if choice.model is model:
            return ModelRef(protocol_name, key, model.version)
    with _LOCK:
        if _CACHE.get(model.version) is model:
            return _REFS.get(model.version)
    return None


@dataclass(frozen=True)
class Served:
    """The model serving a protocol and where it comes from."""

    model: OutcomeModel
    """The loaded model."""
    info: ModelVersionInfo | None
    """Its registered version (None: nothing registered, e.g. no trained models)."""
    warning: str | None
    """Why the promoted version is not the one served (it failed to load), else None."""


def shipped_metrics(protocol_name: str) -> dict:
    """Fresh-cohort metrics of the shipped GLoGD-GNN ensemble, per "tcp"/"ntcp"."""
    ev = shared.EVALUATIONS.get(protocol_name)
    if ev is None:
        return {}
    return {k: {m: v for m, v in per.items() if m != "best_config"}
            for k, per in ev.summary.get("architectures", {}).get("glogd", {}).items()}


def register_shipped_models(store: Store) -> None:
    """Record each protocol's shipped GLoGD-GNN ensemble as a model version (idempotent)."""
    for name, choices in shared.MODEL_CHOICES.items():
        choice = choices.get("glogd")
        if choice is None:
            continue
        store.register_model_version(
            protocol=name, arch="glogd", version=choice.model.version,
            location=str(settings.models_dir()), source="shipped", created_by="system",
            metrics=shipped_metrics(name),
            training={"trained_on": "virtual trial", "n_clinic_cases": 0})


def _label(info: ModelVersionInfo) -> str:
    n = info.training.get("n_clinic_cases", 0)
    pooled = info.training.get("n_virtual_cases", 0)
    extra = f" + {pooled} virtual-trial cases" if pooled else ""
    return f"GLoGD-GNN ensemble (Learning Mode: {n} clinic cases{extra})"


def served_model(protocol_name: str, store: Store) -> Served:
    """The model Operation Mode serves for ``protocol_name`` now."""
    shipped = shared.MODEL_CHOICES[protocol_name].get("glogd")
    fallback = (shipped or shared.MODEL_CHOICES[protocol_name][REFERENCE]).model
    info = store.serving_version(protocol_name)
    if info is None or (shipped is not None and info.version == shipped.model.version):
        return Served(fallback, info or store.model_version(fallback.version), None)
    with _LOCK:
        cached = _CACHE.get(info.version)
    if cached is not None:
        return Served(cached, info, None)
    try:
        model = load_learned_version(protocol_name, info.arch, info.location, info.version,
                                   _label(info))
    except LOAD_ERRORS as exc:
        why = one_line(exc)
        return Served(fallback, store.model_version(fallback.version),
                      f"The promoted version {info.version} could not be loaded ({why}); "
                      f"serving {fallback.version} instead.")
    with _LOCK:
        _CACHE[info.version] = model
        _REFS[info.version] = ModelRef(protocol_name, "learned", info.version, info.arch,
                                       str(info.location), _label(info))
    return Served(model, info, None)
