"""``artds train rtoe|gan|odm`` and ``artds evaluate rtoe|odm``: train the ARCliDS outcome
estimators (RTOE), the synthetic-patient GAN and the decision makers (ODM), and print their saved
evaluations."""

from __future__ import annotations

import argparse
import json

from engine.cli.common import executor, input_errors, log, rounded, single_torch_thread
from engine.cli.flags import (
    Commands,
    executor_flags,
    json_flag,
    models_dir_flag,
    protocol_flag,
    seed_flag,
)

__all__ = ["add_evaluate", "add_train_gan", "add_train_odm", "add_train_rtoe"]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _auroc_text(res: dict, *, cv_sd: bool, truth: str) -> str:
    """One outcome estimator's discrimination as the commands print it: the cross-validated
    AUROC (``± sd`` with ``cv_sd``), then the AUROC on a fresh cohort against the truth, labelled
    ``truth``, with the Bayes ceiling."""
    cv = res["cv_auroc_mean"]
    if cv is None:
        cv_text = "n/a"
    else:
        cv_text = f"{cv:.3f} ± {res['cv_auroc_sd']:.3f}" if cv_sd else f"{cv:.3f}"
    return (f"CV AUROC {cv_text}; {truth} {res['auroc_vs_truth']:.3f} "
            f"(ceiling {res['auroc_bayes_ceiling']:.3f})")


def cmd_train(args: argparse.Namespace) -> int:
    from engine.arclids.rtoe_train import recalibrate_rtoe, train_rtoe
    from engine.platform.executor import text_progress

    with executor(args) as chosen:
        if args.recalibrate:
            payload = recalibrate_rtoe(args.protocol, chosen, models_dir=args.models_dir,
                                       learning_curve=not args.no_learning_curve,
                                       progress_factory=text_progress, log=log)
        else:
            payload = train_rtoe(
                args.protocol,
                chosen,
                grid_name=args.grid,
                models_dir=args.models_dir,
                learning_curve=not args.no_learning_curve,
                seed=args.seed,
                select_by=args.select_by,
                progress_factory=text_progress,
                log=log,
            )
    for arch, per_outcome in payload["architectures"].items():
        for outcome, res in per_outcome.items():
            auroc = _auroc_text(res, cv_sd=True, truth="fresh cohort")
            print(f"{args.protocol} {arch:8s} {outcome:15s} {auroc}")
    return 0


def cmd_train_gan(args: argparse.Namespace) -> int:
    from engine.arclids.odm_train import train_gan

    single_torch_thread()
    checks = train_gan(args.protocol, budget=args.budget, models_dir=args.models_dir,
                       seed=args.seed, log=log)
    print(f"{args.protocol} GAN: mean per-feature JSD vs the training trial "
          f"{checks['jsd_vs_training_mean']:.3f}, vs a 10,000-patient virtual population "
          f"{checks['jsd_vs_population_mean']:.3f} (training trial vs population: "
          f"{checks['jsd_training_vs_population_mean']:.3f})")
    return 0


def cmd_train_odm(args: argparse.Namespace) -> int:
    from engine.arclids.odm_train import train_odm
    from engine.platform.executor import text_progress
    from engine.platform.registry import ArtifactError

    with executor(args) as chosen, input_errors(ArtifactError):
        payload = train_odm(
            args.protocol, chosen, budget=args.budget, archs=args.arch,
            models_dir=args.models_dir, seed=args.seed, with_gan=not args.reuse_gan,
            progress_factory=text_progress, log=log,
        )
    print(f"{args.protocol}: wall seconds {payload['wall_seconds']}")
    for arch, m in payload["architectures"].items():
        t = m["trial"]
        print(f"{args.protocol} {arch}+DDQN: RMSD vs clinic {t['rmsd_gy']['overall']['mean']:.2f} "
              f"Gy/fx; argmax_reward_ratio {t['argmax_reward_ratio']:.3f}; gain_captured "
              f"{_fmt(t['gain_captured'])}; true-reward loss vs oracle "
              f"{t['regret']['served']['true_reward_loss']:.3f} (exact argmax "
              f"{t['regret']['exact_argmax']['true_reward_loss']:.3f}, historic "
              f"{t['regret']['historic']['true_reward_loss']:.3f})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.arclids.rtoe_eval import evaluation_summary
    from engine.platform.registry import ArtifactError

    with input_errors(ArtifactError):
        summary = evaluation_summary(args.protocol, args.models_dir)
    if args.json:
        print(json.dumps(rounded(summary), indent=2))
        return 0
    for arch, per_outcome in summary["architectures"].items():
        for key, res in per_outcome.items():
            auroc = _auroc_text(res, cv_sd=False, truth="vs truth")
            print(f"{arch:8s} {key:4s} {auroc}; monotonicity violations "
                  f"{res['monotonicity_violation_rate']:.1%}")
    return 0


def _regret_text(reg: dict) -> str:
    """One cohort's regret rows on one line: true-reward loss vs the oracle per policy."""
    from engine.arclids.odm_eval import REGRET_POLICIES

    parts = []
    for policy in REGRET_POLICIES:
        row = reg.get(policy)
        if row is None:
            continue
        text = f"{policy} {row['true_reward_loss']:.3f}"
        if policy == "best_constant_dose" and reg.get("best_constant_dose_gy") is not None:
            text += f" ({reg['best_constant_dose_gy']:g} Gy/fx)"
        if policy == "advised" and row.get("change_share") is not None:
            text += f" ({row['change_share']:.0%} changed)"
        parts.append(text)
    missing = [p for p in REGRET_POLICIES if p not in reg]
    return ("true-reward loss vs oracle (lower is better): " + ", ".join(parts)
            + (f"; not in this evaluation: {', '.join(missing)} (retrain to see them)"
               if missing else ""))


def cmd_evaluate_odm(args: argparse.Namespace) -> int:
    from engine.arclids.odm_eval import odm_summary
    from engine.platform.registry import ArtifactError

    with input_errors(ArtifactError):
        summary = odm_summary(args.protocol, args.models_dir)
    if args.json:
        print(json.dumps(rounded(summary), indent=2))
        return 0
    for arch, m in summary["architectures"].items():
        rm = m["rmsd_gy"]["overall"]
        se = m["self_evaluation"]["overall"]
        print(f"{arch}+DDQN ({m['odm_version']}){' STALE: ' + m['note'] if m['stale'] else ''}")
        print(f"  RMSD vs clinical decisions {rm['mean']:.2f} ± {rm['sem'] or 0:.2f} Gy/fx; "
              f"self-evaluation good {se['good']:.0%}, bad {se['bad']:.0%}, "
              f"not sure {se['not_sure']:.0%}")
        for cohort, c in (("training trial", m), ("fresh cohort", m["fresh_cohort"])):
            print(f"  {cohort} ({c['n_cases']} cases): argmax_reward_ratio "
                  f"{_fmt(c.get('argmax_reward_ratio'))}; gain_captured "
                  f"{_fmt(c.get('gain_captured'))}")
            print(f"    {_regret_text(c.get('regret') or {})}")
    return 0


def _training_flags(where: str) -> list[argparse.ArgumentParser]:
    """Flags of an ARCliDS training command that runs on an executor: ``--protocol``, the
    executor flags (``where`` is their help), ``--seed``, ``--models-dir``."""
    return [protocol_flag(), executor_flags(where), seed_flag(), models_dir_flag()]


def add_train_rtoe(train: Commands) -> None:
    rtoe = train.add_parser(
        "rtoe", help="outcome estimators: grid search, CV, ensembles",
        parents=_training_flags("where jobs run: in-process, a local process pool, or a Ray "
                                "cluster"),
    )
    rtoe.add_argument(
        "--grid",
        default="default",
        choices=("default", "paper", "tiny"),
        help="hyper-parameter grid (default: sized for a 2-core laptop)",
    )
    rtoe.add_argument(
        "--recalibrate", action="store_true",
        help="keep the saved members; refit their calibrations and rescore them",
    )
    rtoe.add_argument(
        "--select-by",
        default="auroc",
        choices=("auroc", "log_loss"),
        help="grid-search criterion: mean CV AUROC (default, the paper's; log-loss where no "
        "split is scorable) or mean CV log-loss",
    )
    rtoe.add_argument(
        "--no-learning-curve",
        action="store_true",
        help="skip the 67/200/1000-patient learning curve",
    )
    rtoe.set_defaults(func=cmd_train)


def add_train_gan(train: Commands) -> None:
    gan = train.add_parser("gan", help="WGAN-GP synthetic patients and their JSD checks",
                           parents=[protocol_flag(), seed_flag(), models_dir_flag()])
    gan.add_argument("--budget", default="default", choices=("default", "paper", "tiny"),
                     help="training budget (the GAN is the paper's in default and paper)")
    gan.set_defaults(func=cmd_train_gan)


def add_train_odm(train: Commands) -> None:
    odm = train.add_parser(
        "odm", help="GAN, then Double-DQN decision makers on the served outcome models, evaluated",
        parents=_training_flags("where member jobs run: in-process, a local process pool, "
                                "or Ray"),
    )
    odm.add_argument("--budget", default="default",
                     choices=("default", "long", "paper", "paper-100", "tiny"),
                     help="default: 100 ODM epochs, resampled planning on the ensemble-mean "
                          "ARTE; long: the same for 300 epochs; paper: as printed (300 "
                          "epochs); paper-100: the paper's method "
                          "at 100 epochs; tiny: smoke test")
    odm.add_argument("--arch", nargs="+", default=["glogd", "single"],
                     choices=("glogd", "single"), help="outcome architectures (default both)")
    odm.add_argument("--reuse-gan", action="store_true",
                     help="plan on the saved GAN instead of retraining it first")
    odm.set_defaults(func=cmd_train_odm)


def add_evaluate(evaluate: Commands) -> None:
    """``evaluate rtoe`` and ``evaluate odm``: both read the saved evaluation of one protocol."""
    for family, help_text, func in (
        ("rtoe", "outcome estimators per architecture and outcome", cmd_evaluate),
        ("odm", "decision makers: vs clinical decisions, vs the exact argmax, vs the oracle",
         cmd_evaluate_odm),
    ):
        parser = evaluate.add_parser(
            family, help=help_text, parents=[protocol_flag(), json_flag(), models_dir_flag()]
        )
        parser.set_defaults(func=func)
