"""The protocol's features from a plan's DVHs, exactly as the protocol defines them.

Each ``[[plan.features]]`` entry names the feature, the role whose DVH it uses and what it is:

* a **gEUD** (every dosimetric feature) with exponent a (1 = the mean dose) and a phase. gEUD is
  homogeneous of degree 1 in dose, so the gEUD after the evaluation phase is the plan's gEUD ×
  n_eval / n_plan_fractions — assuming, as the outcome models do, that every fraction delivers the
  same dose distribution (DESIGN.md §8). The value is physical dose, as the features are defined
  (docs/virtual-trials.md);
* a **volume** in cm³ of the role's structure (e.g. HCC's ``tumour_volume_cc``), which a DVH in %
  only cannot give (then it is left out, with a warning).

A value outside the feature's accepted range is kept and warned about: the form that receives it
refuses it with its own message, and the warning says what to check.
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
    """One feature computed from the plan."""

    feature: str
    """Feature column, e.g. ``"tumour_geud_gy"``."""
    role: str
    """Role whose DVH it uses."""
    structure: str
    """The structure playing that role."""
    quantity: str
    """``"geud"`` or ``"volume_cc"``."""
    geud_a: float | None
    """gEUD exponent (1 = mean dose); None for a volume."""
    phase: str | None
    """``"evaluation"`` or ``"plan"``; None for a volume."""
    scale: float
    """Dose factor from the plan to the phase (n_eval / n_plan_fractions, or 1; 1 for a
    volume)."""
    plan_value: float
    """The gEUD of the plan's dose (Gy), or the volume (cm³)."""
    value: float
    """The feature in its unit: ``plan_value × scale``."""
    unit: str
    """The feature's unit (``Gy``, ``cm³``)."""
    min: float
    """The protocol's accepted minimum of the feature."""
    max: float
    """The protocol's accepted maximum."""

    @property
    def in_range(self) -> bool:
        return self.min <= self.value <= self.max

    def to_dict(self) -> dict:
        return {"feature": self.feature, "role": self.role, "structure": self.structure,
                "quantity": self.quantity, "geud_a": self.geud_a, "phase": self.phase,
                "scale": self.scale, "plan_value": self.plan_value, "value": self.value,
                "unit": self.unit, "min": self.min, "max": self.max, "in_range": self.in_range}


def plan_features(protocol: Protocol, dvhs: Mapping[str, DVH],
                  roles: Mapping[str, RoleAssignment], n_plan_fractions: int
                  ) -> tuple[list[FeatureValue], list[str]]:
    """Compute every ``[[plan.features]]`` entry of ``protocol`` the plan can give.

    Args:
        protocol: with a ``plan`` section.
        dvhs: physical-dose DVH of the plan (all ``n_plan_fractions``) by role; every role a
            dosimetric feature needs is present.
        roles: the role assignments (for the structure names).
        n_plan_fractions: fractions the plan's dose covers.

    Returns:
        The features in the protocol's order, and warnings (values outside their range, a volume
        the plan cannot give).
    """
    assert protocol.plan is not None
    values: list[FeatureValue] = []
    warnings: list[str] = []
    for entry in protocol.plan.features:
        feat = protocol.feature(entry.feature)
        if entry.quantity == "volume_cc":
            dvh = dvhs.get(entry.role)
            if dvh is None or dvh.total_volume_cc is None:
                why = (f"no structure for role {entry.role}" if dvh is None
                       else "the DVH gives volumes in % only")
                warnings.append(f"{entry.feature} is not filled from the plan: {why}")
                continue
            plan_value, scale, what = dvh.total_volume_cc, 1.0, "its volume"
        else:
            assert entry.geud_a is not None
            scale = (protocol.n_eval_fractions / n_plan_fractions
                     if entry.phase == "evaluation" else 1.0)
            plan_value = dvhs[entry.role].geud_gy(entry.geud_a)
            what = (f"plan gEUD {plan_value:.2f} Gy × {protocol.n_eval_fractions}/"
                    f"{n_plan_fractions} fractions")
        value = FeatureValue(
            feature=entry.feature, role=entry.role, structure=roles[entry.role].structure,
            quantity=entry.quantity, geud_a=entry.geud_a, phase=entry.phase, scale=scale,
            plan_value=plan_value, value=plan_value * scale, unit=feat.unit, min=feat.min,
            max=feat.max)
        values.append(value)
        if not value.in_range:
            warnings.append(
                f"{entry.feature} = {value.value:.2f} {feat.unit} is outside the protocol's "
                f"accepted range {format_number(feat.min)}–{format_number(feat.max)} "
                f"{feat.unit} (from {value.structure}: {what}); check the structure and the "
                "plan's number of fractions")
    return values, warnings
