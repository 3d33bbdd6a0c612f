"""Treatment protocols as data: fractions, candidate dose grids, tissue parameters, goals, features.

Each protocol lives in ``engine/core/protocols/<name>.toml`` with unit-suffixed keys and is loaded
into frozen dataclasses here. Nothing else in the engine hard-codes a protocol number.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.protocols.plan import PlanSpec, plan_spec

__all__ = [
    "PROTOCOLS_DIR",
    "PROTOCOL_NAMES",
    "Feature",
    "Goal",
    "Protocol",
    "Structure",
    "load_protocol",
    "protocol_from_dict",
]

PROTOCOLS_DIR = Path(__file__).parent
"""Folder of the protocol TOML files (``<name>.toml``)."""
PROTOCOL_NAMES: tuple[str, ...] = ("nsclc", "hcc")


@dataclass(frozen=True)
class Structure:
    """A tissue whose gEUD drives one outcome (the target drives TCP, the organ at risk NTCP)."""

    name: str
    """Short identifier, e.g. ``"tumour"`` or ``"lung"``."""
    label: str
    """Human-readable name."""
    outcome: str
    """Column name of the binary outcome this structure drives (1 = event observed)."""
    outcome_label: str
    """Human-readable outcome name."""
    geud_feature: str
    """Feature column holding the structure's gEUD after the evaluation phase, Gy."""
    alpha_beta_gy: float
    """α/β of the tissue, Gy (> 0)."""
    geud_a: float
    """gEUD exponent a (negative for targets, 1 for a parallel organ's mean dose)."""
    threshold_gy: float
    """LQL transition dose D_T, Gy; ``inf`` for plain LQ."""
    geud_norm_min_gy: float
    """Adapted gEUD mapped to ĝ = 0 by the fixed min–max normalisation, Gy."""
    geud_norm_max_gy: float
    """Adapted gEUD mapped to ĝ = 1, Gy (> ``geud_norm_min_gy``)."""


@dataclass(frozen=True)
class Goal:
    """A clinical goal on (TCP, NTCP); meeting it adds ``bonus`` to the reward."""

    name: str
    """Identifier, e.g. ``"population"``."""
    label: str
    """Human-readable description."""
    tcp_min: float
    """Goal requires tcp > tcp_min (probability, 0–1)."""
    ntcp_max: float
    """Goal requires ntcp < ntcp_max (probability, 0–1)."""
    bonus: float
    """Reward bonus when this goal is the first one met."""


@dataclass(frozen=True)
class Feature:
    """One patient feature of the outcome network, with its accepted range."""

    name: str
    """Column name, unit-suffixed."""
    label: str
    """Human-readable name."""
    unit: str
    """Unit shown to users."""
    role: str
    """``"dosimetric"`` (moves with the adaptive dose) or ``"covariate"`` (measured, fixed)."""
    kind: str
    """``"continuous"``, ``"genotype"`` (0/1/2 minor alleles) or ``"ordinal"`` (integer score)."""
    min: float
    """Smallest accepted value (inclusive)."""
    max: float
    """Largest accepted value (inclusive)."""
    description: str
    """One-sentence definition."""
    scale: str = "linear"
    """``"log"`` for right-skewed positive measurements (cytokines, AFP, volumes, SUV): models
    standardise log(1 + x) instead of x."""

    @property
    def integer(self) -> bool:
        """True when only whole numbers are valid."""
        return self.kind in ("genotype", "ordinal")


@dataclass(frozen=True)
class Protocol:
    """A response-adaptive treatment protocol."""

    name: str
    """Identifier (``"nsclc"`` or ``"hcc"``)."""
    label: str
    """Human-readable name."""
    n_eval_fractions: int
    """Fractions in the evaluation phase (before the mid-treatment assessment)."""
    n_adapt_fractions: int
    """Fractions in the adaptive phase."""
    break_days: int
    """Days of treatment break between the phases (0 = none)."""
    dose_eval_min_gy: float
    """Smallest accepted evaluation-phase dose per fraction, Gy."""
    dose_eval_max_gy: float
    """Largest accepted evaluation-phase dose per fraction, Gy."""
    dose_grid_gy: tuple[float, ...]
    """Candidate adaptive doses per fraction, Gy, ascending."""
    id_columns: tuple[str, ...]
    """Columns that identify one row (a patient, or a patient's tumour site)."""
    target: Structure
    """Tumour structure (drives TCP)."""
    oar: Structure
    """Organ at risk (drives NTCP)."""
    goals: tuple[Goal, ...]
    """Goals in priority order: the first one met sets the bonus."""
    features: tuple[Feature, ...]
    """Outcome-network features, in network node order."""
    dag_edges: tuple[tuple[str, str], ...]
    """Directed edges (parent, child) over features and the two outcome names."""
    plan: PlanSpec | None = None
    """How plans are imported (structure roles, dosimetric features from DVHs, constraints;
    :mod:`engine.core.protocols.plan`); None when the protocol has no ``[plan]`` section."""

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def outcome_names(self) -> tuple[str, str]:
        return (self.target.outcome, self.oar.outcome)

    def goal(self, name: str | None) -> Goal | None:
        """The goal called ``name``; None for None or a name the protocol does not define."""
        return next((g for g in self.goals if g.name == name), None)

    def goal_met_text(self, name: str | None) -> str:
        """Short wording of a goal result, e.g. ``"population goal met"``; ``"no goal met"`` for
        None and for a name the protocol does not define (never claims an unknown goal)."""
        goal = self.goal(name)
        return f"{goal.name} goal met" if goal else "no goal met"

    def goal_met_label(self, name: str | None) -> str:
        """Long wording of a goal result (the goal's label); ``"no goal met"`` as
        :meth:`goal_met_text`."""
        goal = self.goal(name)
        return goal.label if goal else "no goal met"

    def feature(self, name: str) -> Feature:
        for feat in self.features:
            if feat.name == name:
                return feat
        raise KeyError(f"protocol {self.name!r} has no feature {name!r}")

    def dose_grid(self) -> np.ndarray:
        """Candidate adaptive doses per fraction, Gy, shape [n_doses]."""
        return np.asarray(self.dose_grid_gy, dtype=np.float64)

    def feature_edges(self) -> tuple[tuple[str, str], ...]:
        """DAG edges between features only (outcome nodes removed), for the outcome networks."""
        names = set(self.feature_names)
        return tuple((a, b) for a, b in self.dag_edges if a in names and b in names)


def _structure(raw: dict) -> Structure:
    return Structure(
        **{
            k: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v)
            for k, v in raw.items()
        }
    )


def _grid(min_gy: float, max_gy: float, step_gy: float) -> tuple[float, ...]:
    n = round((max_gy - min_gy) / step_gy)
    if not math.isclose(min_gy + n * step_gy, max_gy, abs_tol=1e-9):
        raise ValueError(
            f"dose grid {min_gy}–{max_gy} Gy is not a whole number of {step_gy} Gy steps"
        )
    # Rounded so that grid values print as the clinician types them (2.3, not 2.3000000000000003).
    return tuple(round(min_gy + i * step_gy, 6) for i in range(n + 1))


def _validate(p: Protocol) -> None:
    names = p.feature_names
    if len(set(names)) != len(names):
        raise ValueError(f"protocol {p.name}: duplicate feature names")
    for s in (p.target, p.oar):
        if s.geud_feature not in names:
            raise ValueError(f"protocol {p.name}: {s.name} gEUD feature {s.geud_feature} missing")
        if not s.geud_norm_max_gy > s.geud_norm_min_gy:
            raise ValueError(f"protocol {p.name}: {s.name} normalisation range is empty")
    nodes = set(names) | set(p.outcome_names)
    for a, b in p.dag_edges:
        if a not in nodes or b not in nodes:
            raise ValueError(f"protocol {p.name}: DAG edge {a} → {b} names an unknown node")
    _check_acyclic(p.name, nodes, p.dag_edges)


def _check_acyclic(name: str, nodes: set[str], edges: tuple[tuple[str, str], ...]) -> None:
    indegree = dict.fromkeys(nodes, 0)
    for _, b in edges:
        indegree[b] += 1
    ready = [n for n, d in indegree.items() if d == 0]
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for a, b in edges:
            if a == node:
                indegree[b] -= 1
                if indegree[b] == 0:
                    ready.append(b)
    if seen != len(nodes):
        raise ValueError(f"protocol {name}: the feature graph has a cycle")


@cache
def load_protocol(name: str) -> Protocol:
    """Load and validate ``engine/core/protocols/<name>.toml``; ``name`` in
    :data:`PROTOCOL_NAMES`."""
    if name not in PROTOCOL_NAMES:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOL_NAMES)}")
    return protocol_from_dict(
        tomllib.loads((PROTOCOLS_DIR / f"{name}.toml").read_text(encoding="utf-8")))


def protocol_from_dict(raw: dict[str, Any]) -> Protocol:
    """Build and validate a protocol from its parsed TOML (a ``ValueError`` names what is
    wrong)."""
    protocol = Protocol(
        name=raw["name"],
        label=raw["label"],
        n_eval_fractions=int(raw["n_eval_fractions"]),
        n_adapt_fractions=int(raw["n_adapt_fractions"]),
        break_days=int(raw["break_days"]),
        dose_eval_min_gy=float(raw["dose_eval_min_gy"]),
        dose_eval_max_gy=float(raw["dose_eval_max_gy"]),
        dose_grid_gy=_grid(
            float(raw["dose_grid_min_gy"]),
            float(raw["dose_grid_max_gy"]),
            float(raw["dose_grid_step_gy"]),
        ),
        id_columns=tuple(raw["id_columns"]),
        target=_structure(raw["target"]),
        oar=_structure(raw["oar"]),
        goals=tuple(Goal(**g) for g in raw["goals"]),
        features=tuple(
            Feature(**{**f, "min": float(f["min"]), "max": float(f["max"])})
            for f in raw["features"]
        ),
        dag_edges=tuple((a, b) for a, b in raw["dag_edges"]),
    )
    _validate(protocol)
    if "plan" in raw:
        protocol = replace(protocol, plan=plan_spec(raw["plan"], protocol))
    return protocol
