"""``artds dvh features``: a plan (DICOM-RT or a DVH table) in, the protocol's dosimetric features,
every structure's DVH metrics and the constraint checks out (:mod:`engine.dvh`)."""

from __future__ import annotations

import argparse
import json

from engine.cli.common import InputError, finite, input_errors, rounded
from engine.cli.flags import Commands, json_flag, protocol_flag

__all__ = ["PLAN_FLAGS", "add_dvh", "plan_flags", "plan_from_args"]


def _roles(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or []:
        role, sep, name = value.partition("=")
        if not sep or not role.strip() or not name.strip():
            raise InputError(f"--structure {value!r}: expected ROLE=NAME, e.g. --structure "
                             "lung=Lungs-GTV")
        out[role.strip()] = name.strip()
    return out


def _number(value: float | None, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}{' ' + unit if unit else ''}"


def _text(result) -> str:  # result: engine.dvh.PlanImport
    lines = []
    files = ", ".join(result.files.values())
    lines.append(f"Plan {files}: {result.n_plan_fractions} fractions "
                 f"({result.fractions_source}); protocol {result.protocol}, evaluation phase "
                 f"{result.n_eval_fractions} fractions")
    lines.append("Features:")
    for f in result.feature_details:
        if f.quantity == "volume_cc":
            kind, scale = "volume", ""
        else:
            kind = "mean dose" if f.geud_a == 1 else f"gEUD a = {f.geud_a:g}"
            scale = (f" × {result.n_eval_fractions}/{result.n_plan_fractions}"
                     if f.phase == "evaluation" else "")
        flag = "" if f.in_range else f"  (outside {f.min:g}–{f.max:g} {f.unit})"
        lines.append(f"  {f.feature:<18} {f.value:8.2f} {f.unit:<4} {kind} of {f.structure}"
                     f"{scale}{flag}")
    lines.append("Constraints (on the plan's dose):")
    for c in result.constraints:
        row = c.display()
        state = "n/a " if c.passed is None else ("PASS" if c.passed else "FAIL")
        if c.passed is None:
            lines.append(f"  {state}  {row['constraint']}: not checked ({row['note']})")
        else:
            lines.append(f"  {state}  {row['constraint']}: {row['value']} on {row['structure']}, "
                         f"margin {row['margin']}")
    lines.append("Structures (plan dose; max = D0.03cc):")
    lines.append(f"  {'structure':<22}{'role':<12}{'cm³':>9}{'mean':>8}{'max':>8}{'D98%':>8}"
                 f"{'D2%':>8}")
    for s in result.structures:
        m = s.metrics
        lines.append(f"  {s.name[:21]:<22}{','.join(s.roles)[:11]:<12}"
                     f"{_number(m['volume_cc'], digits=1):>9}{_number(m['mean_gy']):>8}"
                     f"{_number(m['max_gy']):>8}{_number(m['d98_gy']):>8}"
                     f"{_number(m['d2_gy']):>8}")
    if result.warnings:
        lines.append("Warnings:")
        lines += [f"  - {w}" for w in result.warnings]
    return "\n".join(lines)


_GIVE_FILES = ("give --rtdose and --rtstruct (and --rtplan or --plan-fractions), or --dvh "
               "FILE")
PLAN_FLAGS = ("rtdose", "rtstruct", "rtplan", "dvh", "plan_fractions", "structure")
"""Destinations of :func:`plan_flags`."""


def plan_flags(*, optional: bool) -> argparse.ArgumentParser:
    """``--rtdose``, ``--rtstruct``, ``--rtplan``, ``--dvh``, ``--plan-fractions`` and
    ``--structure``: a plan as DICOM-RT files or a DVH table (``artds dvh features``, and
    ``artds report`` where a plan is ``optional``)."""
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("plan (optional)" if optional else "plan")
    group.add_argument("--rtdose", default=None, help="RTDOSE file (the plan's dose)")
    group.add_argument("--rtstruct", default=None, help="RTSTRUCT file (the structures)")
    group.add_argument("--rtplan", default=None,
                       help="RTPLAN file (the number of fractions the dose covers)")
    group.add_argument("--dvh", default=None,
                       help="a DVH table (CSV or Eclipse text export) instead of DICOM")
    group.add_argument("--plan-fractions", type=int, default=None,
                       help="fractions the dose covers (instead of, or overriding, the RTPLAN)")
    group.add_argument("--structure", action="append", metavar="ROLE=NAME",
                       help="the structure for a protocol role, e.g. lung=Lungs-GTV or "
                       "lung=Lung_L+Lung_R-GTV (repeatable)")
    return flags


def plan_from_args(args: argparse.Namespace, protocol: str):
    """The plan the :func:`plan_flags` of ``args`` give, imported for ``protocol``
    (:func:`engine.dvh.import_plan`); None when no plan flag was given.

    Raises:
        InputError: the files are incomplete, or the import refuses them (its message).
    """
    from engine.dvh import PlanError, import_plan

    if not any(getattr(args, name) for name in PLAN_FLAGS):
        return None
    if args.dvh is None and (args.rtdose is None or args.rtstruct is None):
        raise InputError(_GIVE_FILES)
    with input_errors(PlanError):
        return import_plan(protocol, rtdose=args.rtdose, rtstruct=args.rtstruct,
                           rtplan=args.rtplan, dvh=args.dvh, plan_fractions=args.plan_fractions,
                           structures=_roles(args.structure))


def cmd_dvh_features(args: argparse.Namespace) -> int:
    result = plan_from_args(args, args.protocol)
    if result is None:
        raise InputError(_GIVE_FILES)
    if args.json:
        payload = finite(rounded(result.to_dict(curves=args.curves)))
        print(json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False))
        return 0
    print(_text(result))
    return 0


def add_dvh(sub: Commands) -> None:
    dvh = sub.add_parser("dvh", help="import a plan (DICOM-RT or a DVH table): features, DVH "
                         "metrics, constraints")
    dvh_sub = dvh.add_subparsers(dest="dvh_command", required=True)
    features = dvh_sub.add_parser(
        "features", parents=[protocol_flag(), json_flag(), plan_flags(optional=False)],
        help="the protocol's dosimetric features, DVH metrics and constraint checks of a plan",
        description="Give the DICOM-RT files (--rtdose, --rtstruct, and --rtplan or "
        "--plan-fractions) or a DVH table (--dvh, with --rtplan or --plan-fractions). File "
        "formats: docs/plan-import.md and docs/data-format.md.")
    features.add_argument("--curves", action="store_true",
                          help="with --json: also the cumulative DVH curves")
    features.set_defaults(func=cmd_dvh_features)
