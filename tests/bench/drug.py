"""Drug-resistance benchmarks: one fit of each model on one drug's training fold, and (with
``--drug-eval``) the full default evaluation, the time issue #13 aims to keep under 15 minutes
on 2 cores.

``python -m tests.bench.drug [--drug-eval] [--workers N]`` prints one JSON object per line.
The full evaluation's wall time depends on what else the machine runs; the CPU seconds of the
jobs are printed beside it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def bench_drug_fits() -> None:
    """One fit of each model on one drug's training fold (leave-cell-line-out fold 0)."""
    import torch

    from engine.drug import evaluate as ev
    from engine.drug.baselines import TunedRandomForest, TunedXGBoost
    from engine.drug.data import load_drug_data
    from engine.drug.splits import make_splits

    torch.set_num_threads(1)
    start = time.perf_counter()
    load_drug_data.cache_clear()
    data = load_drug_data()
    print(json.dumps({"bench": "drug.load_data", "seconds": round(time.perf_counter() - start, 3),
                      "lines": len(data.lines), "features": int(data.x.shape[1]),
                      "drugs": len(data.drugs)}))
    split = make_splits("leave_cell_line_out", data.lineages, data.y)[0]
    rows, y = data.labelled("Gefitinib")
    tr, _ = split.restrict(rows)
    x_tr, y_tr = data.x[rows[tr]], y[tr]
    for name, model in (("random_forest", TunedRandomForest()), ("xgboost", TunedXGBoost())):
        start, cpu = time.perf_counter(), time.process_time()
        model.fit(x_tr, y_tr)
        print(json.dumps({"bench": f"drug.fit_tuned_{name}.one_drug_fold",
                          "seconds": round(time.perf_counter() - start, 3),
                          "cpu_seconds": round(time.process_time() - cpu, 3),
                          "lines": len(tr), "grid_points": len(model.grid_scores_)}))
    module, reason = ev._resvae_module()
    if module is None:
        print(json.dumps({"bench": "drug.resvae", "skipped": reason}))
        return
    config = module.ResVAEConfig()
    start, cpu = time.perf_counter(), time.process_time()
    vae = ev._pretrain(module, config, data.x[split.train], data.binary_columns, 0)
    print(json.dumps({"bench": "drug.resvae_pretrain.one_fold",
                      "seconds": round(time.perf_counter() - start, 3),
                      "cpu_seconds": round(time.process_time() - cpu, 3),
                      "lines": len(split.train)}))
    from engine.drug.resvae_explain import integrated_gradients

    for frozen in (True, False):
        start, cpu = time.perf_counter(), time.process_time()
        clf = module.ResVAEClassifier(vae, freeze_encoder=frozen, config=config, seed=0).fit(
            x_tr, y_tr)
        print(json.dumps({"bench": f"drug.resvae_head_{'frozen' if frozen else 'unfrozen'}"
                          ".one_drug_fold", "seconds": round(time.perf_counter() - start, 3),
                          "cpu_seconds": round(time.process_time() - cpu, 3),
                          "validation_lines": int(np.isfinite(clf.oof_).sum())}))
    start, cpu = time.perf_counter(), time.process_time()
    integrated_gradients(clf, data.x[rows])
    print(json.dumps({"bench": "drug.resvae_integrated_gradients.one_drug_fold",
                      "seconds": round(time.perf_counter() - start, 3),
                      "cpu_seconds": round(time.process_time() - cpu, 3),
                      "lines": len(rows), "n_steps": 32}))


def bench_drug_evaluation(n_workers: int = 2) -> dict:
    """The full default evaluation (every model, both settings, every evaluable drug) on a
    local pool of ``n_workers``; prints and returns its timing."""
    from engine.drug.evaluate import EvaluationConfig, evaluate
    from engine.platform.executor import make_executor

    start = time.perf_counter()
    with make_executor("local", n_workers=n_workers) as executor:
        result = evaluate(EvaluationConfig(), executor)
    line = {
        "bench": "drug.evaluate_full_default", "workers": n_workers,
        "seconds": round(time.perf_counter() - start, 1),
        "drugs": len(result["data"]["evaluated"]), "models": list(result["models"]),
        "splits": sum(len(s["splits"]) for s in result["settings"].values()),
        "cpu_seconds_by_model": {k: round(v, 1) for k, v in result["cpu_s"].items()},
        "cpu_seconds_total": round(sum(result["cpu_s"].values()), 1),
        "machine": result["machine"],
        "mean_auroc": {s: {m: None if v["auroc"]["mean"] is None else round(v["auroc"]["mean"], 4)
                           for m, v in info["summary"].items()}
                       for s, info in result["settings"].items()},
    }
    print(json.dumps(line))
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--drug-eval", action="store_true",
                        help="also time the full default evaluation (minutes)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    np.seterr(all="ignore")
    bench_drug_fits()
    if args.drug_eval:
        bench_drug_evaluation(args.workers)
    else:
        print(json.dumps({"bench": "drug.evaluate_full_default",
                          "skipped": "pass --drug-eval to time it (minutes)"}))


if __name__ == "__main__":
    main()
