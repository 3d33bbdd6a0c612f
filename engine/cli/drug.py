"""``artds drug evaluate|train|predict|explain`` and ``artds train drug``: drug-resistance
prediction (:mod:`engine.drug`) — cross-validated on splits that cannot leak a cell line (the
naive baselines, tuned random forest and XGBoost and the Res-VAE variants on identical splits),
the served calibrated models, predictions for uploaded profiles, and the genes behind them."""

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

__all__ = ["add_drug", "add_train_drug"]


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
    settings = comma_list(args.setting, SETTINGS, "--setting") or SETTINGS
    models = comma_list(args.models, tuple(MODELS), "--models") or tuple(MODELS)
    for name in (args.drugs or "").split(","):
        if name.strip() in data.not_held:
            raise InputError(f"--drugs {name.strip()}: not in the data "
                             f"({data.not_held[name.strip()]})")
    drugs = comma_list(args.drugs, data.drugs, "--drugs")
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

        meta = save_evaluation(result, args.models_dir)
        print(f"saved {models_root(args.models_dir) / meta.file}", file=sys.stderr)
    text = json.dumps(rounded(result), indent=2, allow_nan=False)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    print(text if args.json else text_table(result))
    return 0


def cmd_train_drug(args: argparse.Namespace) -> int:
    from engine.drug.serving_train import ServedConfig, train_served
    from engine.platform.executor import text_progress
    from engine.platform.registry import ArtifactError

    with input_errors(ValueError):
        config = ServedConfig(model=args.model, n_members=args.members, seed=args.seed,
                              drugs=tuple(x.strip() for x in (args.drugs or "").split(",")
                                          if x.strip()))
    with executor(args) as chosen, input_errors(ArtifactError, ValueError):
        out = train_served(args.models_dir, config, chosen, log=log,
                           progress=text_progress("drug served models"))
    s = out["summary"]

    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    note = f"; {out['choice']['note']}" if out["choice"]["note"] else ""
    print(f"drug: {out['model']} served for {s['n_drugs']} drugs ({out['choice']['rule']}){note}")
    print(f"  out-of-fold AUROC (mean over drugs) {f(s['auroc_out_of_fold_mean'])}, expression "
          f"only {f(s['auroc_expression_only_mean'])}, naive baseline "
          f"{f(s['naive_auroc_mean'])}; reproduces the evaluation for "
          f"{s['n_auroc_matches_evaluation']}/{s['n_drugs']} drugs")
    print(f"  Brier: raw {f(s['brier_raw_mean'])}, calibrated (cross-fitted) "
          f"{f(s['brier_cross_fitted_mean'])}, base rate {f(s['brier_base_rate_mean'])}; ECE raw "
          f"{f(s['ece_raw_mean'])}, calibrated {f(s['ece_cross_fitted_mean'])} "
          f"(in-sample {f(s['ece_in_sample_mean'])})")
    root = models_root(args.models_dir)
    for path in out["files"]:
        print(f"  wrote {root / path}")
    print(f"  {out['bytes'] / 1e6:.1f} MB in {out['elapsed_s']:.0f} s")
    return 0


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def cmd_drug_predict(args: argparse.Namespace) -> int:
    from engine.drug.serving import load_served_drug
    from engine.drug.upload import read_profile_upload
    from engine.platform.registry import ArtifactError

    if not Path(args.input).is_file():
        raise InputError(f"{args.input}: no such file")
    if not 0 <= args.top <= 50:
        raise InputError(f"--top {args.top}: accepted 0–50")
    with input_errors(ArtifactError):
        models = load_served_drug(args.models_dir)
    drugs = comma_list(args.drugs, tuple(models.drugs), "--drugs") or tuple(models.drugs)
    payload = models.payload
    upload = read_input(args.input, lambda file: read_profile_upload(
        file, feature_names=models.feature_names, tissues=sorted(_lineages(models)),
        default_mutation=payload["defaults"]["mut"],
        default_copy_number=payload["defaults"]["cn"]))
    preds = models.predict(upload.x, drugs)
    top = {d: models.explain(upload.x, d, args.top) for d in drugs} if args.top else {}
    samples = []
    for i, (sid, row) in enumerate(upload.samples.iterrows()):
        rows = []
        for p in preds[i]:
            entry = p.to_dict()
            entry["top_features"] = [{key: g[key] for key in ("label", "feature", "value",
                                                              "shap")}
                                     for g in top[p.drug][i]] if top else []
            entry["n_lines"] = models.info(p.drug)["n_lines"]
            rows.append(entry)
        samples.append({"sample_id": str(sid), "tissue": row["tissue"], "drugs": rows})
    units = "probability" if payload["kind"] == "forest" else "logit"
    out = {
        "model": models.label, "model_version": models.version,
        "data_version": payload["data_version"],
        "interval": {"level": models.level, "meaning": payload["interval"]["meaning"],
                     "method": payload["interval"]["method"]},
        "cv": ("cv_auroc: the served model's leave-cell-line-out AUROC for the drug (cell lines, "
               "saved evaluation); naive_auroc: the naive mean-effects baseline on the same "
               "splits, which reads the held-out line's responses to other drugs"),
        "top_features": (f"SHAP values of the point model for this profile ({units} units, "
                         "before calibration; > 0 pushes toward resistance)"),
        "inputs": {"n_samples": len(upload.samples), "notes": upload.notes},
        "samples": samples,
    }
    if args.json:
        print(json.dumps(rounded(out), indent=2, ensure_ascii=False, allow_nan=False))
        return 0
    print(f"{models.label}, version {models.version}. Cell-line models: a research estimate, "
          "not clinical evidence.")
    for note in upload.notes:
        print(f"  note: {note}")
    pct = round(100 * models.level)
    for s in samples:
        print(f"\n{s['sample_id']}{' (' + s['tissue'] + ')' if s['tissue'] else ''}: "
              f"P(resistant) [{pct} % range over bagged models], CV AUROC vs naive")
        for d in s["drugs"]:
            genes = ", ".join(f"{g['label']} {g['shap']:+.2f}" for g in d["top_features"][:3])
            print(f"  {d['drug'][:20]:20s} {d['p_resistant']:.2f} [{d['interval']['low']:.2f}, "
                  f"{d['interval']['high']:.2f}]  AUROC {_fmt(d['cv_auroc'])} vs "
                  f"{_fmt(d['naive_auroc'])}  {genes}")
    return 0


def _lineages(models) -> set[str]:
    from engine.drug.serving import data_for

    return set(data_for(models).lineages)


def cmd_drug_explain(args: argparse.Namespace) -> int:
    from engine.drug.interpret import load_interpretation
    from engine.drug.resvae_explain import load_resvae_interpretation
    from engine.platform.registry import ArtifactError

    resvae = args.model == "resvae"
    with input_errors(ArtifactError):
        payload, meta = (load_resvae_interpretation if resvae else load_interpretation)(
            args.models_dir)
    key = "attribution" if resvae else "shap"
    drugs = payload["drugs"]
    drug = args.drug
    if drug not in drugs:
        raise InputError(f"--drug {drug}: accepted are {', '.join(sorted(drugs))}")
    groups = drugs[drug]["groups"]
    group = args.tissue or "all"
    if group not in groups:
        raise InputError(f"--tissue {group}: ranked for {drug} are {', '.join(groups)}")
    entry = groups[group]
    out = {"drug": drug, "group": group, "model": payload["model"],
           "units": payload["units"], "method": payload["method"],
           "n_lines": entry["n_lines"], "n_sensitive": entry["n_sensitive"],
           "top": entry["top"][:args.top], "stability": drugs[drug]["stability"],
           "paper_gene_check": payload.get("paper_gene_check"),
           "interpretation_version": meta.sha256[:12]}
    if args.json:
        print(json.dumps(rounded(out), indent=2, ensure_ascii=False, allow_nan=False))
        return 0
    print(f"{drug}, {group} ({entry['n_lines']} lines, {entry['n_sensitive']} sensitive): "
          f"{payload['model']}: features by mean |{'IG' if resvae else 'SHAP'}| "
          f"({payload['units']} units), held-out lines")
    for f in out["top"]:
        way = ("n/a" if f["direction"] is None else
               ("higher → resistant" if f["direction"] > 0 else "higher → sensitive"))
        print(f"  {f['rank']:2d}. {f['label']:32s} {f[f'mean_abs_{key}']:.4f}  mean "
              f"{f[f'mean_{key}']:+.4f}  {way}")
    st = out["stability"]
    if st:
        print(f"top-{st['k']} stability across {st['n_folds']} folds: mean pairwise Jaccard "
              f"{st['mean_pairwise_jaccard']:.2f} (random sets ≈ {st['random_expectation']:.3f});"
              f" in every fold: {', '.join(st['in_every_fold'][:8]) or 'none'}")
    check = out["paper_gene_check"]
    if check:
        print(f"paper: {check['gene']} for {check['drug']} in {check['group']}: "
              f"{check['finding']}")
    return 0


def cmd_drug_explain_resvae(args: argparse.Namespace) -> int:
    from engine.drug.resvae_explain import (
        ResVAEExplainConfig,
        explain_resvae,
        save_resvae_interpretation,
    )
    from engine.platform.executor import text_progress
    from engine.platform.registry import ArtifactError

    drugs = tuple(d.strip() for d in (args.drugs or "").split(",") if d.strip())
    with input_errors(ValueError):
        config = ResVAEExplainConfig(variant=args.variant, n_steps=args.steps, drugs=drugs)
    with input_errors(ArtifactError, ValueError), executor(args) as chosen:
        payload = explain_resvae(args.models_dir, config, chosen,
                                 progress=None if args.json else text_progress("Res-VAE IG"))
    meta = save_resvae_interpretation(payload, args.models_dir)
    log(f"saved {meta.file} ({meta.bytes} bytes)")
    summary = {"model": payload["model"], "n_drugs": len(payload["drugs"]),
               "stability": payload["stability_summary"],
               "completeness_median_relative_gap": payload["completeness_median_relative_gap"],
               "n_auroc_matches_evaluation": payload["n_auroc_matches_evaluation"],
               "paper_gene_check": payload["paper_gene_check"],
               "elapsed_s": payload["elapsed_s"]}
    print(json.dumps(rounded(summary), indent=2, ensure_ascii=False, allow_nan=False)
          if args.json else
          f"{payload['model']}: {summary['n_drugs']} drugs explained in "
          f"{summary['elapsed_s']:.0f} s; held-out AUROC equal to the evaluation's for "
          f"{summary['n_auroc_matches_evaluation']}; mean top-{summary['stability']['k']} "
          f"Jaccard across folds {summary['stability']['mean_pairwise_jaccard_mean']:.3f}")
    return 0


def add_train_drug(sub: Commands, name: str, help_text: str) -> None:
    """The served-model trainer as ``name``: ``artds train drug`` and ``artds drug train``."""
    train = sub.add_parser(name, help=help_text, parents=[
        seed_flag("seed of the point models and bagged members (default 0)"),
        executor_flags("where the per-drug jobs run (default: a local process pool)"),
        models_dir_flag(),
    ])
    train.add_argument("--model", default="auto",
                       choices=("auto", "random_forest", "xgboost"),
                       help="served family (default auto: the learned model with the highest "
                       "mean leave-cell-line-out AUROC in the saved evaluation)")
    train.add_argument("--members", type=int, default=10,
                       help="bagged members behind the interval (default 10)")
    train.add_argument("--drugs", default=None,
                       help="comma-separated drugs (default: every drug of the saved evaluation)")
    train.set_defaults(func=cmd_train_drug)


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
    add_train_drug(drug_sub, "train", "same as `artds train drug`")

    pred = drug_sub.add_parser(
        "predict", help="probability of resistance per drug for uploaded profiles",
        parents=[json_flag(), models_dir_flag()])
    pred.add_argument("--input", required=True,
                      help="CSV of profiles (docs/data-format.md, Drug-resistance profiles)")
    pred.add_argument("--drugs", default=None, help="comma-separated drugs (default all served)")
    pred.add_argument("--top", type=int, default=5,
                      help="features listed per drug and sample (default 5; 0 = none)")
    pred.set_defaults(func=cmd_drug_predict)

    ex = drug_sub.add_parser(
        "explain", help="the features that push a drug's predictions toward resistance",
        parents=[json_flag(), models_dir_flag()])
    ex.add_argument("--drug", required=True, help="a served drug, e.g. Gefitinib")
    ex.add_argument("--tissue", default=None,
                    help="a lineage (lung, breast, …) or 'lung / NSCLC_adenocarcinoma' "
                    "(default: all lines)")
    ex.add_argument("--top", type=int, default=15, help="features listed (default 15)")
    ex.add_argument("--model", default="trees", choices=("trees", "resvae"),
                    help="trees: SHAP of the served tree model (models/drug/interpretation."
                    "json); resvae: integrated gradients of the Res-VAE (interpretation_resvae."
                    "json, `artds drug explain-resvae`)")
    ex.set_defaults(func=cmd_drug_explain)

    exv = drug_sub.add_parser(
        "explain-resvae",
        help="integrated gradients of the evaluation's Res-VAE models, saved as "
        "models/drug/interpretation_resvae.json",
        parents=[json_flag(), executor_flags("where the per-drug jobs run (default: a local "
                                             "process pool)"), models_dir_flag()])
    exv.add_argument("--variant", default="auto",
                     choices=("auto", "resvae_frozen", "resvae_unfrozen"),
                     help="variant explained (default auto: the higher mean leave-cell-line-out "
                     "AUROC in the saved evaluation)")
    exv.add_argument("--steps", type=int, default=32,
                     help="integrated-gradients quadrature points (default 32)")
    exv.add_argument("--drugs", default=None,
                     help="comma-separated drugs (default: every drug of the saved evaluation)")
    exv.set_defaults(func=cmd_drug_explain_resvae)
