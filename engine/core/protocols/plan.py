"""A protocol's plan-import section (``[plan]`` in the TOML): structure roles, how each dosimetric
feature is computed from a plan's DVHs, and the dose constraints checked on the plan.

Everything a new protocol needs to import plans is data here, read by :func:`plan_spec` and
checked against the rest of the protocol (:class:`~engine.core.protocols.Protocol`): a bad entry
is refused with a ``ValueError`` that names the entry, the key, the value and what is accepted.
The engine that uses it is :mod:`engine.dvh`.

The DVH metric language of the constraints (:class:`DVHMetric`, :func:`parse_metric`) lives here
too, because it is part of what a protocol file may say:

=============  ==================================================================  ======
metric         meaning                                                             unit
=============  ==================================================================  ======
``mean``       mean dose                                                           Gy
``max``        near-maximum dose D0.03cc (the point maximum without absolute       Gy
               volumes)
``min``        minimum dose                                                        Gy
``D<x>%``      dose received by the hottest x % of the volume (e.g. ``D98%``)      Gy
``D<x>cc``     dose received by the hottest x cm³ (e.g. ``D0.03cc``)               Gy
``V<x>Gy``     volume receiving at least x Gy, % of the structure (``V20Gy``)      %
``V<x>Gy_cc``  volume receiving at least x Gy, cm³                                 cm³
``CV<x>Gy``    critical volume: cm³ receiving *less* than x Gy (``CV15Gy``)        cm³
=============  ==================================================================  ======
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.core.config import check_choice, check_range

if TYPE_CHECKING:
    from engine.core.protocols import Protocol

__all__ = [
    "COMPARISONS",
    "DOSE_KINDS",
    "PHASES",
    "QUANTITIES",
    "DVHMetric",
    "DoseConstraint",
    "PlanFeature",
    "PlanRole",
    "PlanSpec",
    "parse_metric",
    "plan_markdown",
    "plan_spec",
]

PHASES = ("evaluation", "plan")
"""Dose a feature is computed for: ``evaluation`` scales the plan's dose to the protocol's
evaluation fractions (× n_eval / n_plan_fractions); ``plan`` takes the plan's dose as it is."""
COMPARISONS = ("<=", ">=")
"""A constraint passes when ``value <= limit`` or ``value >= limit`` (limits are inclusive)."""
DOSE_KINDS = ("physical", "eqd2")
"""Dose a constraint is checked in: physical dose, or EQD2 with the role's α/β (pure LQ, dose per
fraction of each voxel = its dose / the plan's fractions)."""

_METRIC_PATTERNS: tuple[tuple[str, str, str], ...] = (
    (r"mean", "mean", "Gy"),
    (r"max", "max", "Gy"),
    (r"min", "min", "Gy"),
    (r"D(?P<x>\d+(?:\.\d+)?)%", "dose_at_percent", "Gy"),
    (r"D(?P<x>\d+(?:\.\d+)?)cc", "dose_at_cc", "Gy"),
    (r"V(?P<x>\d+(?:\.\d+)?)Gy", "volume_percent", "%"),
    (r"V(?P<x>\d+(?:\.\d+)?)Gy_cc", "volume_cc", "cm³"),
    (r"CV(?P<x>\d+(?:\.\d+)?)Gy", "spared_cc", "cm³"),
)
METRIC_HELP = "mean, max, min, D<x>%, D<x>cc, V<x>Gy, V<x>Gy_cc or CV<x>Gy (e.g. V20Gy, D98%)"
"""The accepted metric forms, as quoted in refusals."""


@dataclass(frozen=True)
class DVHMetric:
    """One DVH metric, parsed from its text (see the module docstring for the forms)."""

    text: str
    """The metric as written, e.g. ``"V20Gy"``."""
    kind: str
    """``mean``, ``max``, ``min``, ``dose_at_percent``, ``dose_at_cc``, ``volume_percent``,
    ``volume_cc`` or ``spared_cc``."""
    x: float | None
    """The number in the metric (a volume for ``D…``, a dose in Gy for ``V…``/``CV…``); None for
    mean, max and min."""
    unit: str
    """Unit of the metric's value: ``"Gy"``, ``"%"`` or ``"cm³"``."""

    @property
    def needs_absolute_volume(self) -> bool:
        """True when the metric needs the structure's volume in cm³ (a DVH in % cannot give it)."""
        return self.kind in ("dose_at_cc", "volume_cc", "spared_cc")


def parse_metric(text: str) -> DVHMetric:
    """Parse a metric such as ``"V20Gy"``, ``"D98%"``, ``"D0.03cc"``, ``"mean"``.

    Raises:
        ValueError: the text is none of the accepted forms, or a percentage is above 100.
    """
    for pattern, kind, unit in _METRIC_PATTERNS:
        match = re.fullmatch(pattern, text.strip())
        if match:
            x = float(match.group("x")) if "x" in match.groupdict() else None
            if kind == "dose_at_percent" and x is not None and not 0 < x <= 100:
                raise ValueError(f"metric {text!r}: the volume must be in (0, 100] %")
            return DVHMetric(text=text.strip(), kind=kind, x=x, unit=unit)
    raise ValueError(f"metric {text!r} is not understood; accepted {METRIC_HELP}")


@dataclass(frozen=True)
class PlanRole:
    """A structure the protocol needs from a plan (the tumour, an organ at risk), found by name."""

    name: str
    """Role identifier, e.g. ``"tumour"``, ``"lung"`` (the key of ``--structure ROLE=NAME``)."""
    label: str
    """Human-readable name, e.g. ``"Lungs minus GTV"``."""
    alpha_beta_gy: float
    """α/β of the tissue for the EQD2 metrics and constraints, Gy (> 0)."""
    names: tuple[str, ...]
    """Structure names (TG-263) tried in order; matched ignoring case, spaces and underscores."""
    derive_from: tuple[tuple[str, ...], ...] = ()
    """When no structure of ``names`` exists: alternatives tried in order, each a list of
    structure names whose union is taken (all of one alternative must exist), e.g.
    ``[["Lungs"], ["Lung_L", "Lung_R"]]``. Empty: the role cannot be built."""
    derive_minus: tuple[str, ...] = ()
    """Roles whose structures are subtracted from the union of ``derive_from``, e.g.
    ``["tumour"]`` for lungs minus GTV."""


QUANTITIES = ("geud", "volume_cc")
"""What a plan feature is: a gEUD of the role's dose (every dosimetric feature), or the role's
structure volume in cm³ (a covariate the plan also holds, e.g. the tumour volume)."""


@dataclass(frozen=True)
class PlanFeature:
    """How one feature of the protocol is computed from a plan."""

    feature: str
    """The protocol feature it fills, e.g. ``"tumour_geud_gy"``."""
    role: str
    """The role whose DVH it is computed from."""
    quantity: str = "geud"
    """``"geud"`` (every dosimetric feature) or ``"volume_cc"`` (the structure's volume)."""
    geud_a: float | None = None
    """gEUD exponent a (1 = mean dose, negative for targets); must equal the outcome structure's
    ``geud_a`` when the feature is a structure's gEUD feature. None for a volume."""
    phase: str | None = None
    """``"evaluation"`` (the plan's dose scaled to the evaluation fractions) or ``"plan"``; None
    for a volume."""


@dataclass(frozen=True)
class DoseConstraint:
    """A dose-volume constraint checked on the plan, with the publication it comes from."""

    name: str
    """Identifier, unique in the protocol, e.g. ``"lung_v20"``."""
    label: str
    """Human-readable wording, e.g. ``"Lungs−GTV V20 ≤ 35 %"``."""
    role: str
    """The role whose structure is checked."""
    metric: DVHMetric
    """The DVH metric compared with the limit."""
    comparison: str
    """``"<="`` (value must not exceed the limit) or ``">="``."""
    limit: float
    """The limit, in the metric's unit (Gy, % or cm³)."""
    source: str
    """Where the limit comes from (publication and the endpoint it protects against)."""
    dose: str = "physical"
    """``"physical"`` or ``"eqd2"`` (EQD2 with the role's α/β)."""
    plan_fractions: tuple[int, ...] = ()
    """The numbers of plan fractions the limit is defined for (e.g. ``[3]`` for an SBRT limit
    in 3 fractions); empty: any. A plan with another number is not checked (shown as "not
    applicable")."""

    @property
    def unit(self) -> str:
        """Unit of the limit and the value."""
        return self.metric.unit


@dataclass(frozen=True)
class PlanSpec:
    """A protocol's plan-import section: roles, feature definitions, constraints."""

    roles: tuple[PlanRole, ...]
    """Structures the protocol uses, in resolution order (a role may subtract earlier roles)."""
    features: tuple[PlanFeature, ...]
    """One entry per dosimetric feature of the protocol."""
    constraints: tuple[DoseConstraint, ...]
    """Constraints checked on every imported plan, in display order."""
    default_alpha_beta_gy: float
    """α/β of structures that have no role (EQD2 metrics only), Gy."""
    v_doses_gy: tuple[float, ...]
    """Doses (Gy) of the V<x> metrics listed for every structure (e.g. V5, V20)."""

    def role(self, name: str) -> PlanRole:
        """The role called ``name``; KeyError naming the known roles otherwise."""
        for role in self.roles:
            if role.name == name:
                return role
        raise KeyError(f"unknown role {name!r}; roles: {', '.join(self.role_names)}")

    @property
    def role_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.roles)

    @property
    def required_roles(self) -> tuple[str, ...]:
        """Roles a dosimetric feature needs (the import is refused without them), with the roles
        they subtract, in resolution order."""
        needed = {f.role for f in self.features if f.quantity == "geud"}
        changed = True
        while changed:
            extra = {m for r in self.roles if r.name in needed for m in r.derive_minus}
            changed = not extra <= needed
            needed |= extra
        return tuple(r.name for r in self.roles if r.name in needed)


# --------------------------------------------------------------------------------------------
# Reading and checking the TOML section


def _text(where: str, raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}.{key} = {value!r}; expected non-empty text")
    return value


def _names(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{where} = {value!r}; expected a list of structure names")
    return tuple(value)


def _known_keys(where: str, raw: dict[str, Any], keys: set[str]) -> None:
    unknown = sorted(set(raw) - keys)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; accepted "
                         f"{', '.join(sorted(keys))}")


def _role(raw: dict[str, Any], index: int) -> PlanRole:
    where = f"plan.roles[{index}]"
    _known_keys(where, raw, {"name", "label", "alpha_beta_gy", "names", "derive_from",
                             "derive_minus"})
    name = _text(where, raw, "name")
    where = f"plan.roles[{name}]"
    check_range(f"{where}.alpha_beta_gy", raw.get("alpha_beta_gy"), 0.0, 100.0, lo_open=True)
    derive_from = raw.get("derive_from", [])
    if not isinstance(derive_from, list):
        raise ValueError(f"{where}.derive_from = {derive_from!r}; expected a list of lists of "
                         "structure names")
    alternatives = tuple(_names(f"{where}.derive_from", alt) for alt in derive_from)
    minus = _names(f"{where}.derive_minus", raw.get("derive_minus", []))
    if minus and not alternatives:
        raise ValueError(f"{where}.derive_minus is set but derive_from is empty: nothing to "
                         "subtract from")
    return PlanRole(
        name=name, label=_text(where, raw, "label"),
        alpha_beta_gy=float(raw["alpha_beta_gy"]),
        names=_names(f"{where}.names", raw.get("names")), derive_from=alternatives,
        derive_minus=minus,
    )


def _feature(raw: dict[str, Any], index: int) -> PlanFeature:
    where = f"plan.features[{index}]"
    _known_keys(where, raw, {"feature", "role", "quantity", "geud_a", "phase"})
    name = _text(where, raw, "feature")
    where = f"plan.features[{name}]"
    quantity = raw.get("quantity", "geud")
    check_choice(f"{where}.quantity", quantity, QUANTITIES)
    role = _text(where, raw, "role")
    if quantity == "volume_cc":
        extra = sorted({"geud_a", "phase"} & set(raw))
        if extra:
            raise ValueError(f"{where}: {', '.join(extra)} apply to a gEUD, not to "
                             "quantity volume_cc")
        return PlanFeature(feature=name, role=role, quantity=quantity)
    check_range(f"{where}.geud_a", raw.get("geud_a"), -100.0, 100.0)
    if raw["geud_a"] == 0:
        raise ValueError(f"{where}.geud_a = 0 is undefined; accepted a non-zero number "
                         "(1 for the mean dose)")
    check_choice(f"{where}.phase", raw.get("phase"), PHASES)
    return PlanFeature(feature=name, role=role, quantity=quantity,
                       geud_a=float(raw["geud_a"]), phase=raw["phase"])


def _constraint(raw: dict[str, Any], index: int) -> DoseConstraint:
    where = f"plan.constraints[{index}]"
    _known_keys(where, raw, {"name", "label", "role", "metric", "comparison", "limit", "source",
                             "dose", "plan_fractions"})
    name = _text(where, raw, "name")
    where = f"plan.constraints[{name}]"
    try:
        metric = parse_metric(_text(where, raw, "metric"))
    except ValueError as err:
        raise ValueError(f"{where}.metric: {err}") from err
    check_choice(f"{where}.comparison", raw.get("comparison"), COMPARISONS)
    hi = 100.0 if metric.unit == "%" else math.inf
    check_range(f"{where}.limit", raw.get("limit"), 0.0, hi)
    dose = raw.get("dose", "physical")
    check_choice(f"{where}.dose", dose, DOSE_KINDS)
    fractions = raw.get("plan_fractions", [])
    if not isinstance(fractions, list):
        raise ValueError(f"{where}.plan_fractions = {fractions!r}; expected a list of whole "
                         "numbers ≥ 1")
    for n in fractions:
        check_range(f"{where}.plan_fractions", n, 1, 1000, integer=True)
    return DoseConstraint(
        name=name, label=_text(where, raw, "label"), role=_text(where, raw, "role"),
        metric=metric, comparison=raw["comparison"], limit=float(raw["limit"]),
        source=_text(where, raw, "source"), dose=dose, plan_fractions=tuple(fractions),
    )


def plan_spec(raw: dict[str, Any], protocol: Protocol) -> PlanSpec:
    """Read and check the ``[plan]`` section of ``protocol``'s TOML.

    Checks, besides each value's type and range: role, feature and constraint names are unique;
    every role a feature, constraint or ``derive_minus`` names exists (and no role subtracts
    itself, directly or through others); every dosimetric feature of the protocol has exactly one
    feature entry and nothing else has one; a structure's gEUD feature uses that structure's
    ``geud_a`` and its role that structure's α/β (one number, one meaning).

    Raises:
        ValueError: naming ``plan.<section>[<name>].<key>``, the value and what is accepted.
    """
    _known_keys("plan", raw, {"default_alpha_beta_gy", "v_doses_gy", "roles", "features",
                              "constraints"})
    check_range("plan.default_alpha_beta_gy", raw.get("default_alpha_beta_gy"), 0.0, 100.0,
                lo_open=True)
    v_doses = raw.get("v_doses_gy", [])
    if not isinstance(v_doses, list):
        raise ValueError(f"plan.v_doses_gy = {v_doses!r}; expected a list of doses in Gy")
    for d in v_doses:
        check_range("plan.v_doses_gy", d, 0.0, 1000.0, lo_open=True)
    roles = tuple(_role(r, i) for i, r in enumerate(raw.get("roles", [])))
    features = tuple(_feature(f, i) for i, f in enumerate(raw.get("features", [])))
    constraints = tuple(_constraint(c, i) for i, c in enumerate(raw.get("constraints", [])))
    spec = PlanSpec(roles=roles, features=features, constraints=constraints,
                    default_alpha_beta_gy=float(raw["default_alpha_beta_gy"]),
                    v_doses_gy=tuple(float(d) for d in v_doses))
    _check_spec(spec, protocol)
    return spec


def _unique(what: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"plan.{what}: {', '.join(dupes)} appear(s) more than once")


def _check_spec(spec: PlanSpec, p: Protocol) -> None:
    role_names = list(spec.role_names)
    _unique("roles", role_names)
    _unique("features", [f.feature for f in spec.features])
    _unique("constraints", [c.name for c in spec.constraints])
    known = ", ".join(role_names)
    for role in spec.roles:
        for minus in role.derive_minus:
            if minus not in role_names:
                raise ValueError(f"plan.roles[{role.name}].derive_minus names unknown role "
                                 f"{minus!r}; roles: {known}")
            # Resolution order: a role may subtract only roles listed before it (no cycles).
            if role_names.index(minus) >= role_names.index(role.name):
                raise ValueError(f"plan.roles[{role.name}].derive_minus = {minus!r}: a role "
                                 "may subtract only roles listed before it")
    for where, role in ([(f"plan.features[{f.feature}].role", f.role) for f in spec.features]
                        + [(f"plan.constraints[{c.name}].role", c.role)
                           for c in spec.constraints]):
        if role not in role_names:
            raise ValueError(f"{where} = {role!r} is not a role; roles: {known}")
    dosimetric = [f.name for f in p.features if f.role == "dosimetric"]
    planned = [f.feature for f in spec.features]
    for entry in spec.features:
        name = entry.feature
        if entry.quantity == "geud" and name not in dosimetric:
            raise ValueError(f"plan.features[{name}]: not a dosimetric feature of protocol "
                             f"{p.name}; dosimetric features: {', '.join(dosimetric)}")
        if entry.quantity == "volume_cc" and (name not in p.feature_names or p.feature(
                name).unit != "cm³"):
            raise ValueError(f"plan.features[{name}]: quantity volume_cc fills a feature in "
                             f"cm³ of protocol {p.name}; {name} is not one")
    missing = [n for n in dosimetric if n not in planned]
    if missing:
        raise ValueError(f"plan.features: dosimetric feature(s) {', '.join(missing)} of protocol "
                         f"{p.name} have no entry; a plan could not fill them")
    for structure in (p.target, p.oar):
        entry = next(f for f in spec.features if f.feature == structure.geud_feature)
        if entry.geud_a != structure.geud_a:
            raise ValueError(
                f"plan.features[{entry.feature}].geud_a = {entry.geud_a:g} differs from "
                f"{structure.name}.geud_a = {structure.geud_a:g}; the feature must be computed "
                "as the outcome model defines it")
        ab = spec.role(entry.role).alpha_beta_gy
        if ab != structure.alpha_beta_gy:
            raise ValueError(
                f"plan.roles[{entry.role}].alpha_beta_gy = {ab:g} differs from "
                f"{structure.name}.alpha_beta_gy = {structure.alpha_beta_gy:g} (the tissue of "
                f"feature {entry.feature})")


def plan_markdown(protocol: Protocol) -> str:
    """The protocol's plan section as markdown (roles, features, constraints with sources), as
    docs/plan-import.md shows it; a unit test keeps the page equal to this."""
    spec = protocol.plan
    if spec is None:
        return f"Protocol {protocol.name} defines no plan import.\n"
    lines = [f"**{protocol.label}** (`--protocol {protocol.name}`)", "",
             "| role | structure names tried | built otherwise as | α/β |", "|---|---|---|---|"]
    for r in spec.roles:
        built = ""
        if r.derive_from:
            built = " or ".join("+".join(a) for a in r.derive_from)
            if r.derive_minus:
                built += " minus the " + ", ".join(r.derive_minus) + " structure"
        lines.append(f"| `{r.name}` ({r.label}) | {', '.join(r.names)} | {built or '–'} | "
                     f"{r.alpha_beta_gy:g} Gy |")
    lines += ["", "| feature | computed as |", "|---|---|"]
    for f in spec.features:
        if f.quantity == "volume_cc":
            lines.append(f"| `{f.feature}` | volume of the `{f.role}` structure, cm³ |")
            continue
        what = "mean dose" if f.geud_a == 1 else f"gEUD (a = {f.geud_a:g})"
        phase = (f"× {protocol.n_eval_fractions} / plan fractions (the "
                 f"{protocol.n_eval_fractions} evaluation fractions)" if f.phase == "evaluation"
                 else "the plan's dose")
        lines.append(f"| `{f.feature}` | {what} of the `{f.role}` structure, {phase} |")
    lines += ["", "| constraint | metric | limit | fractions | source |", "|---|---|---|---|---|"]
    for c in spec.constraints:
        limit = f"{c.comparison.replace('<=', '≤').replace('>=', '≥')} {c.limit:g} {c.unit}"
        if c.dose == "eqd2":
            limit += " (EQD2)"
        fractions = ", ".join(str(n) for n in c.plan_fractions) or "any"
        lines.append(f"| {c.label} | `{c.metric.text}` of `{c.role}` | {limit} | {fractions} | "
                     f"{c.source} |")
    return "\n".join(lines) + "\n"
