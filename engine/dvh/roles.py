"""Which structure of a plan plays each role of the protocol (the tumour, the lungs minus GTV, …).

A role is filled, in order of preference, by

1. the user's choice (``--structure lung=NAME``, a drop-down in the app): a structure name, or a
   TG-263-style expression of names — ``Lung_L+Lung_R-GTV`` is the union of Lung_L and Lung_R
   minus GTV (used only when no structure has that exact name);
2. the first of the role's TG-263 ``names`` the plan holds, matched ignoring case, spaces and
   underscores;
3. for a role with ``derive_from`` (lungs minus GTV): the first alternative whose structures all
   exist, minus the structures of the ``derive_minus`` roles — said in a warning, since the
   planning system did not define it. A DVH table cannot be combined this way (no geometry).

A role a feature needs and that none of these fills refuses the import, naming the role, what was
looked for and the structures the plan holds; a role only a constraint needs leaves that
constraint unchecked, with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.core.protocols.plan import PlanRole, PlanSpec
from engine.dvh.sources import PlanError

__all__ = ["RoleAssignment", "assign_roles", "normalise_name", "role_candidates"]


def normalise_name(name: str) -> str:
    """A structure name compared ignoring case, spaces and underscores (``Lung_L`` = ``lung l``
    = ``LUNGL``)."""
    return re.sub(r"[\s_]+", "", name.casefold())


@dataclass(frozen=True)
class RoleAssignment:
    """The structure chosen for one role."""

    role: str
    """Role name, e.g. ``"lung"``."""
    label: str
    """Role label, e.g. ``"Lungs minus GTV"``."""
    structure: str
    """The structure's name as shown: a plan structure, or an expression like ``Lungs-GTV``."""
    plus: tuple[str, ...]
    """Plan structures whose union it is (one for a plain structure)."""
    minus: tuple[str, ...]
    """Plan structures subtracted (empty for a plain structure)."""
    how: str
    """``"chosen"`` (the user's choice), ``"name"`` (a TG-263 name) or ``"built"`` (derived)."""
    alpha_beta_gy: float
    """The role's α/β, Gy."""

    @property
    def derived(self) -> bool:
        """True when the structure is built from others (a union or a difference)."""
        return len(self.plus) > 1 or bool(self.minus)

    def to_dict(self) -> dict:
        return {"label": self.label, "structure": self.structure, "how": self.how,
                "plus": list(self.plus), "minus": list(self.minus),
                "alpha_beta_gy": self.alpha_beta_gy}


def _find(name: str, available: Sequence[str]) -> str | None:
    """The available structure called ``name`` (exactly, else ignoring case/spaces/_)."""
    if name in available:
        return name
    key = normalise_name(name)
    return next((a for a in available if normalise_name(a) == key), None)


def _expression(expr: str, available: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``A+B-C`` → ((A, B), (C,)) with each term an available structure; ValueError naming the
    first term that is not one."""
    tokens = re.split(r"\s*([+-])\s*", expr.strip())
    plus, minus = [], []
    sign = "+"
    for token in tokens:
        if token in ("+", "-"):
            sign = token
            continue
        found = _find(token, available)
        if found is None:
            raise ValueError(token)
        (plus if sign == "+" else minus).append(found)
    if not plus:
        raise ValueError(expr)
    return tuple(plus), tuple(minus)


def _display(plus: Sequence[str], minus: Sequence[str]) -> str:
    return "+".join(plus) + "".join(f"-{m}" for m in minus)


def _listing(available: Sequence[str]) -> str:
    return ", ".join(available) if available else "(none)"


def assign_roles(spec: PlanSpec, available: Sequence[str], chosen: Mapping[str, str] | None,
                 *, can_build: bool, source: str) -> tuple[dict[str, RoleAssignment], list[str]]:
    """Fill every role the plan can fill.

    Args:
        spec: the protocol's plan section.
        available: the plan's structure names (those that can give a DVH), in plan order.
        chosen: role → structure name or expression chosen by the user.
        can_build: whether unions and differences can be built (DICOM: yes; DVH table: no).
        source: the file the structures come from, for messages (e.g. ``"RS.dcm"``).

    Returns:
        The assignments of the roles filled, by role, and warnings.

    Raises:
        PlanError: an unknown role or structure was chosen, a combination was chosen for a DVH
            table, or a role a feature needs cannot be filled.
    """
    chosen = dict(chosen or {})
    unknown = [r for r in chosen if r not in spec.role_names]
    if unknown:
        raise PlanError(f"unknown role {unknown[0]!r}; the roles of this protocol are "
                        f"{', '.join(spec.role_names)}")
    out: dict[str, RoleAssignment] = {}
    warnings: list[str] = []
    required = set(spec.required_roles)
    for role in spec.roles:
        if role.name in chosen:
            out[role.name] = _chosen(role, chosen[role.name], available, can_build, source)
            continue
        assignment, note = _automatic(role, out, available, can_build)
        if assignment is None:
            looked = _looked_for(role)
            message = (f"no structure for role {role.name} ({role.label}) in {source}: looked for "
                       f"{looked}; structures found: {_listing(available)}; choose one with "
                       f"--structure {role.name}=NAME")
            if role.name in required:
                raise PlanError(message)
            warnings.append(f"no structure for role {role.name} ({role.label}): its constraints "
                            "are not checked")
            continue
        out[role.name] = assignment
        if note:
            warnings.append(note)
    return out, warnings


def _chosen(role: PlanRole, value: str, available: Sequence[str], can_build: bool,
            source: str) -> RoleAssignment:
    found = _find(value, available)
    if found is not None:
        return RoleAssignment(role.name, role.label, found, (found,), (), "chosen",
                              role.alpha_beta_gy)
    try:
        plus, minus = _expression(value, available)
    except ValueError as err:
        raise PlanError(f"structure {str(err)!r} chosen for role {role.name} is not in {source}; "
                        f"structures found: {_listing(available)}") from err
    if not can_build:
        raise PlanError(f"{value!r} chosen for role {role.name} combines structures, which a DVH "
                        f"table ({source}) cannot do; export that structure's DVH from the "
                        "planning system")
    return RoleAssignment(role.name, role.label, _display(plus, minus), plus, minus, "chosen",
                          role.alpha_beta_gy)


def _automatic(role: PlanRole, filled: Mapping[str, RoleAssignment], available: Sequence[str],
               can_build: bool) -> tuple[RoleAssignment | None, str | None]:
    matches = list(dict.fromkeys(f for n in role.names if (f := _find(n, available))))
    if matches:
        note = None
        if len(matches) > 1:  # e.g. GTV1 and GTV2 of a multi-site HCC plan
            note = (f"several structures could be role {role.name} ({', '.join(matches)}): "
                    f"{matches[0]} is used; choose another with --structure "
                    f"{role.name}=NAME")
        return RoleAssignment(role.name, role.label, matches[0], (matches[0],), (), "name",
                              role.alpha_beta_gy), note
    if not can_build or not role.derive_from:
        return None, None
    if any(m not in filled for m in role.derive_minus):
        return None, None
    for alternative in role.derive_from:
        found = [_find(n, available) for n in alternative]
        if all(found):
            plus = tuple(f for f in found if f is not None)
            minus = tuple(s for m in role.derive_minus for s in filled[m].plus)
            shown = _display(plus, minus)
            what = " and ".join(plus) if len(plus) > 1 else plus[0]
            note = (f"the plan has no {role.names[0]}: role {role.name} uses {shown}, built as "
                    f"the union of {what}" if len(plus) > 1 else
                    f"the plan has no {role.names[0]}: role {role.name} uses {shown}, built as "
                    f"{what}")
            note += f" minus {', '.join(minus)}" if minus else ""
            return RoleAssignment(role.name, role.label, shown, plus, minus, "built",
                                  role.alpha_beta_gy), note
    return None, None


def _looked_for(role: PlanRole) -> str:
    text = ", ".join(role.names)
    if role.derive_from:
        alternatives = " or ".join("+".join(a) for a in role.derive_from)
        text += f", or {alternatives}"
        if role.derive_minus:
            text += f" minus the {', '.join(role.derive_minus)} structure"
    return text


def role_candidates(spec: PlanSpec, available: Sequence[str],
                    assignments: Mapping[str, RoleAssignment], *, can_build: bool
                    ) -> dict[str, list[str]]:
    """For each role, the choices a drop-down offers: the current assignment first, then the
    structures matching the role's names, the structure it can be built as (DICOM only), then
    every other structure of the plan."""
    out: dict[str, list[str]] = {}
    for role in spec.roles:
        choices: list[str] = []
        if role.name in assignments:
            choices.append(assignments[role.name].structure)
        for name in role.names:
            found = _find(name, available)
            if found and found not in choices:
                choices.append(found)
        if can_build and role.derive_from:
            minus = tuple(s for m in role.derive_minus if m in assignments
                          for s in assignments[m].plus)
            for alternative in role.derive_from:
                found = [_find(n, available) for n in alternative]
                if all(found):
                    shown = _display([f for f in found if f], minus)
                    if shown not in choices:
                        choices.append(shown)
        choices += [a for a in available if a not in choices]
        out[role.name] = choices
    return out
