"""``artds`` command line: serve the app, write virtual trials, recommend doses, write reports.

Only parses arguments and wires engine calls together. Exit codes: 0 success, 2 bad input
(one line on stderr naming the problem).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.protocols import PROTOCOL_NAMES, load_protocol

__all__ = ["main"]


class InputError(Exception):
    """A user-facing input problem: printed as one line, exit code 2."""


def _read_input(path: str, protocol_name: str):
    from engine.schema import SchemaError, read_cases

    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return read_cases(file, protocol_name)
    except SchemaError as err:
        raise InputError(f"{file.name}: {err}") from err


def _outcome_model(protocol_name: str, model: str, models_dir: str | None):
    """The outcome model asked for: a learned ensemble from models/ or the reference truth."""
    from engine.cohort import ReferenceModel

    if model == "reference":
        return ReferenceModel(protocol_name)
    from engine.registry import ArtifactError
    from engine.rtoe_train import load_served_model

    try:
        return load_served_model(protocol_name, model, models_dir)
    except ArtifactError as err:
        raise InputError(f"{err} (--model reference uses the virtual trial's truth)") from err


def _decision_maker(protocol_name: str, model, models_dir: str | None):
    """(the ODM ensemble serving ``model``, None) or (None, why not): never an error."""
    try:
        from engine.odm_train import OdmUnavailable, odm_for_model
    except ImportError as err:  # pragma: no cover - torch missing
        return None, f"decision maker unavailable ({err})"
    try:
        return odm_for_model(protocol_name, model, models_dir), None
    except OdmUnavailable as err:
        return None, str(err)


def _recommendations(args: argparse.Namespace):
    from engine.recommend import recommend

    protocol = load_protocol(args.protocol)
    cases = _read_input(args.input, args.protocol)
    model = _outcome_model(args.protocol, args.model, args.models_dir)
    odm, note = _decision_maker(args.protocol, model, args.models_dir)
    return protocol, cases, recommend(cases, protocol, model, odm, odm_note=note)


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def cmd_recommend(args: argparse.Namespace) -> int:
    protocol, _, recs = _recommendations(args)
    if args.json:
        payload = {
            "protocol": protocol.name,
            "dose_grid_gy": list(protocol.dose_grid_gy),
            "patients": [_rounded(r.to_dict()) for r in recs],
        }
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return 0
    print(f"{protocol.label} — {len(recs)} case(s); model: {recs[0].model if recs else '-'}")
    if recs and recs[0].recommender_note:
        print(f"  note: {recs[0].recommender_note}")
    for r in recs:
        goal = r.recommended_goal or "no goal met"
        if r.recommended_dose_sem_gy is not None:
            dose = (f"{r.recommended_dose_gy:.2f} ± {r.recommended_dose_sem_gy:.2f} Gy/fraction "
                    f"(q {r.q_value:.2f}; exact argmax {r.exact_argmax_dose_gy:g})")
        else:
            dose = f"{r.recommended_dose_gy:.1f} Gy/fraction"
        print(f"  {r.label}: {dose} "
              f"(TCP {r.recommended_tcp:.1%}, NTCP {r.recommended_ntcp:.1%}, {goal})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from engine.cohort import population_table
    from engine.report import render_report

    protocol, cases, recs = _recommendations(args)
    notes = None
    if "note" in cases.columns:
        from engine.recommend import case_label

        notes = {
            case_label(str(row["patient_id"]), row.get("site_id")): str(row["note"])
            for _, row in cases.iterrows()
            if isinstance(row["note"], str) and row["note"]
        }
    html = render_report(
        recs, cases, protocol, population=population_table(protocol.name), notes=notes
    )
    out = Path(args.out)
    out.write_text(html, encoding="utf-8")
    print(f"wrote {out} ({len(recs)} case(s))")
    return 0


def cmd_cohort(args: argparse.Namespace) -> int:
    from engine.cohort import DEFAULT_TRIAL_SEED, generate_cohort, write_cases_csv

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


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from engine.executor import make_executor, text_progress
    from engine.rtoe_train import train_rtoe

    torch.set_num_threads(1)
    try:
        executor = make_executor(args.executor, address=args.address, n_workers=args.workers)
    except ValueError as err:
        raise InputError(str(err)) from err
    with executor:
        payload = train_rtoe(
            args.protocol,
            executor,
            grid_name=args.grid,
            models_dir=args.models_dir,
            learning_curve=not args.no_learning_curve,
            seed=args.seed,
            progress_factory=text_progress,
            log=lambda msg: print(msg, file=sys.stderr),
        )
    for arch, per_outcome in payload["architectures"].items():
        for outcome, res in per_outcome.items():
            cv = res["cv_auroc_mean"]
            cv_text = "n/a" if cv is None else f"{cv:.3f} ± {res['cv_auroc_sd']:.3f}"
            print(
                f"{args.protocol} {arch:8s} {outcome:15s} CV AUROC {cv_text}; fresh cohort "
                f"{res['auroc_vs_truth']:.3f} (ceiling {res['auroc_bayes_ceiling']:.3f})"
            )
    return 0


def cmd_train_gan(args: argparse.Namespace) -> int:
    import torch

    from engine.odm_train import train_gan

    torch.set_num_threads(1)
    checks = train_gan(args.protocol, budget=args.budget, models_dir=args.models_dir,
                       seed=args.seed, log=lambda msg: print(msg, file=sys.stderr))
    print(f"{args.protocol} GAN: mean per-feature JSD vs the training trial "
          f"{checks['jsd_vs_training_mean']:.3f}, vs a 10,000-patient virtual population "
          f"{checks['jsd_vs_population_mean']:.3f} (training trial vs population: "
          f"{checks['jsd_training_vs_population_mean']:.3f})")
    return 0


def cmd_train_odm(args: argparse.Namespace) -> int:
    import torch

    from engine.executor import make_executor, text_progress
    from engine.odm_train import train_odm
    from engine.registry import ArtifactError

    torch.set_num_threads(1)
    try:
        executor = make_executor(args.executor, address=args.address, n_workers=args.workers)
    except ValueError as err:
        raise InputError(str(err)) from err
    with executor:
        try:
            payload = train_odm(
                args.protocol, executor, budget=args.budget, archs=args.arch,
                models_dir=args.models_dir, seed=args.seed, with_gan=not args.reuse_gan,
                progress_factory=text_progress, log=lambda msg: print(msg, file=sys.stderr),
            )
        except ArtifactError as err:
            raise InputError(str(err)) from err
    print(f"{args.protocol}: wall seconds {payload['wall_seconds']}")
    for arch, m in payload["architectures"].items():
        t = m["trial"]
        print(f"{args.protocol} {arch}+DDQN: RMSD vs clinic {t['rmsd_gy']['overall']['mean']:.2f} "
              f"Gy/fx; argmax_reward_ratio {t['argmax_reward_ratio']:.3f}; gain_captured "
              f"{_fmt(t['gain_captured'])}; true-reward loss vs oracle "
              f"{t['regret']['odm']['true_reward_loss']:.3f} (exact argmax "
              f"{t['regret']['exact_argmax']['true_reward_loss']:.3f}, historic "
              f"{t['regret']['historic']['true_reward_loss']:.3f})")
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def cmd_evaluate_odm(args: argparse.Namespace) -> int:
    from engine.odm_train import (
        load_odm_evaluation,
        served_rtoe_versions,
        summarise_odm_evaluation,
    )
    from engine.registry import ArtifactError

    try:
        payload, meta = load_odm_evaluation(args.protocol, args.models_dir)
    except ArtifactError as err:
        raise InputError(str(err)) from err
    summary = summarise_odm_evaluation(
        payload, meta, served_rtoe_versions(args.protocol, args.models_dir)
    )
    if args.json:
        print(json.dumps(_rounded(summary), indent=2))
        return 0
    for arch, m in summary["architectures"].items():
        rm = m["rmsd_gy"]["overall"]
        se = m["self_evaluation"]["overall"]
        reg = m["regret"]
        print(f"{arch}+DDQN ({m['odm_version']}){' STALE: ' + m['note'] if m['stale'] else ''}")
        print(f"  RMSD vs clinical decisions {rm['mean']:.2f} ± {rm['sem'] or 0:.2f} Gy/fx; "
              f"self-evaluation good {se['good']:.0%}, bad {se['bad']:.0%}, "
              f"not sure {se['not_sure']:.0%}")
        print(f"  argmax_reward_ratio {m['argmax_reward_ratio']:.3f}; gain_captured "
              f"{_fmt(m['gain_captured'])}")
        print(f"  vs oracle: |dose error| ODM {reg['odm']['dose_abs_error_gy']:.2f}, exact argmax "
              f"{reg['exact_argmax']['dose_abs_error_gy']:.2f}, historic "
              f"{reg['historic']['dose_abs_error_gy']:.2f} Gy/fx; true-reward loss "
              f"{reg['odm']['true_reward_loss']:.3f} / "
              f"{reg['exact_argmax']['true_reward_loss']:.3f} / "
              f"{reg['historic']['true_reward_loss']:.3f}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.registry import ArtifactError
    from engine.rtoe_train import evaluation_summary

    try:
        summary = evaluation_summary(args.protocol, args.models_dir)
    except ArtifactError as err:
        raise InputError(str(err)) from err
    if args.json:
        print(json.dumps(_rounded(summary), indent=2))
        return 0
    for arch, per_outcome in summary["architectures"].items():
        for key, res in per_outcome.items():
            cv = res["cv_auroc_mean"]
            cv_text = "n/a" if cv is None else f"{cv:.3f}"
            print(
                f"{arch:8s} {key:4s} CV AUROC {cv_text}; vs truth {res['auroc_vs_truth']:.3f} "
                f"(ceiling {res['auroc_bayes_ceiling']:.3f}); monotonicity violations "
                f"{res['monotonicity_violation_rate']:.1%}"
            )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run("app.app:app", host=args.host, port=args.port, log_level="info")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="artds", description="Decision support for response-adaptive radiotherapy."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the web app")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.set_defaults(func=cmd_serve)

    cohort = sub.add_parser("cohort", help="write a virtual trial with its ground truth")
    cohort.add_argument("protocol", choices=PROTOCOL_NAMES)
    cohort.add_argument("--out", required=True, help="output folder")
    cohort.add_argument(
        "--seed", type=int, default=None, help="trial seed (default: the default trial)"
    )
    cohort.add_argument(
        "--n-patients", type=int, default=None, help="patients (default: trial size)"
    )
    cohort.set_defaults(func=cmd_cohort)

    train = sub.add_parser("train", help="train models and save them under models/")
    train_sub = train.add_subparsers(dest="family", required=True)
    rtoe = train_sub.add_parser("rtoe", help="outcome estimators: grid search, CV, ensembles")
    rtoe.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
    rtoe.add_argument(
        "--grid",
        default="default",
        choices=("default", "paper", "tiny"),
        help="hyper-parameter grid (default: sized for a 2-core laptop)",
    )
    rtoe.add_argument(
        "--executor",
        default="local",
        choices=("serial", "local", "ray"),
        help="where jobs run: in-process, a local process pool, or a Ray cluster",
    )
    rtoe.add_argument("--address", default=None, help="Ray cluster address (with --executor ray)")
    rtoe.add_argument("--workers", type=int, default=None, help="local pool size (default: cores)")
    rtoe.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    rtoe.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    rtoe.add_argument(
        "--no-learning-curve",
        action="store_true",
        help="skip the 67/200/1000-patient learning curve",
    )
    rtoe.set_defaults(func=cmd_train)

    gan = train_sub.add_parser("gan", help="WGAN-GP synthetic patients and their JSD checks")
    gan.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
    gan.add_argument("--budget", default="default", choices=("default", "paper", "tiny"),
                     help="training budget (the GAN is the paper's in default and paper)")
    gan.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    gan.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    gan.set_defaults(func=cmd_train_gan)

    odm = train_sub.add_parser(
        "odm", help="GAN, then Double-DQN decision makers on the served outcome models, evaluated"
    )
    odm.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
    odm.add_argument("--budget", default="default", choices=("default", "paper", "tiny"),
                     help="default: 100 ODM epochs; paper: 300 as printed; tiny: smoke test")
    odm.add_argument("--arch", nargs="+", default=["glogd", "single"],
                     choices=("glogd", "single"), help="outcome architectures (default both)")
    odm.add_argument("--reuse-gan", action="store_true",
                     help="plan on the saved GAN instead of retraining it first")
    odm.add_argument("--executor", default="local", choices=("serial", "local", "ray"),
                     help="where member jobs run: in-process, a local process pool, or Ray")
    odm.add_argument("--address", default=None, help="Ray cluster address (with --executor ray)")
    odm.add_argument("--workers", type=int, default=None, help="local pool size (default: cores)")
    odm.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    odm.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    odm.set_defaults(func=cmd_train_odm)

    evaluate = sub.add_parser("evaluate", help="print the saved evaluation of trained models")
    eval_sub = evaluate.add_subparsers(dest="family", required=True)
    ev = eval_sub.add_parser("rtoe", help="outcome estimators per architecture and outcome")
    ev.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    ev.set_defaults(func=cmd_evaluate)
    ev_odm = eval_sub.add_parser(
        "odm", help="decision makers: vs clinical decisions, vs the exact argmax, vs the oracle"
    )
    ev_odm.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
    ev_odm.add_argument("--json", action="store_true", help="print one JSON object")
    ev_odm.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
    ev_odm.set_defaults(func=cmd_evaluate_odm)

    for name, func, help_text in (
        ("recommend", cmd_recommend, "recommend an adaptive dose per fraction for each case"),
        ("report", cmd_report, "write a self-contained interactive HTML report"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
        p.add_argument(
            "--input", required=True, help="CSV file in the format of docs/data-format.md"
        )
        p.add_argument(
            "--model",
            default="glogd",
            choices=("glogd", "single", "logistic", "reference"),
            help="outcome model: a trained ensemble from models/ (default glogd) or the "
            "virtual trial's reference truth",
        )
        p.add_argument("--models-dir", default=None, help="artifact folder (default: models/)")
        if name == "recommend":
            p.add_argument("--json", action="store_true", help="print one JSON object")
        else:
            p.add_argument("--out", required=True, help="HTML file to write")
        p.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as err:
        print(f"artds {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
