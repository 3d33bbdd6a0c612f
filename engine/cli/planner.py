"""``artds plan``: train the RL fractionation planner (:mod:`engine.planner`) and compare its
adaptive schedule with the reference plan and the oracle."""

from __future__ import annotations

import argparse
import json

from engine.cli.common import finite, input_errors, rounded
from engine.cli.flags import Commands, json_flag, seed_flag

__all__ = ["add_plan"]


def _plan_config(args: argparse.Namespace):
    from dataclasses import replace

    from engine.planner import BiologyRanges, CourseConfig, DQNConfig, PlanConfig
    from engine.planner.config import preference_weights
    from engine.planner.model import OarBiology

    with input_errors(ValueError):
        reward = replace(preference_weights(args.priority), mode=args.reward_mode)
        cfg = PlanConfig(
            biology=BiologyRanges(patient_alpha_per_gy=args.alpha_per_gy),
            oar=OarBiology(sparing_gamma=args.gamma),
            course=CourseConfig(fractions_per_decision=args.fractions_per_decision),
            reward=reward,
            dqn=replace(DQNConfig(), **({"n_episodes": args.episodes} if args.episodes else {})),
            priority=args.priority,
            n_eval_scenarios=args.scenarios,
            seed=args.seed,
            beamlet=not args.no_beamlet,
        )
        cfg.validate()
    return cfg


def cmd_plan(args: argparse.Namespace) -> int:
    from engine.planner import run_plan
    from engine.platform.executor import text_progress

    cfg = _plan_config(args)
    bar = text_progress("planner") if not args.quiet else None
    last = [-1]

    def progress(share: float, message: str) -> None:
        if bar is not None and int(share * 100) != last[0]:
            last[0] = int(share * 100)
            bar(last[0], 100)

    p = run_plan(cfg, progress=progress).payload
    if args.json:
        print(json.dumps(finite(rounded(p)), indent=2, ensure_ascii=False, allow_nan=False))
        return 0
    ref, art = p["reference"], p["art"]
    weeks = " ".join(f"{d:.2f}" for d in p["weekly_dose_gy"])
    captured = p["oracle_gain_captured"]
    print(f"ART weekly dose per fraction (Gy): {weeks}; adaptation weeks: "
          f"{', '.join(map(str, p['adaptation_weeks'])) or 'none'}")
    for name, s in (("reference", ref), ("ART", art)):
        print(f"  {name:9s} tumour BED {s['tumour_bed_mean']:.2f} Gy (IQR "
              f"{s['tumour_bed_iqr']:.2f}), OAR BED {s['oar_bed_mean']:.2f} Gy, "
              f"P(SF<1e-4) {s['p_sf_below_1e4']:.2f}")
    print(f"  oracle ratio {p['oracle_ratio']:.4f}; gain captured "
          f"{'undefined' if captured is None else f'{captured:.3f}'}; "
          f"trained in {p['train_seconds']:.1f} s")
    for note in p["notes"]:
        print(f"  note: {note}")
    return 0


def add_plan(sub: Commands) -> None:
    # The choices and defaults mirror engine.planner.config (PRIORITIES, REWARD_MODES,
    # PlanConfig, OarBiology, CourseConfig); they are spelled out here because importing the
    # planner loads torch, which would slow every `artds` command down by seconds.
    plan = sub.add_parser(
        "plan", help="train the RL fractionation planner and compare ART with the reference",
        parents=[json_flag(), seed_flag()],
    )
    plan.add_argument("--episodes", type=int, default=None,
                      help="training episodes (default: DQNConfig.n_episodes)")
    plan.add_argument("--scenarios", type=int, default=500,
                      help="evaluation scenarios, also scored by the oracle (default 500)")
    plan.add_argument("--gamma", type=float, default=0.7,
                      help="OAR sparing factor γ, mean OAR dose / tumour dose (default 0.7)")
    plan.add_argument("--priority", choices=("tumour", "oar_sparing"), default="tumour",
                      help="planner preference (default tumour)")
    plan.add_argument("--alpha-per-gy", type=float, default=None,
                      help="the patient's α (Gy⁻¹), e.g. from a predicted SF2; default: "
                      "uncertain, 0.20–0.365")
    plan.add_argument("--reward-mode", choices=("terminal", "cumulative"), default="terminal",
                      help="pay reward (15) as its change per step (default) or as printed")
    plan.add_argument("--fractions-per-decision", type=int, choices=(1, 5), default=5,
                      help="decide weekly (5, default) or every fraction (1)")
    plan.add_argument("--no-beamlet", action="store_true", help="skip the phantom beamlet LP")
    plan.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    plan.set_defaults(func=cmd_plan)
