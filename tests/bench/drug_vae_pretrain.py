"""Does the Res-VAE's unsupervised pre-training need to be kept inside the training folds?

Issue #13 asks that the VAE's pre-training see only the training folds' lines, or a measurement
showing that pre-training on all lines (labels never seen) changes nothing. The evaluation
harness pre-trains per fold; this script is the measurement. For a handful of drugs, with
5-fold leave-cell-line-out CV (folds of lines, the same for every drug, so one pre-training
serves all drugs of a fold), it compares the pooled out-of-fold AUROC of frozen-encoder heads on

* ``per_fold``: a VAE pre-trained on the fold's training lines only (what the harness does);
* ``all_lines``: one VAE pre-trained on all 580 lines' profiles (test lines' profiles seen,
  never their labels);

repeated over ``--seeds`` (the VAE, head and fold seeds change together), and prints per drug
the seed-mean AUROC of each, the paired mean difference over drugs with a 95 % t interval, and,
as the yardstick of "nothing", the seed-to-seed sd of the per-fold AUROC. For scale it also
prints the unfrozen variant (per-fold pre-training) and an L2 logistic regression on the
standardised raw features (sanity), and the timings: one pre-training per fold, one head fit
(frozen, unfrozen).

Data: the DepMap panels in ``assets/data`` (706 expression z-scores | 706 mutation calls | 706
relative copy numbers, 580 lines) and the TGSA GDSC long table (``depmap_id, drug, ln_ic50,
threshold_ln_ic50, sensitive``); ``--labels PATH`` names it (default
``assets/data/tgsa_gdsc_lnic50_580lines_170drugs.csv``). Resistant = not sensitive (y = 1).

``python -m tests.bench.drug_vae_pretrain [--seeds 0 1 2] [--labels PATH] [--json OUT]``;
one torch thread, serial (minutes). Measures, never asserts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from engine.drug.resvae import ResVAE, ResVAEClassifier, ResVAEConfig
from engine.settings import DATA_DIR

PANELS = ("ccle_expression_tgsa_depmap_zscore_580x706_census.csv",
          "tgsa_ccle_mutation_580x706_census.csv",
          "ccle_copynumber_tgsa_depmap_580x706_census.csv")
LABELS = "tgsa_gdsc_lnic50_580lines_170drugs.csv"
DRUGS = ("Gefitinib", "Erlotinib", "Sorafenib", "Paclitaxel", "Dasatinib", "Lapatinib",
         "Trametinib", "MG-132")
"""Drugs given with radiotherapy in lung and liver cancer that the TGSA table thresholds
(gefitinib, erlotinib, sorafenib, paclitaxel; cisplatin is not in it), plus thresholded drugs
with many sensitive lines."""
N_FOLDS = 5


def load(labels_path: Path) -> tuple[np.ndarray, pd.Index, pd.DataFrame]:
    """Features ``[580, 2118]`` (expression | mutation | copy number), line ids, and the
    resistance labels (lines × drugs, 1 resistant, 0 sensitive, NaN unlabelled)."""
    frames = [pd.read_csv(DATA_DIR / name, index_col="DepMap_ID") for name in PANELS]
    ids = frames[0].index
    x = np.hstack([f.loc[ids].to_numpy(np.float32) for f in frames])
    table = pd.read_csv(labels_path).dropna(subset=["sensitive"])
    resistant = (1.0 - table.pivot(index="depmap_id", columns="drug", values="sensitive"))
    return x, ids, resistant.reindex(ids)


def pooled_auroc(y: np.ndarray, p: np.ndarray) -> float:
    """AUROC of out-of-fold predictions pooled over the folds (NaN when one class)."""
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan


def t_interval(d: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % t interval of paired differences ``d``."""
    from scipy import stats

    m = float(d.mean())
    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return m, m - half, m + half


def run_seed(x: np.ndarray, labels: pd.DataFrame, drugs: tuple[str, ...], config: ResVAEConfig,
             seed: int, timings: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Pooled out-of-fold AUROC per drug and model for one seed."""
    n = x.shape[0]
    folds = np.random.default_rng(seed).permutation(n) % N_FOLDS  # [n] fold of each line
    start = time.perf_counter()
    vae_all = ResVAE(config, seed).fit(x)
    timings["pretrain_all_s"].append(time.perf_counter() - start)
    oof = {d: {k: np.full(n, np.nan) for k in ("per_fold", "all_lines", "unfrozen", "logreg")}
           for d in drugs}
    for k in range(N_FOLDS):
        train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        start = time.perf_counter()
        vae = ResVAE(config, seed).fit(x[train])
        timings["pretrain_fold_s"].append(time.perf_counter() - start)
        for drug in drugs:
            y = labels[drug].to_numpy()
            tr = train[~np.isnan(y[train])]
            te = test[~np.isnan(y[test])]
            y_tr = y[tr].astype(int)
            for key, model, frozen in (("per_fold", vae, True), ("all_lines", vae_all, True),
                                       ("unfrozen", vae, False)):
                start = time.perf_counter()
                clf = ResVAEClassifier(model, frozen, config, seed).fit(x[tr], y_tr)
                timings["head_frozen_s" if frozen else "head_unfrozen_s"].append(
                    time.perf_counter() - start)
                oof[drug][key][te] = clf.predict_proba(x[te])
            lr = make_pipeline(StandardScaler(), LogisticRegression(
                C=0.01, class_weight="balanced", max_iter=2000))
            oof[drug]["logreg"][te] = lr.fit(x[tr], y_tr).predict_proba(x[te])[:, 1]
    out = {}
    for drug in drugs:
        y = labels[drug].to_numpy()
        keep = ~np.isnan(y)
        out[drug] = {key: pooled_auroc(y[keep], p[keep]) for key, p in oof[drug].items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--labels", type=Path, default=DATA_DIR / LABELS)
    parser.add_argument("--drugs", nargs="+", default=list(DRUGS))
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    if not args.labels.is_file():
        raise SystemExit(f"--labels {args.labels}: no such file (the TGSA GDSC long table)")
    torch.set_num_threads(1)
    x, _, labels = load(args.labels)
    drugs = tuple(args.drugs)
    missing = [d for d in drugs if d not in labels.columns]
    if missing:
        raise SystemExit(f"--drugs: no thresholded labels for {', '.join(missing)}")
    config = ResVAEConfig()
    timings: dict[str, list[float]] = {k: [] for k in (
        "pretrain_fold_s", "pretrain_all_s", "head_frozen_s", "head_unfrozen_s")}
    per_seed = {s: run_seed(x, labels, drugs, config, s, timings) for s in args.seeds}
    keys = ("per_fold", "all_lines", "unfrozen", "logreg")
    rows = []
    for drug in drugs:
        y = labels[drug].dropna()
        auc = {k: np.array([per_seed[s][drug][k] for s in args.seeds]) for k in keys}
        row = {"drug": drug, "n_lines": len(y), "n_sensitive": int((y == 0).sum()),
               **{f"auroc_{k}": round(float(v.mean()), 4) for k, v in auc.items()},
               "seed_sd_per_fold": round(float(auc["per_fold"].std(ddof=1)), 4)
               if len(args.seeds) > 1 else None}
        rows.append(row)
        print(json.dumps({"bench": "drug_vae_pretrain.drug", **row}))
    diff = np.array([r["auroc_all_lines"] - r["auroc_per_fold"] for r in rows])
    m, lo, hi = t_interval(diff)
    summary = {
        "bench": "drug_vae_pretrain.summary", "seeds": args.seeds, "n_drugs": len(rows),
        **{f"mean_auroc_{k}": round(float(np.mean([r[f'auroc_{k}'] for r in rows])), 4)
           for k in keys},
        "all_lines_minus_per_fold": round(m, 4), "ci95": [round(lo, 4), round(hi, 4)],
        "mean_seed_sd_per_fold": round(float(np.mean([r["seed_sd_per_fold"] for r in rows])), 4)
        if len(args.seeds) > 1 else None,
        **{k: round(float(np.median(v)), 3) for k, v in timings.items()},
        "timing": "median seconds, one torch thread", "config": dataclasses.asdict(config),
    }
    print(json.dumps(summary))
    if args.json is not None:
        args.json.write_text(json.dumps({"drugs": rows, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
