"""Importing a plan: DICOM-RT files or a DVH table in, the protocol's dosimetric features, every
structure's DVH metrics and the constraint checks out.

Two steps, so that an app can keep the files of one upload and re-evaluate quickly when the user
picks another structure for a role (DVHs already computed are kept):

* :func:`read_plan` reads and checks the files → :class:`PlanData`;
* :func:`evaluate_plan` assigns the roles, computes the DVHs it needs, the features, the metrics
  and the constraints → :class:`PlanImport`, whose :meth:`~PlanImport.to_dict` is the JSON of
  ``artds dvh features --json``.

:func:`import_plan` does both. Every refusal is a :class:`~engine.dvh.sources.PlanError` naming the
file, the tag or the structure and what was expected; nothing is logged, and no patient name or
id is read from any header.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from engine.core.config import check_range
from engine.core.protocols import Protocol, load_protocol
from engine.core.protocols.plan import parse_metric
from engine.dvh.constraints import ConstraintResult, check_constraints
from engine.dvh.dicom import (
    DoseGrid,
    PlanInfo,
    StructureSet,
    read_rtdose,
    read_rtplan,
    read_rtstruct,
)
from engine.dvh.dvh import DVH
from engine.dvh.features import FeatureValue, plan_features
from engine.dvh.files import DVHTable, read_dvh_file
from engine.dvh.rasterise import RasterConfig, structure_dvh
from engine.dvh.roles import RoleAssignment, assign_roles, role_candidates
from engine.dvh.sources import FileInput, ImportLimits, PlanError

__all__ = [
    "MAX_PLAN_FRACTIONS",
    "ImportConfig",
    "PlanData",
    "PlanImport",
    "StructureSummary",
    "evaluate_plan",
    "import_plan",
    "read_plan",
]

MAX_PLAN_FRACTIONS = 100
"""Most fractions a plan may cover."""
Progress = Callable[[float, str], None]
"""Called with the share of the work done (0–1) and what is being done."""


@dataclass(frozen=True)
class ImportConfig:
    """How a plan is imported."""

    raster: RasterConfig = field(default_factory=RasterConfig)
    """Contour rasterisation and DVH binning."""
    limits: ImportLimits = field(default_factory=ImportLimits)
    """File size limits."""
    all_structures: bool = True
    """DVH metrics of every structure of the plan (True) or only of the roles' structures."""


# --------------------------------------------------------------------------------------------
# Step 1: the files


class PlanData:
    """The files of one plan, read and checked, with the DVHs computed so far.

    Built by :func:`read_plan`. Holds either a dose grid, a structure set and an optional RTPLAN
    (``source == "dicom"``), or a DVH table with an optional RTPLAN (``source == "dvh"``). DVHs are
    computed on demand by :meth:`dvh` and kept (physical dose as stored in the file).
    """

    def __init__(self, *, source: str, files: dict[str, str], dose: DoseGrid | None = None,
                 structures: StructureSet | None = None, plan: PlanInfo | None = None,
                 table: DVHTable | None = None, warnings: Sequence[str] = ()) -> None:
        self.source = source
        """``"dicom"`` or ``"dvh"``."""
        self.files = files
        """File kind (``rtdose``, ``rtstruct``, ``rtplan``, ``dvh``) → display name."""
        self.dose = dose
        self.structures = structures
        self.plan = plan
        self.table = table
        self.warnings = tuple(warnings)
        """Remarks from reading the files."""
        self._dvhs: dict[tuple[tuple[str, ...], tuple[str, ...]], DVH | PlanError] = {}

    @property
    def structure_file(self) -> str:
        """The file the structures come from (RTSTRUCT or DVH table)."""
        return self.files["rtstruct" if self.source == "dicom" else "dvh"]

    @property
    def structure_names(self) -> tuple[str, ...]:
        """The plan's structures, in file order (DICOM: the ROIs that are not points; one with
        a problem — no contours — is refused with that problem when a role needs it)."""
        if self.table is not None:
            return tuple(self.table.dvhs)
        assert self.structures is not None
        return self.structures.names

    def dvh(self, plus: Sequence[str], minus: Sequence[str] = (), *, label: str,
            raster: RasterConfig | None = None) -> DVH:
        """The DVH (dose as stored in the file) of the union of ``plus`` minus ``minus``.

        Raises:
            PlanError: a structure is unknown, has no contours, lies in another frame of
                reference or outside the dose grid; or a combination is asked of a DVH table.
        """
        key = (tuple(plus), tuple(minus))
        if key not in self._dvhs:
            try:
                self._dvhs[key] = self._compute(key[0], key[1], label, raster or RasterConfig())
            except PlanError as err:
                self._dvhs[key] = err
        found = self._dvhs[key]
        if isinstance(found, PlanError):
            raise found
        return found

    def _compute(self, plus: tuple[str, ...], minus: tuple[str, ...], label: str,
                 raster: RasterConfig) -> DVH:
        if self.table is not None:
            if len(plus) != 1 or minus:
                raise PlanError(f"{label}: a DVH table ({self.table.file}) cannot combine "
                                "structures")
            if plus[0] not in self.table.dvhs:
                raise PlanError(f"structure {plus[0]!r} is not in {self.table.file}")
            return self.table.dvhs[plus[0]]
        assert self.structures is not None and self.dose is not None
        rois = []
        for name in (*plus, *minus):
            try:
                roi = self.structures.roi(name)
            except KeyError as err:
                raise PlanError(f"structure {name!r} is not in {self.structures.file}") from err
            if roi.problem:
                raise PlanError(roi.problem)
            if roi.frame_of_reference_uid is None:
                raise PlanError(f"structure {name} in {self.structures.file} has no frame of "
                                "reference (ReferencedFrameOfReferenceUID (3006,0024)); it "
                                "cannot be placed on the dose grid")
            if roi.frame_of_reference_uid != self.dose.frame_of_reference_uid:
                raise PlanError(
                    f"structure {name} in {self.structures.file} is in frame of reference "
                    f"{roi.frame_of_reference_uid}, the dose in {self.dose.file} in "
                    f"{self.dose.frame_of_reference_uid} (FrameOfReferenceUID (0020,0052)); "
                    "export the structures and the dose of the same planning CT")
            rois.append(roi)
        return structure_dvh(self.dose, rois[:len(plus)], rois[len(plus):], label=label,
                             default_thickness_mm=self.structures.default_thickness_mm,
                             config=raster)


def read_plan(*, rtdose: FileInput | None = None, rtstruct: FileInput | None = None,
              rtplan: FileInput | None = None, dvh: FileInput | None = None,
              limits: ImportLimits | None = None) -> PlanData:
    """Read and check a plan's files: RTDOSE + RTSTRUCT (+ RTPLAN), or a DVH table (+ RTPLAN).

    Raises:
        PlanError: a file is missing, refused by its reader (see :mod:`engine.dvh.dicom`,
            :mod:`engine.dvh.files`), or the files do not belong together (frame of reference).
    """
    limits = limits or ImportLimits()
    warnings: list[str] = []
    if dvh is not None and (rtdose is not None or rtstruct is not None):
        raise PlanError("give either a DVH table or the RTDOSE and RTSTRUCT files, not both")
    plan = read_rtplan(rtplan, limits) if rtplan is not None else None
    files: dict[str, str] = {}
    if plan is not None:
        files["rtplan"] = plan.file
    if dvh is not None:
        table = read_dvh_file(dvh, limits)
        files["dvh"] = table.file
        return PlanData(source="dvh", files=files, plan=plan, table=table,
                        warnings=table.warnings)
    if rtdose is None or rtstruct is None:
        missing = " and ".join(k for k, v in (("RTDOSE", rtdose), ("RTSTRUCT", rtstruct))
                               if v is None)
        raise PlanError(f"the {missing} file is missing; a DICOM plan needs the RTDOSE and the "
                        "RTSTRUCT (and the RTPLAN or the number of fractions)")
    dose, dose_warnings = read_rtdose(rtdose, limits)
    warnings += dose_warnings
    structures = read_rtstruct(rtstruct, limits)
    files = {"rtdose": dose.file, "rtstruct": structures.file, **files}
    if structures.frame_of_reference_uids and dose.frame_of_reference_uid not in \
            structures.frame_of_reference_uids:
        raise PlanError(
            f"{structures.file} references frame(s) of reference "
            f"{', '.join(structures.frame_of_reference_uids)} (3006,0010), the dose in "
            f"{dose.file} is in {dose.frame_of_reference_uid} (0020,0052); export the "
            "structures and the dose of the same planning CT")
    if plan is not None:
        if plan.frame_of_reference_uid and plan.frame_of_reference_uid != \
                dose.frame_of_reference_uid:
            raise PlanError(
                f"{plan.file} is in frame of reference {plan.frame_of_reference_uid}, the dose "
                f"in {dose.file} in {dose.frame_of_reference_uid} (FrameOfReferenceUID "
                "(0020,0052)); export the plan and its dose together")
        if dose.referenced_plan_uid and plan.sop_instance_uid and \
                dose.referenced_plan_uid != plan.sop_instance_uid:
            warnings.append(f"{dose.file} refers to another RTPLAN than {plan.file} "
                            "(ReferencedRTPlanSequence); check that the fractions belong to "
                            "this dose")
    if structures.skipped:
        warnings.append(f"{structures.file}: {len(structures.skipped)} ROI(s) of points or open "
                        f"contours skipped ({', '.join(structures.skipped)})")
    return PlanData(source="dicom", files=files, dose=dose, structures=structures, plan=plan,
                    warnings=warnings)


# --------------------------------------------------------------------------------------------
# Step 2: the evaluation


_SUMMARY_METRICS = ("mean", "min", "max", "D98%", "D95%", "D50%", "D2%")
_EQD2_METRICS = ("mean", "max", "D98%", "D95%", "D50%", "D2%")


def _metric_key(text: str) -> str:
    """``"D98%"`` → ``"d98_gy"``, ``"V20Gy"`` → ``"v20_percent"``, ``"mean"`` → ``"mean_gy"``."""
    metric = parse_metric(text)
    if metric.kind in ("mean", "max", "min"):
        return f"{metric.kind}_gy"
    number = f"{metric.x:g}".replace(".", "_")
    if metric.kind == "dose_at_percent":
        return f"d{number}_gy"
    return f"v{number}_percent"


@dataclass(frozen=True)
class StructureSummary:
    """A structure's DVH and its metrics."""

    name: str
    """Structure name (an expression such as ``Lungs-GTV`` when built)."""
    roles: tuple[str, ...]
    """Roles it plays (empty for most structures)."""
    alpha_beta_gy: float
    """α/β used for its EQD2 metrics (its role's, else the protocol's default), Gy."""
    derived: bool
    """True when built from other structures."""
    dvh: DVH
    """DVH of the plan's dose (all its fractions), physical."""
    metrics: dict[str, float | None]
    """``volume_cc``, ``mean_gy``, ``min_gy``, ``max_gy`` (D0.03cc), ``d98_gy``, ``d95_gy``,
    ``d50_gy``, ``d2_gy``, ``v<x>_percent`` for the protocol's doses, and the EQD2 versions
    ``mean_eqd2_gy`` … ``d2_eqd2_gy``; None where the DVH lacks absolute volumes."""

    def to_dict(self) -> dict:
        return {"roles": list(self.roles), "alpha_beta_gy": self.alpha_beta_gy,
                "derived": self.derived, **self.metrics}


def _summary(name: str, roles: tuple[str, ...], alpha_beta_gy: float, derived: bool, dvh: DVH,
             v_doses_gy: Sequence[float], n_fractions: int) -> StructureSummary:
    metrics: dict[str, float | None] = {"volume_cc": dvh.total_volume_cc}
    for text in _SUMMARY_METRICS:
        metrics[_metric_key(text)] = dvh.metric(parse_metric(text))
    for d in v_doses_gy:
        metrics[_metric_key(f"V{d:g}Gy")] = dvh.metric(parse_metric(f"V{d:g}Gy"))
    eqd2 = dvh.eqd2(n_fractions, alpha_beta_gy)
    for text in _EQD2_METRICS:
        metrics[_metric_key(text).replace("_gy", "_eqd2_gy")] = eqd2.metric(parse_metric(text))
    return StructureSummary(name, roles, alpha_beta_gy, derived, dvh, metrics)


@dataclass(frozen=True)
class PlanImport:
    """The result of importing a plan for a protocol (see :meth:`to_dict` for the JSON)."""

    protocol: str
    """Protocol name."""
    source: str
    """``"dicom"`` or ``"dvh"``."""
    files: dict[str, str]
    """File kind → display name."""
    n_plan_fractions: int
    """Fractions the plan's dose covers."""
    fractions_source: str
    """Where ``n_plan_fractions`` comes from (the RTPLAN or the user)."""
    n_eval_fractions: int
    """The protocol's evaluation fractions."""
    plan: dict[str, float | str | None]
    """``dose_summation_type``, ``prescription_gy`` and ``dose_per_fraction_gy`` (from the RTPLAN
    or the DVH file's header, when given), ``max_dose_gy`` (the plan's highest dose)."""
    feature_details: tuple[FeatureValue, ...]
    """Each dosimetric feature with how it was computed."""
    roles: dict[str, RoleAssignment]
    """Role → structure assigned (roles without a structure absent)."""
    role_candidates: dict[str, list[str]]
    """Role → the choices a drop-down offers (current first)."""
    structures: tuple[StructureSummary, ...]
    """Every structure's DVH and metrics (plan order, then built ones)."""
    constraints: tuple[ConstraintResult, ...]
    """Every constraint of the protocol, checked or with the reason it was not."""
    warnings: tuple[str, ...]
    """What the user should know (built structures, skipped structures, values out of range)."""

    @property
    def features(self) -> dict[str, float]:
        """Feature column → value in the feature's unit (what fills the form's fields: the
        dosimetric features in Gy, and e.g. the tumour volume in cm³)."""
        return {f.feature: f.value for f in self.feature_details}

    def structure(self, name: str) -> StructureSummary:
        for s in self.structures:
            if s.name == name:
                return s
        raise KeyError(name)

    def curves(self, n_points: int = 200) -> dict[str, dict[str, list[float]]]:
        """Cumulative DVH per structure for plotting: ``{"dose_gy": [...], "volume_percent":
        [...]}`` (the plan's physical dose)."""
        out = {}
        for s in self.structures:
            dose, volume = s.dvh.cumulative(n_points)
            out[s.name] = {"dose_gy": dose.tolist(), "volume_percent": volume.tolist()}
        return out

    def to_dict(self, *, curves: bool = False) -> dict:
        """The JSON of ``artds dvh features --json``: protocol, source, files, plan, features,
        feature_details, roles, role_candidates, structures, constraints, warnings (and
        ``curves`` when asked). Floats are not rounded; None stands for "not available"."""
        out = {
            "protocol": self.protocol,
            "source": self.source,
            "files": dict(self.files),
            "plan": {"n_fractions": self.n_plan_fractions,
                     "fractions_source": self.fractions_source,
                     "n_eval_fractions": self.n_eval_fractions, **self.plan},
            "features": self.features,
            "feature_details": [f.to_dict() for f in self.feature_details],
            "roles": {k: v.to_dict() for k, v in self.roles.items()},
            "role_candidates": {k: list(v) for k, v in self.role_candidates.items()},
            "structures": {s.name: s.to_dict() for s in self.structures},
            "constraints": [c.to_dict() for c in self.constraints],
            "warnings": list(self.warnings),
        }
        if curves:
            out["curves"] = self.curves()
        return out


def _fractions(data: PlanData, plan_fractions: int | None) -> tuple[int, str, list[str]]:
    warnings: list[str] = []
    if plan_fractions is not None:
        try:
            check_range("--plan-fractions", plan_fractions, 1, MAX_PLAN_FRACTIONS, integer=True)
        except ValueError as err:
            raise PlanError(str(err)) from err
        if data.plan is not None and data.plan.n_fractions not in (None, plan_fractions):
            warnings.append(f"--plan-fractions {plan_fractions} overrides the "
                            f"{data.plan.n_fractions} fractions of {data.plan.file}")
        return plan_fractions, "--plan-fractions", warnings
    if data.plan is not None and data.plan.n_fractions is not None:
        n = data.plan.n_fractions
        if n > MAX_PLAN_FRACTIONS:
            raise PlanError(f"{data.plan.file}: NumberOfFractionsPlanned = {n}; accepted at most "
                            f"{MAX_PLAN_FRACTIONS}")
        return n, f"{data.plan.file} NumberOfFractionsPlanned", warnings
    reason = f" ({data.plan.fractions_problem})" if data.plan and data.plan.fractions_problem \
        else ""
    raise PlanError("the number of fractions the plan's dose covers is needed to scale it to the "
                    f"evaluation phase{reason}: give the RTPLAN or --plan-fractions N")


def evaluate_plan(data: PlanData, protocol: Protocol | str, *, plan_fractions: int | None = None,
                  structures: Mapping[str, str] | None = None, config: ImportConfig | None = None,
                  progress: Progress | None = None) -> PlanImport:
    """Features, metrics and constraints of a read plan for ``protocol``.

    Args:
        data: the plan's files (:func:`read_plan`).
        protocol: a protocol or its name; it must have a ``[plan]`` section.
        plan_fractions: fractions the plan's dose covers (overrides the RTPLAN's).
        structures: role → structure name or expression chosen by the user.
        config: rasterisation, limits, which structures get metrics.
        progress: called with the share done (0–1) and a message, per structure.

    Raises:
        PlanError: no fraction number, a role a feature needs cannot be filled or its structure
            cannot give a DVH, an unknown role or structure was chosen.
    """
    config = config or ImportConfig()
    if isinstance(protocol, str):
        protocol = load_protocol(protocol)
    spec = protocol.plan
    if spec is None:
        raise PlanError(f"protocol {protocol.name} defines no plan import ([plan] section)")
    n_plan, fractions_source, warnings = _fractions(data, plan_fractions)
    warnings = [*data.warnings, *warnings]
    # A dose file of one fraction: the plan's dose is it × the plan's fractions.
    factor = 1.0
    summation = None
    if data.dose is not None:
        summation = data.dose.summation_type
        if data.dose.summation == "fraction":
            factor = float(n_plan)
            warnings.append(f"{data.dose.file} holds one fraction's dose (DoseSummationType "
                            f"{summation}): the plan's dose is it × {n_plan} fractions")
        elif summation == "MULTI_PLAN":
            warnings.append(f"{data.dose.file} is a sum of plans (DoseSummationType MULTI_PLAN): "
                            f"the features assume all {n_plan} fractions deliver the same "
                            "distribution")
    available = data.structure_names
    can_build = data.source == "dicom"
    roles, role_warnings = assign_roles(spec, available, structures, can_build=can_build,
                                        source=data.structure_file)
    warnings += role_warnings
    names = list(available) if config.all_structures else []
    for a in roles.values():
        if a.structure not in names:
            names.append(a.structure)
    by_name: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {n: ((n,), ()) for n in
                                                                   available}
    by_name.update({a.structure: (a.plus, a.minus) for a in roles.values()})
    required = set(spec.required_roles)
    role_dvhs: dict[str, DVH] = {}
    summaries: list[StructureSummary] = []
    plays = {n: tuple(r for r, a in roles.items() if a.structure == n) for n in names}
    for i, name in enumerate(names):
        if progress is not None:
            progress(i / max(len(names), 1), f"DVH of {name}")
        plus, minus = by_name[name]
        try:
            dvh = data.dvh(plus, minus, label=name, raster=config.raster)
        except PlanError as err:
            if set(plays[name]) & required:
                raise
            warnings.append(f"no DVH for {name}: {err}")
            for role in plays[name]:
                roles.pop(role, None)
            continue
        if factor != 1.0:
            dvh = dvh.scaled(factor)
        for role in plays[name]:
            role_dvhs[role] = dvh
        ab = roles[plays[name][0]].alpha_beta_gy if plays[name] else spec.default_alpha_beta_gy
        summaries.append(_summary(name, plays[name], ab, len(plus) > 1 or bool(minus), dvh,
                                  spec.v_doses_gy, n_plan))
    if progress is not None:
        progress(1.0, "features and constraints")
    features, feature_warnings = plan_features(protocol, role_dvhs, roles, n_plan)
    warnings += feature_warnings
    constraints = check_constraints(spec, role_dvhs, roles, n_plan)
    prescription = None
    if data.plan is not None and data.plan.prescription_gy is not None:
        prescription = data.plan.prescription_gy
    elif data.table is not None and data.table.prescription_gy is not None:
        prescription = data.table.prescription_gy
    top = max((s.dvh.point_max_gy for s in summaries), default=None)
    info: dict[str, float | str | None] = {
        "dose_summation_type": summation, "prescription_gy": prescription,
        "dose_per_fraction_gy": None if prescription is None else prescription / n_plan,
        "max_dose_gy": None if top is None else float(top)}
    return PlanImport(
        protocol=protocol.name, source=data.source, files=dict(data.files),
        n_plan_fractions=n_plan, fractions_source=fractions_source,
        n_eval_fractions=protocol.n_eval_fractions, plan=info,
        feature_details=tuple(features), roles=roles,
        role_candidates=role_candidates(spec, available, roles, can_build=can_build),
        structures=tuple(summaries), constraints=tuple(constraints),
        warnings=tuple(dict.fromkeys(warnings)),
    )


def import_plan(protocol: Protocol | str, *, rtdose: FileInput | None = None,
                rtstruct: FileInput | None = None, rtplan: FileInput | None = None,
                dvh: FileInput | None = None, plan_fractions: int | None = None,
                structures: Mapping[str, str] | None = None, config: ImportConfig | None = None,
                progress: Progress | None = None) -> PlanImport:
    """Read a plan and evaluate it for ``protocol`` (:func:`read_plan` + :func:`evaluate_plan`).

    Give either ``rtdose`` and ``rtstruct`` (and ``rtplan`` or ``plan_fractions``), or ``dvh``
    (and ``rtplan`` or ``plan_fractions``). Each file is a path or ``(display name, bytes or
    path)``.
    """
    config = config or ImportConfig()
    data = read_plan(rtdose=rtdose, rtstruct=rtstruct, rtplan=rtplan, dvh=dvh,
                     limits=config.limits)
    return evaluate_plan(data, protocol, plan_fractions=plan_fractions, structures=structures,
                         config=config, progress=progress)
