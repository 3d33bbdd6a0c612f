"""Read-only things the app loads once per process: protocols, models, populations, examples.

Paths come from this file's location so the app runs from any working directory. Nothing here
is per-session; sessions keep their own state in ``reactive.value``.

Outcome models and decision makers come from the engine's serving catalogue
(:func:`engine.arclids.serving.load_catalogue`), loaded once per protocol: the learned ensembles
of ``models/`` that load (GLoGD-GNN, Single-GNN, logistic regression; ``$ARTDS_MODELS_DIR``
overrides the folder), then the virtual trial's reference model; the one-line reason of each
learned model left out (:data:`MODEL_ERRORS`), which the UI shows; per model, the Double-DQN
ensemble trained against exactly that model version or the one-line reason the recommendation is
the exact reward argmax (:data:`DECISION_MAKERS`). The app never crashes on a model that does not
load and never pretends to serve one it does not have; the loading policy is the engine's, the
same as ``artds recommend``'s. The saved evaluations come from
:func:`engine.arclids.rtoe_eval.load_rtoe_review` and
:func:`engine.arclids.odm_eval.load_odm_review`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import plotly
from htmltools import TagList, tags

from engine import settings
from engine.arclids.architectures import REFERENCE
from engine.arclids.cohort import ReferenceModel, population_table
from engine.arclids.odm_eval import OdmReview, load_odm_review
from engine.arclids.outcomes import OutcomeModel
from engine.arclids.rtoe_eval import RtoeReview, load_rtoe_review, probability_quality
from engine.arclids.serving import LOAD_ERRORS, Catalogue, ModelChoice, load_catalogue, one_line
from engine.core.protocols import PROTOCOL_NAMES, Protocol, load_protocol
from engine.core.schema import read_cases
from engine.figures.wording import probability_quality_text
from engine.platform import registry

__all__ = [
    "APP_DIR",
    "CATALOGUES",
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
    "decision_maker",
    "model_caveat",
    "probability_quality_of",
    "with_code",
]

APP_DIR = Path(__file__).resolve().parent
WWW_DIR = APP_DIR / "www"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
"""plotly.js shipped inside the plotly package; served locally, never from a CDN."""


PROTOCOLS: dict[str, Protocol] = {name: load_protocol(name) for name in PROTOCOL_NAMES}
CATALOGUES: dict[str, Catalogue] = {name: load_catalogue(name) for name in PROTOCOL_NAMES}
"""Per protocol, the serving catalogue: outcome models, their load errors, decision makers."""
MODEL_CHOICES: dict[str, Mapping[str, ModelChoice]] = {
    n: c.choices for n, c in CATALOGUES.items()
}
"""Per protocol, the outcome models that loaded, in selector order (learned, then reference)."""
MODEL_ERRORS: dict[str, Mapping[str, str]] = {n: c.errors for n, c in CATALOGUES.items()}
"""Per protocol, the one-line load error of each learned model left out (empty when all load)."""
DEFAULT_MODEL: dict[str, str] = {name: c.default_key for name, c in CATALOGUES.items()}
"""Per protocol, the key of the model a new session serves."""
REFERENCE_MODELS: dict[str, OutcomeModel] = {
    name: MODEL_CHOICES[name][REFERENCE].model for name in PROTOCOL_NAMES
}
"""The virtual trial's reference (ground-truth) model per protocol."""
_EVALUATED = {name: load_rtoe_review(name) for name in PROTOCOL_NAMES}
EVALUATIONS: dict[str, RtoeReview | None] = {n: e for n, (e, _) in _EVALUATED.items()}
"""Per protocol, the saved outcome-estimator evaluation, None when there is none."""
EVALUATION_ERRORS: dict[str, str | None] = {n: err for n, (_, err) in _EVALUATED.items()}
"""Per protocol, why the evaluation did not load (None when it did)."""

DECISION_MAKERS: dict[str, Mapping[str, tuple[Any, str | None]]] = {
    name: c.decision_makers for name, c in CATALOGUES.items()
}
"""Per protocol and model key: (ODM ensemble, None) or (None, one-line reason it is absent)."""
ODM_REVIEWS: dict[str, OdmReview] = {name: load_odm_review(name) for name in PROTOCOL_NAMES}
"""Per protocol, the saved decision-maker evaluation and synthetic-patient checks."""


def probability_quality_of(protocol_name: str, model_version: str) -> str | None:
    """How good a model's TCP and NTCP are on the fresh virtual cohort against the base rate
    (:func:`engine.figures.wording.probability_quality_text`), when the saved evaluation
    measured this very version (a shipped model); "not measured" for another version (e.g. one
    Learning Mode promoted); None for the reference truth (it is the truth)."""
    if model_version == REFERENCE_MODELS[protocol_name].version:
        return None
    review = EVALUATIONS[protocol_name]
    key = next((k for k, c in MODEL_CHOICES[protocol_name].items()
                if c.model.version == model_version), None)
    return probability_quality_text(None if review is None or key is None
                                    else probability_quality(review.summary, key))


def decision_maker(protocol_name: str, model: OutcomeModel) -> tuple[Any, str | None]:
    """(ODM ensemble, None) serving ``model``, or (None, the reason) — looked up, never loaded."""
    return CATALOGUES[protocol_name].decision_maker_for(model)


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


_MODEL_ERRORS: tuple[type[Exception], ...] = (ImportError, *LOAD_ERRORS)
"""What loading a served model may raise (the serving failure policy,
:data:`engine.arclids.serving.LOAD_ERRORS`, and a missing optional package)."""
_RESULT_ERRORS: tuple[type[Exception], ...] = (ImportError, registry.ArtifactError, KeyError,
                                               TypeError, ValueError, OSError)
"""What loading a saved evaluation or interpretation may raise."""
T = TypeVar("T")


def _loaded(load: Callable[[], T], errors: tuple[type[Exception], ...]
            ) -> tuple[T | None, str | None]:
    """``(load(), None)``, or ``(None, the one-line reason)`` when it raises one of ``errors``:
    the panel then shows the reason instead of the model."""
    try:
        return load(), None
    except errors as exc:
        return None, one_line(exc)


def load_sf2() -> tuple[Any, str | None, dict[str, Any] | None, str | None]:
    """The served SF2 ensemble and the saved SF2 evaluation, each with its one-line load error.

    Returns:
        (model or None, model error or None, evaluation payload or None, evaluation error).
    """
    def model() -> Any:
        from engine.sf2.model import load_served_sf2

        return load_served_sf2()

    def evaluation() -> dict[str, Any]:
        from engine.sf2.evaluate import load_evaluation

        return load_evaluation()[0]

    return (*_loaded(model, _MODEL_ERRORS), *_loaded(evaluation, _RESULT_ERRORS))


SF2_MODEL, SF2_MODEL_ERROR, SF2_EVALUATION, SF2_EVALUATION_ERROR = load_sf2()
"""The served SF2 REPTILE ensemble (None when models/sf2 has none, with the reason) and the
saved cross-validation of every SF2 method (``artds sf2 evaluate --save``)."""
SF2_EXAMPLE_FILES: dict[str, Path] = {
    "sf2_cell_lines.csv": settings.EXAMPLES_DIR / "sf2_cell_lines.csv",
    "sf2_full_profiles.csv": settings.EXAMPLES_DIR / "sf2_full_profiles.csv",
}
"""Example SF2 uploads (offered for download in the panel)."""


# --- Drug resistance (Systemic therapy) ---------------------------------------------------------


def load_drug() -> tuple[Any, str | None, dict[str, Any] | None, str | None, Any]:
    """The served drug-resistance models, their saved interpretation and the data set they were
    trained on (for the example lines), each model with its one-line load error.

    Returns:
        (models or None, models error or None, interpretation payload or None, interpretation
        error or None, data set or None).
    """
    def served() -> tuple[Any, Any]:
        from engine.drug.serving import data_for, load_served_drug

        models = load_served_drug()
        return models, data_for(models)

    def interpretation() -> dict[str, Any]:
        from engine.drug.interpret import load_interpretation

        return load_interpretation()[0]

    loaded, models_error = _loaded(served, _MODEL_ERRORS)
    models, data = loaded if loaded is not None else (None, None)
    return (models, models_error, *_loaded(interpretation, _RESULT_ERRORS), data)


(DRUG_MODELS, DRUG_MODELS_ERROR, DRUG_INTERPRETATION, DRUG_INTERPRETATION_ERROR,
 DRUG_DATA) = load_drug()
"""The served drug-resistance models (``artds train drug``; None with the reason when models/drug
has none), their saved interpretation and the GDSC/DepMap data set (example lines)."""
DRUG_EXAMPLE_FILE: Path = settings.EXAMPLES_DIR / "drug_profiles.csv"
"""Example drug-profile upload (offered for download in the Systemic therapy panel)."""
