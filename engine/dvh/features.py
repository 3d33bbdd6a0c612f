"""The protocol's dosimetric features from a plan's DVHs, exactly as the protocol defines them.

Each ``[[plan.features]]`` entry names the feature, the role whose DVH it uses, the gEUD exponent
a (1 = the mean dose) and the phase. gEUD is homogeneous of degree 1 in dose, so the gEUD after
the evaluation phase is the plan's gEUD × n_eval / n_plan_fractions — assuming, as the outcome
models do, that every fraction delivers the same dose distribution (DESIGN.md §8). The value is
physical dose, as the features are defined (docs/virtual-trials.md).

A value outside the feature's accepted range is kept and warned about: the form that receives it
refuses it with its own message, and the warning says what to check (the fractions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.core.protocols import Protocol
from engine.core.tabular import format_number
from engine.dvh.dvh import DVH
from engine.dvh.roles import RoleAssignment

__all__ = ["FeatureValue", "plan_features"]


@dataclass(frozen=True)
class FeatureValue:
    """One dosimetric feature computed from the plan."""

    feature: str
    """Feature column, e.g. ``"tumour_geud_gy"``."""
    role: str
    """Role whose DVH it uses."""
    structure: str
    """The structure playing that role."""
    geud_a: float
    """gEUD exponent (1 = mean dose)."""
    phase: str
    """``"evaluation"`` or ``"plan"``."""
    scale: float
    """Dose factor from the plan to the phase (n_eval / n_plan_fractions, or 1)."""
    plan_gy: float
    """gEUD of the plan's dose, Gy."""
    value_gy: float
    """The feature: ``plan_gy × scale``, Gy."""
    min: float
    """The protocol's accepted minimum of the feature."""
    max: float
    """The protocol's accepted maximum."""

    @property
    def in_range(self) -> bool:
        return self.min <= self.value_gy <= self.max

    def to_dict(self) -> dict:
        return {"feature": self.feature, "role": self.role, "structure": self.structure,
                "geud_a": self.geud_a, "phase": self.phase, "scale": self.scale,
                "plan_gy": self.plan_gy, "value_gy": self.value_gy, "min": self.min,
                "max": self.max, "in_range": self.in_range}


def plan_features(protocol: Protocol, dvhs: Mapping[str, DVH],
                  roles: Mapping[str, RoleAssignment], n_plan_fractions: int
                  ) -> tuple[list[FeatureValue], list[str]]:
    """Compute every ``[[plan.features]]`` entry of ``protocol``.

    Args:
        protocol: with a ``plan`` section.
        dvhs: physical-dose DVH of the plan (all ``n_plan_fractions``) by role.
        roles: the role assignments (for the structure names).
        n_plan_fractions: fractions the plan's dose covers.

    Returns:
        The features in the protocol's order, and warnings for values outside their range.
    """
    assert protocol.plan is not None
    values: list[FeatureValue] = []
    warnings: list[str] = []
    for entry in protocol.plan.features:
        feat = protocol.feature(entry.feature)
        scale = protocol.n_eval_fractions / n_plan_fractions if entry.phase == "evaluation" \
            else 1.0
        plan_gy = dvhs[entry.role].geud_gy(entry.geud_a)
        value = FeatureValue(
            feature=entry.feature, role=entry.role, structure=roles[entry.role].structure,
            geud_a=entry.geud_a, phase=entry.phase, scale=scale, plan_gy=plan_gy,
            value_gy=plan_gy * scale, min=feat.min, max=feat.max)
        values.append(value)
        if not value.in_range:
            warnings.append(
                f"{entry.feature} = {value.value_gy:.2f} Gy is outside the protocol's accepted "
                f"range {format_number(feat.min)}–{format_number(feat.max)} Gy (from "
                f"{value.structure}: plan gEUD {plan_gy:.2f} Gy × {protocol.n_eval_fractions}/"
                f"{n_plan_fractions} fractions); check the structure and the plan's number of "
                "fractions")
    return values, warnings
