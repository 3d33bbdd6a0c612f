"""The protocol's dose constraints checked on a plan: value, pass/fail and margin, with sources.

A constraint (``[[plan.constraints]]``) is a DVH metric of a role's structure compared with a limit,
in physical dose or in EQD2 with the role's α/β. It is checked on the dose of the imported plan
(all its fractions). A constraint defined for other fraction numbers (an SBRT limit in 3
fractions on a 5-fraction plan), a role the plan has no structure for, or a cm³ metric on a DVH
given in % only, is listed as not checked, with the reason — never as passed.

The margin is in the limit's unit and positive when the plan passes with room: limit − value for
``<=``, value − limit for ``>=``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.core.protocols.plan import DoseConstraint, PlanSpec
from engine.dvh.dvh import DVH
from engine.dvh.roles import RoleAssignment

__all__ = ["ConstraintResult", "check_constraints"]


@dataclass(frozen=True)
class ConstraintResult:
    """One constraint checked (or not) on the plan."""

    constraint: DoseConstraint
    """The protocol's constraint."""
    structure: str | None
    """The structure checked (None when the role has none)."""
    value: float | None
    """The metric's value in the limit's unit; None when not checked."""
    passed: bool | None
    """Whether the plan meets the limit; None when not checked (see ``note``)."""
    margin: float | None
    """Room to the limit in its unit, positive when passed; None when not checked."""
    note: str | None
    """Why the constraint was not checked, else None."""

    @property
    def status(self) -> str:
        """``"met"``, ``"not met"`` or ``"not checked"`` (the words the app and report show)."""
        if self.passed is None:
            return "not checked"
        return "met" if self.passed else "not met"

    def display(self) -> dict[str, str]:
        """The row of a constraint table as text: ``constraint``, ``structure``, ``value``,
        ``limit``, ``margin`` (signed), ``status``, ``note`` and ``source`` — one wording for the
        app, the report and the command line (values to 2 decimals with their unit; EQD2 said)."""
        c = self.constraint
        unit = f" {c.unit}"
        eqd2 = " EQD2" if c.dose == "eqd2" else ""
        sign = "≤" if c.comparison == "<=" else "≥"
        return {
            "constraint": c.label,
            "structure": self.structure or "–",
            "value": "–" if self.value is None else f"{self.value:.2f}{unit}{eqd2}",
            "limit": f"{sign} {c.limit:g}{unit}{eqd2}",
            "margin": "–" if self.margin is None else f"{self.margin:+.2f}{unit}",
            "status": self.status,
            "note": self.note or "",
            "source": c.source,
        }

    def to_dict(self) -> dict:
        c = self.constraint
        return {"name": c.name, "label": c.label, "role": c.role, "structure": self.structure,
                "metric": c.metric.text, "dose": c.dose, "comparison": c.comparison,
                "limit": c.limit, "unit": c.unit, "value": self.value, "passed": self.passed,
                "margin": self.margin, "plan_fractions": list(c.plan_fractions),
                "source": c.source, "note": self.note}


def check_constraints(spec: PlanSpec, dvhs: Mapping[str, DVH],
                      roles: Mapping[str, RoleAssignment], n_plan_fractions: int
                      ) -> list[ConstraintResult]:
    """Check every constraint of ``spec`` on the plan.

    Args:
        spec: the protocol's plan section.
        dvhs: physical-dose DVH of the plan by role (roles without a structure absent).
        roles: the role assignments.
        n_plan_fractions: fractions the plan's dose covers (EQD2, applicability).
    """
    out = []
    for c in spec.constraints:
        structure = roles[c.role].structure if c.role in roles else None
        note = None
        if c.plan_fractions and n_plan_fractions not in c.plan_fractions:
            counts = ", ".join(str(n) for n in c.plan_fractions)
            note = (f"defined for plans of {counts} fraction(s); this plan has "
                    f"{n_plan_fractions}")
        elif c.role not in dvhs:
            note = f"no structure for role {c.role}"
        if note:
            out.append(ConstraintResult(c, structure, None, None, None, note))
            continue
        dvh = dvhs[c.role]
        if c.dose == "eqd2":
            dvh = dvh.eqd2(n_plan_fractions, roles[c.role].alpha_beta_gy)
        value = dvh.metric(c.metric)
        if value is None:
            out.append(ConstraintResult(c, structure, None, None, None,
                                        f"{c.metric.text} needs absolute volumes (cm³), which "
                                        "the DVH file does not give"))
            continue
        margin = c.limit - value if c.comparison == "<=" else value - c.limit
        out.append(ConstraintResult(c, structure, value, margin >= 0, margin, None))
    return out
