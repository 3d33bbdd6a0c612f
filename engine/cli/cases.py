"""``artds cohort``, ``artds recommend`` and ``artds report``: write a virtual trial's case file,
and recommend a dose per fraction for each case of a file (as text, JSON or an HTML report, which
can carry an imported plan's DVHs and constraint checks)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.cli.common import InputError, rounded
from engine.cli.flags import Commands, json_flag, models_dir_flag, protocol_flag, seed_flag
from engine.core.protocols import PROTOCOL_NAMES, load_protocol

__all__ = ["add_cohort", "add_recommend", "add_report", "recommendation_lines"]


def _read_input(path: str, protocol_name: str):
    from engine.core.schema import read_cases
    from engine.core.tabular import SchemaError

    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return read_cases(file, protocol_name)
    except SchemaError as err:
        raise InputError(f"{file.name}: {err}") from err


def _outcome_model(protocol_name: str, model: str, models_dir: str | None):
    """The outcome model asked for (a learned ensemble from models/ or the reference truth), from
    the serving catalogue; one that does not load is an input error with the catalogue's reason."""
    from engine.arclids.serving import ModelUnavailable, load_outcome_model

    try:
        served = load_outcome_model(protocol_name, model, models_dir)
    except ModelUnavailable as err:
        raise InputError(f"{err} (--model reference uses the virtual trial's truth)") from err
    for warning in getattr(served, "warnings", ()):
        print(f"artds: warning: {warning}", file=sys.stderr)
    return served


def _decision_maker(protocol_name: str, model, models_dir: str | None):
    """(the ODM ensemble serving ``model``, None) or (None, why not): never an error (the serving
    catalogue's policy, as in the app)."""
    from engine.arclids.serving import decision_maker

    return decision_maker(protocol_name, model, models_dir)


def _recommendations(args: argparse.Namespace):
    from engine.arclids.recommend import recommend

    protocol = load_protocol(args.protocol)
    cases = _read_input(args.input, args.protocol)
    model = _outcome_model(args.protocol, args.model, args.models_dir)
    odm, note = _decision_maker(args.protocol, model, args.models_dir)
    return protocol, cases, recommend(cases, protocol, model, odm, odm_note=note)


def _track_record(protocol_name: str, recs: list, models_dir: str | None):
    """The recommending policy's fresh-cohort track record (None when none measured it)."""
    from engine.arclids.odm_eval import odm_summary, track_record
    from engine.arclids.serving import LOAD_ERRORS

    if not recs:
        return None
    try:
        summary = odm_summary(protocol_name, models_dir)
    except LOAD_ERRORS:
        summary = None
    return track_record(summary, recs[0].model_version, recs[0].recommender, recs[0].odm_version)


def _probability_quality(args: argparse.Namespace) -> str | None:
    """How good the chosen learned model's probabilities are on the fresh virtual cohort
    (from the saved evaluation beside it); None for the reference truth."""
    from engine.arclids.architectures import REFERENCE
    from engine.arclids.rtoe_eval import load_rtoe_review, probability_quality
    from engine.figures.wording import probability_quality_text

    if args.model == REFERENCE:
        return None
    review, _ = load_rtoe_review(args.protocol, args.models_dir)
    return probability_quality_text(
        None if review is None else probability_quality(review.summary, args.model))


def cmd_recommend(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from engine.figures.wording import track_record_text

    protocol, _, recs = _recommendations(args)
    record = _track_record(args.protocol, recs, args.models_dir)
    if args.json:
        payload = {
            "protocol": protocol.name,
            "dose_grid_gy": list(protocol.dose_grid_gy),
            "probability_quality": _probability_quality(args),
            "track_record": None if record is None else rounded(asdict(record)),
            "patients": [rounded(r.to_dict()) for r in recs],
        }
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return 0
    print(f"{protocol.label} — {len(recs)} case(s); model: {recs[0].model if recs else '-'}")
    if recs and recs[0].recommender_note:
        print(f"  note: {recs[0].recommender_note}")
    if recs:
        if (quality := _probability_quality(args)) is not None:
            print(f"  {quality}")
        print("  " + " ".join(t for t in track_record_text(record) if t))
    for r in recs:
        print("\n".join(recommendation_lines(r, protocol)))
    return 0


def recommendation_lines(rec, protocol) -> list[str]:
    """The plain-text lines of one recommendation: the dose and goal; TCP and NTCP with their
    interval (naming its level); the predicted reward; the best dose's interval; the decision
    maker's SEM and q-value, labelled as what they are; any caution; and the physician's
    proposal beside the recommendation with the advice."""
    from engine.figures.wording import (
        PREDICTED_REWARD,
        SEM_MEANING,
        advice_text,
        dose_interval_text,
        interval_label,
        level_label,
        pct_text,
        recommendation_text,
        reward_text,
    )

    label = interval_label(rec)
    spread = "" if label else " (no interval: a single model)"
    lines = [
        f"  {rec.label}: {recommendation_text(rec)} "
        f"({protocol.goal_met_text(rec.recommended_goal)})",
        f"    TCP {pct_text(rec.recommended_tcp, rec.recommended_tcp_interval, label)}, "
        f"NTCP {pct_text(rec.recommended_ntcp, rec.recommended_ntcp_interval, label)}{spread}",
        f"    {PREDICTED_REWARD}: {rec.recommended_reward:.2f}",
    ]
    if (dose_iv := dose_interval_text(rec)) is not None:
        lines.append(f"    best dose: {dose_iv}")
    if rec.recommended_dose_sem_gy is not None:
        mean = rec.recommended_dose_gy if rec.member_mean_dose_gy is None \
            else rec.member_mean_dose_gy
        q = "" if rec.q_value is None else (
            f"; q-value {rec.q_value:.2f} (the members' own {PREDICTED_REWARD})")
        lines.append(f"    decision maker: members' mean dose {mean:.2f} ± "
                     f"{rec.recommended_dose_sem_gy:.2f} Gy/fx (SEM: {SEM_MEANING}){q}; "
                     f"exact argmax {rec.exact_argmax_dose_gy:g} Gy/fx")
    if rec.caution:
        lines.append(f"    CAUTION: {rec.caution}")
    prop = rec.proposal
    if prop is not None:
        reward_level = level_label(rec.interval_level or 0.8) if label else None
        rows = (
            ("TCP", pct_text(prop["tcp"], (prop["tcp_lo"], prop["tcp_hi"]), label),
             pct_text(rec.recommended_tcp, rec.recommended_tcp_interval, label)),
            ("NTCP", pct_text(prop["ntcp"], (prop["ntcp_lo"], prop["ntcp_hi"]), label),
             pct_text(rec.recommended_ntcp, rec.recommended_ntcp_interval, label)),
            ("predicted reward",
             reward_text(prop["reward"], (prop["reward_lo"], prop["reward_hi"]), reward_level),
             reward_text(prop["recommended_reward"], (prop["recommended_reward_lo"],
                                                      prop["recommended_reward_hi"]),
                         reward_level)),
        )
        lines.append(f"    your proposal {prop['dose_gy']:g} Gy/fx vs the recommendation "
                     f"{recommendation_text(rec)}:")
        width = max(len(mine) for _, mine, _ in rows)
        lines += [f"      {what:<17}{mine:<{width}}  vs  {theirs}" for what, mine, theirs in rows]
        lines.append(f"      P(recommendation better) {prop['p_recommended_better']:.2f} (a "
                     f"change is advised from {prop['threshold']:.2f})")
        lines.append(f"      advice: {advice_text(rec)}; advised dose "
                     f"{round(prop['advised_dose_gy'], 2):g} Gy/fx")
    return lines


PLAN_FEATURE_DIGITS = 2
"""Decimals to which a case's dosimetric features must equal a plan's for the report to show the
plan with the case (the decimals ``artds dvh features`` prints and the app's form keeps)."""


def _plan_labels(plan, cases, file_name: str) -> list[str]:
    """Labels of the cases whose dosimetric features are ``plan``'s (to
    :data:`PLAN_FEATURE_DIGITS` decimals); none is an input error naming the plan's values."""
    import numpy as np
    import pandas as pd

    from engine.core.schema import case_labels

    tolerance = 0.5 * 10.0 ** -PLAN_FEATURE_DIGITS + 1e-9
    holds = np.ones(len(cases), dtype=bool)
    for name, target in plan.features.items():
        if name not in cases.columns:
            holds[:] = False
            break
        values = pd.to_numeric(cases[name], errors="coerce").to_numpy(dtype=np.float64)
        holds &= np.abs(values - target) <= tolerance  # NaN (missing) never holds
    labels = [label for label, h in zip(case_labels(cases), holds, strict=True) if h]
    if not labels:
        said = ", ".join(f"{name} {value:.{PLAN_FEATURE_DIGITS}f}"
                         for name, value in plan.features.items())
        raise InputError(f"no case of {file_name} holds the plan's dosimetric features ({said}): "
                         "put them into the case's row (artds dvh features prints them) to "
                         "report the plan with it")
    return labels


def cmd_report(args: argparse.Namespace) -> int:
    from engine.arclids.cohort import population_table
    from engine.cli.dvh import plan_from_args
    from engine.platform.report import render_report

    plan = plan_from_args(args, args.protocol)  # refused files fail before the recommendations
    protocol, cases, recs = _recommendations(args)
    plans = {} if plan is None else dict.fromkeys(
        _plan_labels(plan, cases, Path(args.input).name), plan)
    notes = None
    if "note" in cases.columns:
        from engine.core.schema import case_labels

        notes = {
            label: str(note) for label, note in zip(case_labels(cases), cases["note"], strict=True)
            if isinstance(note, str) and note
        }
    html = render_report(
        recs, cases, protocol, population=population_table(protocol.name), notes=notes,
        plans=plans, probability_quality=_probability_quality(args),
    )
    out = Path(args.out)
    out.write_text(html, encoding="utf-8")
    with_plan = f"; the plan with {', '.join(plans)}" if plans else ""
    print(f"wrote {out} ({len(recs)} case(s){with_plan})")
    return 0


def cmd_cohort(args: argparse.Namespace) -> int:
    from engine.arclids.cohort import DEFAULT_TRIAL_SEED, generate_cohort, write_cases_csv

    seed = DEFAULT_TRIAL_SEED if args.seed is None else args.seed
    cohort = generate_cohort(args.protocol, seed=seed, n_patients=args.n_patients)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = cohort.protocol.name
    cases_path = write_cases_csv(cohort.table, cohort.protocol, out / f"{name}_cohort.csv")
    ids = list(cohort.protocol.id_columns)
    truth = cohort.table[[*ids, "complete"]].join(cohort.truth)
    truth.to_csv(out / f"{name}_truth.csv", index=False, float_format="%.6g")
    complete = cohort.complete_table
    meta = {
        "protocol": name,
        "seed": seed,
        "trial_version": cohort.version,
        "n_cases": len(cohort.table),
        "n_patients": int(cohort.table["patient_id"].nunique()),
        "n_complete_cases": len(complete),
        "events_in_complete_cases": {
            o: int(complete[o].sum()) for o in cohort.protocol.outcome_names
        },
        "note": "virtual trial with known ground truth; not clinical data",
    }
    (out / f"{name}_cohort.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {cases_path}, {name}_truth.csv and {name}_cohort.json to {out}")
    return 0


def add_cohort(sub: Commands) -> None:
    cohort = sub.add_parser(
        "cohort", help="write a virtual trial with its ground truth",
        parents=[seed_flag("trial seed (default: the default trial)", default=None)],
    )
    cohort.add_argument("protocol", choices=PROTOCOL_NAMES)
    cohort.add_argument("--out", required=True, help="output folder")
    cohort.add_argument(
        "--n-patients", type=int, default=None, help="patients (default: trial size)"
    )
    cohort.set_defaults(func=cmd_cohort)


def _case_flags() -> list[argparse.ArgumentParser]:
    """``--protocol``, ``--input``, ``--model`` and ``--models-dir``: the cases to recommend for
    and the outcome model to recommend with."""
    cases = argparse.ArgumentParser(add_help=False)
    cases.add_argument(
        "--input", required=True, help="CSV file in the format of docs/data-format.md"
    )
    cases.add_argument(
        "--model",
        default="glogd",
        choices=("glogd", "single", "logistic", "reference"),
        help="outcome model: a trained ensemble from models/ (default glogd) or the "
        "virtual trial's reference truth",
    )
    return [protocol_flag(), cases, models_dir_flag()]


def add_recommend(sub: Commands) -> None:
    recommend = sub.add_parser(
        "recommend", help="recommend an adaptive dose per fraction for each case",
        parents=[*_case_flags(), json_flag()],
    )
    recommend.set_defaults(func=cmd_recommend)


def add_report(sub: Commands) -> None:
    from engine.cli.dvh import plan_flags

    report = sub.add_parser(
        "report", help="write a self-contained interactive HTML report",
        parents=[*_case_flags(), plan_flags(optional=True)],
        description="With a plan (--rtdose/--rtstruct/--rtplan or --dvh, as for artds dvh "
        "features), the report shows its files, features, cumulative DVHs and constraint checks "
        "with every case whose dosimetric features are the plan's.",
    )
    report.add_argument("--out", required=True, help="HTML file to write")
    report.set_defaults(func=cmd_report)
