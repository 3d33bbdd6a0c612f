"""Training the served drug-resistance models (``artds train drug``): the family choice, the
per-drug fold models, calibration, the bagged members and the interpretation, saved to
``models/drug/``; :mod:`engine.drug.serving` loads and applies them.

**Which family** (:func:`choose_model`). One family serves every drug — never the best family per
drug, which would flatter the shown AUROCs with a choice made on the same results. It is the
learned model (not a naive baseline) with the highest mean leave-cell-line-out AUROC over drugs
in the saved evaluation (``models/drug/evaluation.json``, ``artds drug evaluate --save``). The
naive mean-effects baseline is never served: for a held-out line it reads that line's measured
responses to other drugs, which a new tumour does not have. Its AUROC is shown beside every
drug's instead, so a drug whose model does not beat it is visibly weak. Servable families are
the tree ensembles (:data:`SERVABLE_MODELS`); if a Res-VAE variant had the highest mean, the best
tree family is served and ``choice.note`` says so.

**Training** (``artds drug train``, :func:`train_served`), per drug (parallel over drugs through
:mod:`engine.platform.executor`), with the evaluation's own configuration (grids, folds, seed):

1. the evaluation's leave-cell-line-out folds are refitted exactly as the evaluation fitted them
   (same tuning, same seeds), giving every labelled line an out-of-fold probability (the
   evaluation's per-drug AUROC is reproduced — ``auroc_matches_evaluation``), its
   out-of-fold probability with only expression given (mutations set to 0, copy numbers to 1:
   what a profile without those columns gets), and the fold models' SHAP values
   (:mod:`engine.drug.interpret`);
2. Platt scaling is fitted on the out-of-fold probabilities (:mod:`engine.drug.calibration`);
   Brier score and ECE are reported cross-fitted (honest) and in-sample, beside the base rate's;
3. the **point model** is the tuned model fitted on all labelled lines (the evaluation's
   procedure, tuning included);
4. the **bagged members**: ``n_members`` models with the point model's hyper-parameters, each on
   a bootstrap resample of the labelled lines (drawn within each class, so both classes are
   always present). The interval is the ``interval_level`` percentile range of the calibrated
   members' probabilities around their median, on the logit scale, placed around the point
   model's probability (a member sees ~63 % of the distinct lines, so the members' centre is
   biased against the point model; their spread is what resampling the lines changes). It is
   model uncertainty, not a coverage guarantee for a new tumour.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine import settings
from engine.core.config import DictConfig, check_choice, check_range
from engine.drug.baselines import ForestConfig, TunedRandomForest, TunedXGBoost, XGBoostConfig
from engine.drug.calibration import calibration_report, cross_fitted, fit_platt
from engine.drug.data import MODALITIES, load_drug_data
from engine.drug.evaluate import FAMILY, MODELS, load_evaluation
from engine.drug.evaluate import _seed as evaluation_seed
from engine.drug.interpret import (
    gene_check,
    line_groups,
    rank_features,
    save_interpretation,
    shap_values,
    stability,
)
from engine.drug.metrics import split_weighted
from engine.drug.serving import (
    DEFAULT_COPY_NUMBER,
    DEFAULT_MUTATION,
    SERVED_NAME,
    TREES_NAME,
    load_served_drug,
)
from engine.drug.splits import SETTINGS, make_splits
from engine.drug.trees import PackedTrees, from_sklearn_forest, from_xgboost, stack
from engine.platform import registry

__all__ = [
    "CHECKED_GENE",
    "NAIVE_MODEL",
    "SERVABLE_MODELS",
    "ServedConfig",
    "choose_model",
    "expression_only",
    "train_served",
]

SERVABLE_MODELS: tuple[str, ...] = ("random_forest", "xgboost")
"""Model families the served model can be (keys of :data:`engine.drug.evaluate.MODELS`)."""
NAIVE_MODEL = "naive_mean_effects"
"""The naive baseline shown beside every drug's AUROC."""
CHECKED_GENE = ("TFF1", "Gefitinib", "lung / NSCLC_adenocarcinoma")
"""The paper's named finding: (gene, drug, group) checked in the interpretation."""
_LCLO = "leave_cell_line_out"


@dataclass(frozen=True)
class ServedConfig(DictConfig):
    """How the served models are chosen, trained, calibrated and explained."""

    model: str = "auto"
    """``"auto"``: the learned model with the highest mean leave-cell-line-out AUROC in the
    saved evaluation (:func:`choose_model`); or one of :data:`SERVABLE_MODELS` (forced; the
    choice then records that it was forced)."""
    n_members: int = 10
    """Bagged members (bootstrap resamples of the labelled lines) behind the interval.
    Accepted 2–100."""
    member_trees: int = 0
    """Forests only: trees per bagged member (0: as many as the point forest). Accepted ≥ 0."""
    interval_level: float = 0.8
    """Level of the percentile range over the members. Accepted (0.5, 1)."""
    ece_bins: int = 10
    """Equal-count bins of the expected calibration error. Accepted 2–50."""
    stability_k: int = 20
    """Size of the top-feature sets compared across folds. Accepted 1–200."""
    top_features: int = 15
    """Features kept per drug and group in the interpretation. Accepted 1–200."""
    min_group_lines: int = 10
    """A tissue (or lung/liver sub-subtype) gets its own ranking with at least this many
    labelled lines. Accepted ≥ 2."""
    drugs: tuple[str, ...] = ()
    """Drugs served; empty: every drug of the saved evaluation."""
    seed: int = 0
    """Seed of the point models and the bootstrap members (the fold models use the
    evaluation's seeds). Accepted ≥ 0."""

    def __post_init__(self) -> None:
        check_choice("ServedConfig.model", self.model, ("auto", *SERVABLE_MODELS))
        check_range("ServedConfig.n_members", self.n_members, 2, 100, integer=True)
        check_range("ServedConfig.member_trees", self.member_trees, 0, integer=True)
        check_range("ServedConfig.interval_level", self.interval_level, 0.5, 1.0,
                    lo_open=True, hi_open=True)
        check_range("ServedConfig.ece_bins", self.ece_bins, 2, 50, integer=True)
        check_range("ServedConfig.stability_k", self.stability_k, 1, 200, integer=True)
        check_range("ServedConfig.top_features", self.top_features, 1, 200, integer=True)
        check_range("ServedConfig.min_group_lines", self.min_group_lines, 2, integer=True)
        check_range("ServedConfig.seed", self.seed, 0, integer=True)

    @classmethod
    def from_dict(cls, raw: Any) -> ServedConfig:
        return cls(**{**raw, "drugs": tuple(raw.get("drugs", ()))})


# --- the choice of the family ------------------------------------------------------------------


def choose_model(evaluation: dict[str, Any], forced: str = "auto") -> dict[str, Any]:
    """The served family, from the saved evaluation's leave-cell-line-out summary.

    Returns:
        ``model`` (a key of :data:`SERVABLE_MODELS`), ``rule``, ``mean_auroc`` (every model's
        mean over drugs), ``best_learned`` (the learned model with the highest mean),
        ``naive_mean_auroc`` and ``note`` (empty, or why the served model is not the best
        learned one).

    Raises:
        ValueError: the evaluation has no leave-cell-line-out setting or no servable model.
    """
    setting = evaluation.get("settings", {}).get(_LCLO)
    if setting is None:
        raise ValueError("the saved evaluation has no leave_cell_line_out setting; rerun "
                         "`artds drug evaluate --save`")
    means = {m: s["auroc"]["mean"] for m, s in setting["summary"].items()}
    learned = {m: v for m, v in means.items() if v is not None and m in MODELS
               and MODELS[m].family != "naive"}
    servable = {m: v for m, v in learned.items() if m in SERVABLE_MODELS}
    if not servable:
        raise ValueError("the saved evaluation scored no servable model ("
                         f"{', '.join(SERVABLE_MODELS)}); rerun `artds drug evaluate --save`")
    best = max(learned, key=lambda m: learned[m])
    note = ""
    if forced != "auto":
        if forced not in servable:
            raise ValueError(f"--model {forced}: not scored in the saved evaluation")
        chosen = forced
        note = f"forced by the trainer's configuration (best learned: {best})"
    elif best in servable:
        chosen = best
    else:
        chosen = max(servable, key=lambda m: servable[m])
        note = (f"{best} had the highest mean AUROC ({learned[best]:.3f}) but cannot be served "
                f"here; the best tree ensemble is served")
    return {
        "model": chosen, "best_learned": best, "mean_auroc": means,
        "naive_mean_auroc": means.get(NAIVE_MODEL),
        "rule": ("one family for every drug: the learned model with the highest mean "
                 "leave-cell-line-out AUROC over drugs in the saved evaluation"),
        "note": note,
    }


# --- per-drug training jobs --------------------------------------------------------------------


def _tuple_lists(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}


@dataclass(frozen=True)
class _DrugJob:
    drug: str
    model: str
    evaluation_config: dict[str, Any]
    config: ServedConfig
    data_dir: Path | None = None


def _fit(job: _DrugJob, x: np.ndarray, y: np.ndarray, seed: int
         ) -> tuple[Any, PackedTrees, dict[str, Any]]:
    """The evaluation's tuned model on (x, y): the fitted estimator (its ``predict_proba`` is
    the evaluation's, to the last bit), the same trees packed, and the chosen
    hyper-parameters."""
    ec = job.evaluation_config
    if job.model == "random_forest":
        forest = TunedRandomForest(ForestConfig(**_tuple_lists(ec["forest"])), seed).fit(x, y)
        return forest, from_sklearn_forest(forest.model_), dict(forest.best_params_)
    booster = TunedXGBoost(XGBoostConfig(**_tuple_lists(ec["xgboost"])), seed).fit(x, y)
    return booster, from_xgboost(booster.model_, x.shape[1]), dict(booster.best_params_)


def _fit_member(job: _DrugJob, params: dict[str, Any], x: np.ndarray, y: np.ndarray,
                seed: int) -> PackedTrees:
    """One bagged member: the point model's hyper-parameters, no tuning."""
    ec = job.evaluation_config
    if job.model == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        fc = ForestConfig(**_tuple_lists(ec["forest"]))
        n_trees = job.config.member_trees or fc.n_estimators
        forest = RandomForestClassifier(
            n_estimators=n_trees, bootstrap=True, n_jobs=1, random_state=seed,
            class_weight=None if fc.class_weight == "none" else fc.class_weight,
            **params).fit(x, y)
        return from_sklearn_forest(forest)
    import xgboost as xgb

    xc = XGBoostConfig(**_tuple_lists(ec["xgboost"]))
    tuned = TunedXGBoost(xc, seed)
    data = xgb.QuantileDMatrix(x, label=y, max_bin=xc.max_bin, nthread=1)
    booster = xgb.train(tuned._params(int(params["max_depth"])), data,
                        num_boost_round=int(params["n_estimators"]))
    return from_xgboost(booster, x.shape[1])


def _bootstrap(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions of a bootstrap resample drawn within each class (class sizes kept)."""
    parts = [rng.choice(np.flatnonzero(y == k), size=int((y == k).sum()), replace=True)
             for k in (0, 1)]
    return np.sort(np.concatenate(parts))


def expression_only(x: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
    """``x`` with every mutation set to :data:`DEFAULT_MUTATION` and every copy number to
    :data:`DEFAULT_COPY_NUMBER`: what a profile with expression columns only is given."""
    out = np.array(x, dtype=np.float32, copy=True)
    for j, name in enumerate(feature_names):
        if name.startswith("mut:"):
            out[:, j] = DEFAULT_MUTATION
        elif name.startswith("cn:"):
            out[:, j] = DEFAULT_COPY_NUMBER
    return out


def _held_out_auroc(y: np.ndarray, score: np.ndarray, fold: np.ndarray) -> float | None:
    """AUROC over pairs held out in the same fold (the evaluation's definition)."""
    from sklearn.metrics import roc_auc_score

    ok = np.isfinite(score)
    parts = [(y[ok & (fold == k)], score[ok & (fold == k)]) for k in np.unique(fold[ok])]
    return split_weighted(parts, 1, roc_auc_score)


def _train_drug(job: _DrugJob) -> dict[str, Any]:
    """Everything served for one drug (see the module docstring)."""
    started = time.perf_counter()
    ec, c = job.evaluation_config, job.config
    data = load_drug_data(job.data_dir, ec["label_source"])
    names = data.feature_names
    j = data.drug_index(job.drug)
    rows, y = data.labelled(job.drug)
    x = data.x[rows]
    x_expr = expression_only(x, names)
    splits = make_splits(_LCLO, data.lineages, data.y, n_folds=int(ec["n_folds"]),
                         seed=int(ec["seed"]))
    n, n_features = x.shape
    fold = np.full(n, -1, dtype=np.int64)
    oof = np.full(n, np.nan)
    oof_expr = np.full(n, np.nan)
    shap_oof = np.zeros((n, n_features))
    importance = []
    skipped = []
    units = "probability"
    for k, sp in enumerate(splits):
        tr, te = sp.restrict(rows)
        fold[te] = k
        if len(te) == 0 or np.bincount(y[tr], minlength=2).min() < 2:
            skipped.append(sp.name)
            continue
        seed = evaluation_seed(int(ec["seed"]), SETTINGS.index(_LCLO), k, j,
                               list(MODELS).index(job.model))
        # the estimator itself scores the held-out lines: the packed trees store leaf values
        # as float32, and a 1e-9 change can break a tie between two lines' scores
        model, trees, _ = _fit(job, x[tr], y[tr], seed)
        oof[te] = model.predict_proba(x[te])
        oof_expr[te] = model.predict_proba(x_expr[te])
        values, _, units = shap_values(trees, 0, x)  # every labelled line, one fold model
        importance.append(np.abs(values).mean(0))
        shap_oof[te] = values[te]
    scored = np.isfinite(oof)

    calibration = fit_platt(oof[scored], y[scored])
    report = calibration_report(oof[scored], y[scored], fold[scored], calibration, c.ece_bins)
    p_cross, _ = cross_fitted(oof[scored], y[scored], fold[scored])
    held_out = np.full(n, np.nan)
    held_out[scored] = p_cross

    _, point, params = _fit(job, x, y, _seed(c.seed, 1, j))
    members = []
    for m in range(c.n_members):
        rng = np.random.default_rng(np.random.SeedSequence([c.seed, 2, j, m]))
        pick = _bootstrap(y, rng)
        members.append(_fit_member(job, params, x[pick], y[pick], _seed(c.seed, 3, j, m)))
    trees = stack([point, *members])

    groups = line_groups([data.lineages[r] for r in rows],
                         [data.lineage_sub_subtypes[r] for r in rows] if
                         data.lineage_sub_subtypes else [], c.min_group_lines)
    by_group = {}
    for gname, pos in groups.items():
        pos = pos[scored[pos]]
        if len(pos) < c.min_group_lines:
            continue
        by_group[gname] = {
            "n_lines": len(pos), "n_sensitive": int((y[pos] == 0).sum()),
            "top": rank_features(shap_oof[pos], x[pos], names, c.top_features)}
    interpretation = {
        "units": units, "n_folds_explained": len(importance),
        "stability": stability(np.array(importance), names, c.stability_k) if len(
            importance) > 1 else None,
        "groups": by_group,
    }
    auroc = _held_out_auroc(y, oof, fold)
    return {
        "drug": job.drug, "trees": trees, "params": params,
        "calibration": calibration.to_dict(),
        "metrics": {
            "auroc_out_of_fold": auroc,
            "auroc_expression_only": _held_out_auroc(y, oof_expr, fold),
            **report, "skipped_folds": skipped},
        "lines": [data.lines[r] for r in rows], "y": y.astype(int).tolist(),
        "fold": fold.tolist(),
        "p_held_out": [None if not math.isfinite(v) else float(v) for v in held_out],
        "interpretation": interpretation,
        "n_nodes": trees.n_nodes, "seconds": time.perf_counter() - started,
    }


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0] % (2**31 - 1))


# --- training ----------------------------------------------------------------------------------


def _cv_table(evaluation: dict[str, Any], model: str, drug: str) -> dict[str, Any]:
    """The evaluation's leave-cell-line-out numbers of ``model``, the naive baseline and the
    drug-rate baseline for ``drug``."""
    per = evaluation["settings"][_LCLO]["per_drug"]

    def get(m: str, key: str) -> Any:
        return per.get(m, {}).get(drug, {}).get(key)

    out = {"auroc": get(model, "auroc"), "auprc_sensitive": get(model, "auprc_sensitive"),
           "f1": get(model, "f1"), "f1_all_resistant": get(model, "f1_all_resistant"),
           "naive_auroc": get(NAIVE_MODEL, "auroc"), "drug_rate_auroc": get("drug_rate", "auroc"),
           "n_lines": get(model, "n_lines"), "n_sensitive": get(model, "n_sensitive")}
    tissue = evaluation["settings"].get("leave_tissue_out", {}).get("per_drug", {})
    out["leave_tissue_out_auroc"] = tissue.get(model, {}).get(drug, {}).get("auroc")
    out["leave_tissue_out_naive_auroc"] = tissue.get(NAIVE_MODEL, {}).get(drug, {}).get("auroc")
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    ok = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(ok)) if ok else None


def train_served(models_dir: Path | str | None = None, config: ServedConfig | None = None,
                 executor: Any = None, *, data_dir: Path | None = None,
                 log: Callable[[str], None] = lambda _m: None,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train, calibrate and explain the served models; save them to ``<models_dir>/drug/``.

    Args:
        models_dir: the models folder (default ``models/``); must hold the saved evaluation.
        config: what to train (default :class:`ServedConfig`).
        executor: an :mod:`engine.platform.executor` executor (default serial); one job per
            drug.
        data_dir: data folder (tests use fixtures).

    Returns:
        A summary: chosen model, drugs, files written, mean metrics, seconds.

    Raises:
        registry.ArtifactError: no (or a changed) saved evaluation.
        ValueError: the evaluation was run on other data, or a drug it does not hold.
    """
    from engine.platform.executor import SerialExecutor

    c = config or ServedConfig()
    started = time.perf_counter()
    root = settings.models_dir(models_dir)
    evaluation, eval_meta = load_evaluation(root)
    ec = evaluation["config"]
    data = load_drug_data(data_dir, ec["label_source"])
    if evaluation["data"]["data_hash"] != data.data_hash:
        raise ValueError("the saved evaluation was run on other data (data hash "
                         f"{evaluation['data']['data_hash'][:12]} ≠ {data.data_hash[:12]}); "
                         "rerun `artds drug evaluate --save`")
    choice = choose_model(evaluation, c.model)
    model = choice["model"]
    evaluated = list(evaluation["data"]["evaluated"])
    drugs = list(c.drugs) or evaluated
    bad = [d for d in drugs if d not in evaluated]
    if bad:
        raise ValueError(f"drugs {', '.join(bad)}: not in the saved evaluation; accepted "
                         f"{', '.join(evaluated)}")
    log(f"serving {model} for {len(drugs)} drugs ({choice['rule']})")
    jobs = [_DrugJob(d, model, ec, c, data_dir) for d in drugs]
    own = executor if executor is not None else SerialExecutor()
    try:
        results = own.map(_train_drug, jobs, progress=progress, desc="drug: served models")
    finally:
        if executor is None:
            own.close()

    state: dict[str, Any] = {}
    per_drug: dict[str, Any] = {}
    held_out: dict[str, Any] = {}
    interpretation: dict[str, Any] = {}
    for k, res in enumerate(results):
        drug = res["drug"]
        state.update(res["trees"].to_state(f"d{k}."))
        cv = _cv_table(evaluation, model, drug)
        metrics = res["metrics"]
        per_drug[drug] = {
            "index": k, "params": res["params"], "calibration": res["calibration"],
            "cv": cv, "metrics": metrics, "n_nodes": res["n_nodes"],
            "auroc_matches_evaluation": (cv["auroc"] is not None
                                         and metrics["auroc_out_of_fold"] is not None
                                         and abs(cv["auroc"] - metrics["auroc_out_of_fold"])
                                         < 1e-6),
            "rt_context": str(data.drug_info.loc[drug, "rt_context"]),
            "label_source": str(data.drug_info.loc[drug, "label_source"]),
            "n_lines": len(res["y"]), "n_sensitive": int(len(res["y"]) - sum(res["y"])),
            "resistant_rate": float(np.mean(res["y"])), "seconds": res["seconds"]}
        held_out[drug] = {"lines": res["lines"], "y": res["y"], "fold": res["fold"],
                          "p_held_out": res["p_held_out"]}
        interpretation[drug] = res["interpretation"]
    kind = results[0]["trees"].kind
    summary = {
        "n_drugs": len(drugs),
        "auroc_out_of_fold_mean": _mean([v["metrics"]["auroc_out_of_fold"]
                                         for v in per_drug.values()]),
        "auroc_expression_only_mean": _mean([v["metrics"]["auroc_expression_only"]
                                             for v in per_drug.values()]),
        "naive_auroc_mean": _mean([v["cv"]["naive_auroc"] for v in per_drug.values()]),
        **{f"{key}_mean": _mean([v["metrics"][key] for v in per_drug.values()])
           for key in ("brier_raw", "brier_cross_fitted", "brier_in_sample", "brier_base_rate",
                       "ece_raw", "ece_cross_fitted", "ece_in_sample")},
        "n_drugs_better_than_base_rate_brier": int(sum(
            v["metrics"]["brier_cross_fitted"] < v["metrics"]["brier_base_rate"]
            for v in per_drug.values())),
        "n_drugs_auroc_above_naive": int(sum(
            v["cv"]["auroc"] is not None and v["cv"]["naive_auroc"] is not None
            and v["cv"]["auroc"] > v["cv"]["naive_auroc"] for v in per_drug.values())),
        "n_auroc_matches_evaluation": int(sum(v["auroc_matches_evaluation"]
                                              for v in per_drug.values())),
    }
    provenance = {"seed": c.seed, "data_hash": data.data_hash, "cohort_version": data.version}
    full_config = {**c.to_dict(), "model": model, "evaluation_config": ec}
    trees_meta = registry.save_artifact(
        root, FAMILY, TREES_NAME, state, config=full_config,
        metrics={"n_drugs": len(drugs), "n_nodes": int(sum(v["n_nodes"]
                                                            for v in per_drug.values()))},
        **provenance)
    payload = {
        "model": model, "model_label": MODELS[model].label, "kind": kind, "choice": choice,
        "n_features": int(data.x.shape[1]), "feature_names": list(data.feature_names),
        "modalities": list(MODALITIES),
        "defaults": {"mut": DEFAULT_MUTATION, "cn": DEFAULT_COPY_NUMBER},
        "drugs": per_drug, "held_out": held_out, "summary": summary,
        "interval": {"level": c.interval_level, "n_members": c.n_members,
                     "method": "percentile range of the bagged members' calibrated logits "
                               "around their median (bootstrap resamples of the labelled "
                               "lines), placed around the point model's logit",
                     "meaning": "model uncertainty, not a coverage guarantee"},
        "calibration_method": "platt",
        "trees_sha256": trees_meta.sha256, "evaluation_sha256": eval_meta.sha256,
        "data_version": data.version, "label_source": ec["label_source"],
    }
    served_meta = registry.save_json_artifact(root, FAMILY, SERVED_NAME, payload,
                                              config=full_config, metrics=summary, **provenance)
    tff1 = None
    gene, drug, group = CHECKED_GENE
    if drug in interpretation:
        tff1 = gene_check(interpretation[drug]["groups"], data.genes, gene, group, drug)
    stab = [v["stability"]["mean_pairwise_jaccard"] for v in interpretation.values()
            if v["stability"] is not None]
    interp_payload = {
        "model": model, "kind": kind, "units": interpretation[drugs[0]]["units"],
        "method": ("shap.TreeExplainer (path-dependent TreeSHAP) on each leave-cell-line-out "
                   "fold model; each labelled line explained by the fold model that never saw "
                   "it; groups ranked by mean |SHAP|"),
        "config": full_config, "drugs": interpretation, "paper_gene_check": tff1,
        "stability_summary": {"k": c.stability_k, "mean_pairwise_jaccard_mean": _mean(stab),
                              "mean_pairwise_jaccard_min": min(stab) if stab else None,
                              "mean_pairwise_jaccard_max": max(stab) if stab else None,
                              "n_drugs": len(stab)},
        "served_sha256": served_meta.sha256, "data_version": data.version,
    }
    interp_meta = save_interpretation(
        interp_payload, root, seed=c.seed, config=full_config, data_hash=data.data_hash,
        data_version=data.version,
        metrics={"stability_mean_jaccard": interp_payload["stability_summary"][
            "mean_pairwise_jaccard_mean"]})
    load_served_drug.cache_clear()
    return {"model": model, "choice": choice, "drugs": drugs, "summary": summary,
            "files": [trees_meta.file, served_meta.file, interp_meta.file],
            "bytes": trees_meta.bytes + served_meta.bytes + interp_meta.bytes,
            "elapsed_s": time.perf_counter() - started}
