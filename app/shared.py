"""Read-only things the app loads once per process: protocols, models, populations, examples.

Paths come from this file's location so the app runs from any working directory. Nothing here
is per-session; sessions keep their own state in ``reactive.value``.

Outcome models. Per protocol the app offers the learned ensembles of ``models/`` (GLoGD-GNN,
Single-GNN, logistic regression; ``$ARTDS_MODELS_DIR`` overrides the folder) and the virtual
trial's reference model. A learned model that does not load (missing or tampered artifacts) is
left out of the choices and its one-line error is kept in :data:`MODEL_ERRORS` for the UI to
show: the app never crashes on it and never pretends to serve a model it does not have. The
default is the GLoGD-GNN ensemble when it loads, else the reference model.

Decision makers. Per protocol and learned outcome model, the Double-DQN ensemble trained against
exactly that model version (:func:`engine.arclids.odm_train.odm_for_model`) is loaded once; when
there is
none (reference truth, logistic baseline, missing or stale artifacts) the recommendation is the
exact reward argmax and :data:`DECISION_MAKERS` keeps the one-line reason, which the panels show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import plotly
from htmltools import TagList, tags

from engine import settings
from engine.arclids.architectures import ARCH_KEYS, REFERENCE, SERVED_ARCH, choice_label
from engine.arclids.cohort import ReferenceModel, population_table
from engine.arclids.outcomes import OutcomeModel
from engine.core.protocols import PROTOCOL_NAMES, Protocol, load_protocol
from engine.core.schema import read_cases
from engine.platform import registry

__all__ = [
    "APP_DIR",
    "DECISION_MAKERS",
    "DEFAULT_MODEL",
    "EVALUATIONS",
    "EVALUATION_ERRORS",
    "EXAMPLES",
    "MODEL_CHOICES",
    "MODEL_ERRORS",
    "ODM_REVIEWS",
    "PLOTLY_JS",
    "POPULATIONS",
    "PROTOCOLS",
    "PROTOCOL_CHOICES",
    "REFERENCE_MODELS",
    "STARTUP_CASES",
    "WWW_DIR",
    "Evaluation",
    "ModelChoice",
    "OdmReview",
    "decision_maker",
    "load_decision_makers",
    "load_evaluation",
    "load_model_choices",
    "load_odm_review",
    "model_caveat",
    "with_code",
]

APP_DIR = Path(__file__).resolve().parent
WWW_DIR = APP_DIR / "www"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
"""plotly.js shipped inside the plotly package; served locally, never from a CDN."""



@dataclass(frozen=True)
class ModelChoice:
    """One entry of the "Outcome model" selector."""

    key: str
    """``"glogd"``, ``"single"``, ``"logistic"`` or ``"reference"``."""
    choice_label: str
    """What the selector shows, e.g. "GLoGD-GNN ensemble (served)"."""
    model: OutcomeModel
    """The loaded, read-only model."""


@dataclass(frozen=True)
class Evaluation:
    """A protocol's saved outcome-estimator evaluation (hash-checked when loaded)."""

    summary: dict[str, Any]
    """``engine.arclids.rtoe_train.summarise_evaluation``: metrics per architecture and
    "tcp"/"ntcp"."""
    payload: dict[str, Any]
    """The raw evaluation payload (per-split ROC points under ``architectures``)."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_model_choices(
    protocol_name: str, models_dir: Path | None = None
) -> tuple[dict[str, ModelChoice], dict[str, str]]:
    """Learned ensembles that load, then the reference model; errors of those that do not.

    Args:
        protocol_name: the protocol.
        models_dir: the models folder (default: ``engine.settings.models_dir()``).

    Returns:
        (choices keyed "glogd"/"single"/"logistic"/"reference" in selector order, the one-line
        error of every learned model left out).
    """
    choices: dict[str, ModelChoice] = {}
    errors: dict[str, str] = {}
    try:
        from engine.arclids.rtoe_train import load_served_model
    except ImportError as exc:  # learned models need torch; the reference model does not
        errors = {arch: f"learned models unavailable ({exc})" for arch in ARCH_KEYS}
    else:
        for arch in ARCH_KEYS:
            try:
                model = load_served_model(protocol_name, arch, models_dir)
            except registry.ArtifactError as exc:
                errors[arch] = _one_line(exc)
                continue
            except (RuntimeError, KeyError, TypeError, ValueError, OSError) as exc:
                # Artifacts that pass the hash check but do not fit this code (e.g. saved by
                # another version): still one line in the UI, never a crash.
                errors[arch] = f"could not be loaded ({type(exc).__name__}: {_one_line(exc)})"
                continue
            choices[arch] = ModelChoice(arch, choice_label(arch), model)
    choices[REFERENCE] = ModelChoice(REFERENCE, choice_label(REFERENCE),
                                     ReferenceModel(protocol_name))
    return choices, errors


def load_evaluation(
    protocol_name: str, models_dir: Path | None = None
) -> tuple[Evaluation | None, str | None]:
    """The protocol's saved evaluation, or None and the one-line reason it did not load."""
    try:
        from engine.arclids.rtoe_train import load_evaluation, summarise_evaluation
    except ImportError as exc:
        return None, f"learned models unavailable ({exc})"
    try:
        payload, meta = load_evaluation(protocol_name, models_dir)  # read and hash-checked once
        return Evaluation(summary=summarise_evaluation(payload, meta), payload=payload), None
    except (registry.ArtifactError, KeyError, TypeError, ValueError, OSError) as exc:
        return None, _one_line(exc)


@dataclass(frozen=True)
class OdmReview:
    """A protocol's saved decision-maker and synthetic-patient checks (hash-checked on load)."""

    odm: dict[str, Any] | None
    """``artds evaluate odm`` payload (per architecture, with per-case rows), None if absent."""
    odm_summary: dict[str, Any] | None
    """:func:`engine.arclids.odm_train.summarise_odm_evaluation` of it (stale flags included)."""
    gan: dict[str, Any] | None
    """The GAN's distribution checks (per-feature JSD and histograms), None if absent."""
    errors: dict[str, str]
    """One-line reasons for what did not load, keyed "odm" / "gan"."""


def load_decision_makers(
    protocol_name: str, choices: dict[str, ModelChoice], models_dir: Path | None = None
) -> dict[str, tuple[Any, str | None]]:
    """Per model choice: (the ODM ensemble serving it, None) or (None, why there is none)."""
    try:
        from engine.arclids.odm_train import OdmUnavailable, odm_for_model
    except ImportError as exc:
        return {key: (None, f"decision makers unavailable ({exc})") for key in choices}
    out: dict[str, tuple[Any, str | None]] = {}
    for key, choice in choices.items():
        try:
            out[key] = (odm_for_model(protocol_name, choice.model, models_dir), None)
        except OdmUnavailable as exc:
            out[key] = (None, _one_line(exc))
        except (RuntimeError, KeyError, TypeError, ValueError, OSError) as exc:
            out[key] = (None, f"decision maker could not be loaded ({type(exc).__name__}: "
                              f"{_one_line(exc)}); the exact argmax of the reward is shown")
    return out


def load_odm_review(protocol_name: str, models_dir: Path | None = None) -> OdmReview:
    """The saved ODM evaluation and GAN checks of a protocol, each None with a reason if absent."""
    errors: dict[str, str] = {}
    odm = summary = gan = None
    try:
        from engine.arclids.odm_train import (
            load_gan_evaluation,
            load_odm_evaluation,
            served_rtoe_versions,
            summarise_odm_evaluation,
        )
    except ImportError as exc:
        return OdmReview(None, None, None, {"odm": str(exc), "gan": str(exc)})
    try:
        odm, meta = load_odm_evaluation(protocol_name, models_dir)
        summary = summarise_odm_evaluation(
            odm, meta, served_rtoe_versions(protocol_name, models_dir))
    except (registry.ArtifactError, KeyError, TypeError, ValueError, OSError) as exc:
        odm, errors["odm"] = None, _one_line(exc)
    try:
        gan = load_gan_evaluation(protocol_name, models_dir)
    except (registry.ArtifactError, KeyError, TypeError, ValueError, OSError) as exc:
        errors["gan"] = _one_line(exc)
    return OdmReview(odm, summary, gan, errors)


PROTOCOLS: dict[str, Protocol] = {name: load_protocol(name) for name in PROTOCOL_NAMES}
_LOADED = {name: load_model_choices(name) for name in PROTOCOL_NAMES}
MODEL_CHOICES: dict[str, dict[str, ModelChoice]] = {n: c for n, (c, _) in _LOADED.items()}
"""Per protocol, the outcome models that loaded, in selector order (learned, then reference)."""
MODEL_ERRORS: dict[str, dict[str, str]] = {n: e for n, (_, e) in _LOADED.items()}
"""Per protocol, the one-line load error of each learned model left out (empty when all load)."""
DEFAULT_MODEL: dict[str, str] = {
    name: SERVED_ARCH if SERVED_ARCH in choices else REFERENCE
    for name, choices in MODEL_CHOICES.items()
}
"""Per protocol, the key of the model a new session serves."""
REFERENCE_MODELS: dict[str, OutcomeModel] = {
    name: MODEL_CHOICES[name][REFERENCE].model for name in PROTOCOL_NAMES
}
"""The virtual trial's reference (ground-truth) model per protocol."""
_EVALUATED = {name: load_evaluation(name) for name in PROTOCOL_NAMES}
EVALUATIONS: dict[str, Evaluation | None] = {n: e for n, (e, _) in _EVALUATED.items()}
"""Per protocol, the saved outcome-estimator evaluation, None when there is none."""
EVALUATION_ERRORS: dict[str, str | None] = {n: err for n, (_, err) in _EVALUATED.items()}
"""Per protocol, why the evaluation did not load (None when it did)."""

DECISION_MAKERS: dict[str, dict[str, tuple[Any, str | None]]] = {
    name: load_decision_makers(name, MODEL_CHOICES[name]) for name in PROTOCOL_NAMES
}
"""Per protocol and model key: (ODM ensemble, None) or (None, one-line reason it is absent)."""
ODM_REVIEWS: dict[str, OdmReview] = {name: load_odm_review(name) for name in PROTOCOL_NAMES}
"""Per protocol, the saved decision-maker evaluation and synthetic-patient checks."""


def decision_maker(protocol_name: str, model: OutcomeModel) -> tuple[Any, str | None]:
    """(ODM ensemble, None) serving ``model``, or (None, the reason) — looked up, never loaded."""
    for key, choice in MODEL_CHOICES[protocol_name].items():
        if choice.model is model:
            return DECISION_MAKERS[protocol_name][key]
    return None, "no decision maker is trained for this model; the exact argmax is shown"


POPULATIONS: dict[str, pd.DataFrame] = {name: population_table(name) for name in PROTOCOL_NAMES}
"""Complete cases of each default virtual trial, for the population histograms."""
EXAMPLES: dict[str, pd.DataFrame] = {
    name: read_cases(settings.EXAMPLES_DIR / f"{name}_patients.csv", PROTOCOLS[name])
    for name in PROTOCOL_NAMES
}
"""Validated example cases shipped in assets/examples/."""
STARTUP_CASES: dict[str, pd.DataFrame] = {
    name: examples.iloc[:1].reset_index(drop=True) for name, examples in EXAMPLES.items()
}
"""What a new session starts with: the first example patient of each protocol, so every panel
shows a worked example at once; "Remove all cases" empties it."""
PROTOCOL_CHOICES: dict[str, str] = {
    name: f"{name.upper()} ({p.n_eval_fractions} + {p.n_adapt_fractions} fractions)"
    for name, p in PROTOCOLS.items()
}
"""Short labels for the protocol selector (the full label is shown on the panels)."""


def model_caveat(model: OutcomeModel) -> str:
    """One line on what the model is and is not, for the sidebar and the panels."""
    if model.name == ReferenceModel.name:
        return ("The virtual trial's ground truth: a reference for testing the workflow, not "
                "clinical evidence.")
    caveat = "Learned on a virtual trial (simulated patients): not clinical evidence."
    warnings = getattr(model, "warnings", ())
    return " ".join([caveat, *(f"Warning: {w}." for w in warnings)])


def with_code(text: str) -> TagList:
    """Plain text with its `backticked` commands shown as code (the text stays escaped)."""
    parts = re.split(r"`([^`]+)`", text)
    return TagList(*[tags.code(part) if i % 2 else part for i, part in enumerate(parts) if part])


# --- SF2 (radiosensitivity from gene expression) ------------------------------------------------


def load_sf2() -> tuple[Any, str | None, dict[str, Any] | None, str | None]:
    """The served SF2 ensemble and the saved SF2 evaluation, each with its one-line load error.

    Returns:
        (model or None, model error or None, evaluation payload or None, evaluation error).
    """
    model = evaluation = None
    model_error = evaluation_error = None
    try:
        from engine.sf2.model import load_served_sf2

        model = load_served_sf2()
    except (ImportError, registry.ArtifactError, KeyError, TypeError, ValueError,
            RuntimeError, OSError) as exc:
        model_error = _one_line(exc)
    try:
        from engine.sf2.evaluate import load_evaluation as load_sf2_evaluation

        evaluation, _ = load_sf2_evaluation()
    except (ImportError, registry.ArtifactError, KeyError, TypeError, ValueError,
            OSError) as exc:
        evaluation_error = _one_line(exc)
    return model, model_error, evaluation, evaluation_error


SF2_MODEL, SF2_MODEL_ERROR, SF2_EVALUATION, SF2_EVALUATION_ERROR = load_sf2()
"""The served SF2 REPTILE ensemble (None when models/sf2 has none, with the reason) and the
saved cross-validation of every SF2 method (``artds sf2 evaluate --save``)."""
SF2_EXAMPLE_FILES: dict[str, Path] = {
    "sf2_cell_lines.csv": settings.EXAMPLES_DIR / "sf2_cell_lines.csv",
    "sf2_full_profiles.csv": settings.EXAMPLES_DIR / "sf2_full_profiles.csv",
}
"""Example SF2 uploads (offered for download in the panel)."""
