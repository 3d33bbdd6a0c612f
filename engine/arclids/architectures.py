"""The outcome-estimator architectures of ARCliDS: one table that the trainer, the serving
catalogue, Learning Mode, the figures, the app and the CLI all read.

Keys are the stable identifiers stored in artifact names, ``models/manifest.json``, the audit
trail and the JSON output (``"glogd"``, ``"single"``, ``"logistic"``); ``"reference"`` names the
virtual trial's ground truth, which is not learned and is not an architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ARCHITECTURES",
    "ARCH_KEYS",
    "ODM_ARCHS",
    "REFERENCE",
    "REFERENCE_LABEL",
    "REFERENCE_SHORT_LABEL",
    "SERVED_ARCH",
    "Architecture",
    "arch_label",
    "architecture",
    "choice_label",
]


@dataclass(frozen=True)
class Architecture:
    """One learned outcome-estimator architecture."""

    key: str
    """Stable identifier in artifact names, manifests, audit rows and JSON."""
    label: str
    """Name on screen and in reports, e.g. ``"GLoGD-GNN"``."""
    monotone: bool
    """TCP and NTCP rise with dose by construction (GLoGD: gEUD enters a logistic)."""
    has_decision_maker: bool
    """A Double-DQN ODM ensemble is trained for it (``artds train odm``)."""


ARCHITECTURES: dict[str, Architecture] = {
    a.key: a
    for a in (
        Architecture("glogd", "GLoGD-GNN", monotone=True, has_decision_maker=True),
        Architecture("single", "Single-GNN", monotone=False, has_decision_maker=True),
        Architecture("logistic", "Logistic regression", monotone=True, has_decision_maker=False),
    )
}
"""The architectures, served one first (the order of selectors, tables and figures)."""
ARCH_KEYS: tuple[str, ...] = tuple(ARCHITECTURES)
"""Keys of :data:`ARCHITECTURES`, in order."""
SERVED_ARCH = "glogd"
"""The architecture served by default (the paper's monotone GLoGD-GNN)."""
ODM_ARCHS: tuple[str, ...] = tuple(k for k, a in ARCHITECTURES.items() if a.has_decision_maker)
"""Architectures with a trained decision maker."""
REFERENCE = "reference"
"""Key of the virtual trial's reference (ground-truth) model among the outcome-model choices."""
REFERENCE_LABEL = "Reference: virtual-trial truth"
"""How the reference model is named in selectors."""
REFERENCE_SHORT_LABEL = "Virtual-trial truth"
"""How the reference model is named in figure legends and tables."""


def architecture(key: str) -> Architecture:
    """The architecture named ``key``; ValueError listing the accepted keys otherwise."""
    try:
        return ARCHITECTURES[key]
    except KeyError:
        raise ValueError(
            f"architecture {key!r} is not one of {', '.join(ARCH_KEYS)}"
        ) from None


def arch_label(key: str) -> str:
    """Display name of an architecture key (or of the reference truth); unknown keys are returned
    unchanged."""
    if key == REFERENCE:
        return REFERENCE_SHORT_LABEL
    a = ARCHITECTURES.get(key)
    return a.label if a else key


def choice_label(key: str) -> str:
    """What the "Outcome model" selector shows for ``key`` (an architecture or the reference)."""
    if key == REFERENCE:
        return REFERENCE_LABEL
    label = f"{arch_label(key)} ensemble"
    return f"{label} (served)" if key == SERVED_ARCH else label
