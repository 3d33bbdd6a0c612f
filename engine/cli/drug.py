"""``artds drug evaluate``: drug-resistance prediction (:mod:`engine.drug`) cross-validated on
splits that cannot leak a cell line — the naive baselines, tuned random forest and XGBoost and
the Res-VAE variants on identical splits."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.cli.common import InputError, executor, input_errors, rounded
from engine.cli.flags import Commands, executor_flags, json_flag, models_dir_flag, seed_flag

__all__ = ["add_drug"]


def _names(text: str | None, accepted: tuple[str, ...], flag: str) -> tuple[str, ...]:
    """A comma-separated flag value, every item checked against ``accepted``."""
    if not text:
        return ()
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in items if x not in accepted]
    if bad:
        raise InputError(f"{flag} {','.join(bad)}: accepted are {', '.join(accepted)}")
    return items


def cmd_drug_evaluate(args: argparse.Namespace) -> int:
    from engine.drug.data import RT_DRUGS, load_drug_data
    from engine.drug.evaluate import (
        MODELS,
        EvaluationConfig,
        evaluable_drugs,
        evaluate,
        text_table,
    )
    from engine.drug.splits import SETTINGS
    from engine.platform.executor import text_progress

    data = load_drug_data()
    settings = _names(args.setting, SETTINGS, "--setting") or SETTINGS
    models = _names(args.models, tuple(MODELS), "--models") or tuple(MODELS)
    for name in (args.drugs or "").split(","):
        if name.strip() in data.not_held:
            raise InputError(f"--drugs {name.strip()}: not in the data "
                             f"({data.not_held[name.strip()]})")
    drugs = _names(args.drugs, data.drugs, "--drugs")
    if args.quick and not drugs:
        drugs = tuple(d for d in data.drugs if d in RT_DRUGS)
    with input_errors(ValueError):
        config = EvaluationConfig(settings=settings, models=models, drugs=drugs, seed=args.seed)
    ok, why = evaluable_drugs(data, config.min_class_lines)
    if drugs and not set(drugs) & set(ok):
        raise InputError("--drugs: none can be evaluated: " + "; ".join(
            f"{d}: {why[d]}" for d in drugs))
    with executor(args) as chosen:
        result = evaluate(config, chosen,
                          progress=None if args.json else text_progress("drug evaluation"))
    if args.save:
        from engine.drug.evaluate import save_evaluation
        from engine.settings import models_dir

        meta = save_evaluation(result, args.models_dir)
        root = Path(args.models_dir) if args.models_dir else models_dir()
        print(f"saved {root / meta.file}", file=sys.stderr)
    text = json.dumps(rounded(result), indent=2, allow_nan=False)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    print(text if args.json else text_table(result))
    return 0


def add_drug(sub: Commands) -> None:
    drug = sub.add_parser("drug", help="drug resistance from a line's omics profile")
    drug_sub = drug.add_subparsers(dest="drug_command", required=True)
    ev = drug_sub.add_parser(
        "evaluate",
        help="cross-validate every model on splits that cannot leak a cell line",
        parents=[json_flag(), seed_flag("seed of the folds, models and bootstrap (default 0)"),
                 executor_flags("where the jobs run (default: a local process pool)"),
                 models_dir_flag()],
    )
    ev.add_argument("--setting", default=None,
                    help="comma-separated: leave_cell_line_out, leave_tissue_out (default both)")
    ev.add_argument("--drugs", default=None,
                    help="comma-separated drug names (default: every drug with at least 10 "
                    "sensitive and 10 resistant lines)")
    ev.add_argument("--models", default=None,
                    help="comma-separated: naive_mean_effects, drug_rate, random_forest, "
                    "xgboost, resvae_frozen, resvae_unfrozen (default all)")
    ev.add_argument("--quick", action="store_true",
                    help="only the drugs given with radiotherapy in lung and liver cancer "
                    "(unless --drugs names others)")
    ev.add_argument("--save", action="store_true",
                    help="also save the result as models/drug/evaluation.json in the manifest")
    ev.add_argument("--out", default=None, help="also write the JSON result to this file")
    ev.set_defaults(func=cmd_drug_evaluate)
