"""``artds sf2 predict|evaluate|train`` and ``artds train sf2``: radiosensitivity (SF2) from gene
expression (:mod:`engine.sf2`) — predict with the served ensemble, cross-validate every method,
train the served ensemble."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.cli.common import (
    InputError,
    comma_list,
    executor,
    input_errors,
    log,
    models_root,
    read_input,
    rounded,
)
from engine.cli.flags import Commands, executor_flags, json_flag, models_dir_flag, seed_flag

__all__ = ["add_sf2", "add_train_sf2"]


def cmd_train_sf2(args: argparse.Namespace) -> int:
    from engine.platform.executor import text_progress
    from engine.sf2.model import ServedConfig, train_sf2

    with input_errors(ValueError):  # the config names the field, the value and the accepted range
        config = ServedConfig(seed=args.seed, n_iterations=args.iterations,
                              n_members=args.members)
    with executor(args) as chosen:
        summary = train_sf2(args.models_dir, config, chosen, log=log,
                            progress=text_progress("sf2 members"))
    print(f"sf2: {len(summary['members'])} members on {summary['n_lines']} lines "
          f"({summary['data_version']}); genes: {', '.join(summary['genes'])}")
    root = models_root(args.models_dir)
    for path in summary["files"]:
        print(f"  wrote {root / path}")
    return 0


def cmd_sf2_evaluate(args: argparse.Namespace) -> int:
    from engine.platform.executor import text_progress
    from engine.sf2.data import SETTINGS
    from engine.sf2.evaluate import EvaluationConfig, evaluate, text_table

    settings = comma_list(args.settings, SETTINGS, "--settings")
    repeats = args.repeats if args.repeats is not None else (5 if args.full else 3)
    iterations = args.iterations if args.iterations is not None else (3000 if args.full
                                                                       else 1000)
    if repeats < 2 or iterations < 1:
        raise InputError(f"--repeats {repeats} must be at least 2 and --iterations "
                         f"{iterations} at least 1")
    with input_errors(ValueError):
        config = EvaluationConfig(settings=settings, n_repeats=repeats, n_iterations=iterations,
                                  seed=args.seed)
    with executor(args) as chosen:
        result = evaluate(config, chosen,
                          progress=None if args.json else text_progress("sf2 evaluation"))
    if args.save:
        from engine.sf2.evaluate import save_evaluation

        meta = save_evaluation(result, args.models_dir)
        print(f"saved {models_root(args.models_dir) / meta.file}", file=sys.stderr)
    if args.json:
        print(json.dumps(rounded(result), indent=2, allow_nan=False))
        return 0
    print(text_table(result))
    return 0


def _panel_genes() -> list[str]:
    from engine.sf2.data import load_panel

    return load_panel().genes


def cmd_sf2_predict(args: argparse.Namespace) -> int:
    from engine.platform.registry import ArtifactError
    from engine.sf2.data import read_expression_upload
    from engine.sf2.model import load_served_sf2

    if not Path(args.input).is_file():
        raise InputError(f"{args.input}: no such file")
    if args.n_fractions < 1 or not 0 < args.dose_per_fraction_gy <= 30:
        raise InputError(f"--n-fractions {args.n_fractions} must be at least 1 and "
                         f"--dose-per-fraction-gy {args.dose_per_fraction_gy} in (0, 30] Gy")
    with input_errors(ArtifactError):
        model = load_served_sf2(args.models_dir)
    upload = read_input(args.input, lambda file: read_expression_upload(
        file, required_genes=model.genes, panel_genes=_panel_genes(),
        tissues=sorted(set(model.reference["tissue"]))))
    preds = model.predict_upload(upload, gard_n_fractions=args.n_fractions,
                                 gard_dose_per_fraction_gy=args.dose_per_fraction_gy,
                                 influence_method=args.influence) if len(
        upload.expression.columns) else []
    if not preds:  # an RSI-only file: no panel genes for the model
        from engine.sf2.rsi import gard, rsi, rsi_alpha_per_gy

        values = rsi(upload.raw_rsi)
        samples = [{"sample_id": sid, "sf2": None, "note": "no panel genes: RSI only",
                    "rsi": float(r), "rsi_alpha_per_gy": float(rsi_alpha_per_gy(r)),
                    "gard": float(gard(r, args.n_fractions, args.dose_per_fraction_gy))}
                   for sid, r in zip(upload.samples.index, values, strict=True)]
    else:
        samples = [p.to_dict(args.top) for p in preds]
    payload = {"model": model.label, "model_version": model.version,
               "data_version": model.data_version, "genes": model.genes,
               "influence": args.influence, "samples": samples}
    if args.json:
        print(json.dumps(rounded(payload), indent=2, ensure_ascii=False, allow_nan=False))
        return 0
    print(f"{model.label}, version {model.version}")
    for s in samples:
        if s.get("sf2") is None:
            print(f"  {s['sample_id']}: RSI {s['rsi']:.3f}, GARD {s['gard']:.1f}")
            continue
        line = (f"  {s['sample_id']}: SF2 {s['sf2']:.3f} ± {s['sf2_sd']:.3f}, "
                f"α {s['alpha_per_gy']:.3f} Gy⁻¹ (α/β {s['alpha_beta_gy']:g} Gy); adapted on "
                f"{s['adapted_on']['subgroup']}")
        if s.get("rsi") is not None:
            line += f"; RSI {s['rsi']:.3f}, GARD {s['gard']:.1f}"
        print(line)
    return 0


def add_train_sf2(sub: Commands, name: str, help_text: str) -> None:
    """The served-ensemble trainer as ``name``: ``artds train sf2`` and ``artds sf2 train``."""
    train = sub.add_parser(name, help=help_text, parents=[
        seed_flag("base seed (default 0)"),
        executor_flags("where members train (default: a local process pool)"),
        models_dir_flag(),
    ])
    train.add_argument("--members", type=int, default=5, help="ensemble members (default 5)")
    train.add_argument("--iterations", type=int, default=3000,
                       help="meta-iterations per member (default 3000, the paper's)")
    train.set_defaults(func=cmd_train_sf2)


def add_sf2(sub: Commands) -> None:
    sf2 = sub.add_parser("sf2", help="radiosensitivity (SF2) from gene expression")
    sf2_sub = sf2.add_subparsers(dest="sf2_command", required=True)
    pred = sf2_sub.add_parser("predict", help="predict SF2, α, gene influence, RSI and GARD",
                              parents=[json_flag(), models_dir_flag()])
    pred.add_argument("--input", required=True, help="CSV in the format of docs/sf2.md")
    pred.add_argument("--top", type=int, default=10, help="genes listed per sample (default 10)")
    pred.add_argument("--influence", default="gradient", choices=("gradient", "gradient_x_input"),
                      help="gene influence: gradient (SF2 per +1 sd) or gradient x input")
    pred.add_argument("--n-fractions", type=int, default=30, help="GARD regimen (default 30)")
    pred.add_argument("--dose-per-fraction-gy", type=float, default=2.0,
                      help="GARD regimen dose per fraction, Gy (default 2)")
    pred.set_defaults(func=cmd_sf2_predict)

    ev = sf2_sub.add_parser(
        "evaluate", help="cross-validate every method: honest protocol and the paper's",
        parents=[json_flag(), seed_flag("seed (default 0)"),
                 executor_flags("where folds run (default: a local process pool)",
                                address_help="Ray cluster address",
                                workers_help="local pool size"),
                 models_dir_flag()],
    )
    ev.add_argument("--full", action="store_true",
                    help="the paper's 3,000 meta-iterations and 5 repeats (default: 1,000 "
                    "and 3 repeats)")
    ev.add_argument("--repeats", type=int, default=None, help="repeats of the 5-fold split")
    ev.add_argument("--iterations", type=int, default=None, help="meta-iterations")
    ev.add_argument("--settings", default="lung,pan_cancer",
                    help="comma-separated: lung, pan_cancer (default both)")
    ev.add_argument("--save", action="store_true",
                    help="also save the result as models/sf2/evaluation.json "
                    "(the app shows it)")
    ev.set_defaults(func=cmd_sf2_evaluate)
    add_train_sf2(sf2_sub, "train", "same as `artds train sf2`")
