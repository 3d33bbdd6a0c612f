"""Evaluation of drug-resistance prediction on splits that cannot leak a cell line.

Every model is scored on the same splits (:mod:`engine.drug.splits`): ``leave_cell_line_out``
(one global 5-fold assignment of the lines, restricted per drug to its labelled lines) and
``leave_tissue_out`` (lung, liver and every tissue of ≥ 40 lines held out whole). Per setting,
model and drug the held-out predictions of all splits are pooled (each labelled line of a
held-out set is scored once, by a model that never saw it) and give:

* ``auroc`` — area under the ROC curve for resistance (1 = resistant is the positive class);
* ``auprc`` — average precision for resistance (a random score gets ``resistant_rate``, ~0.9
  here) and ``auprc_sensitive`` — the same for the sensitive minority (random: 1 −
  ``resistant_rate``);
* ``f1`` — F1 of the resistant class at each split's threshold, chosen on that split's
  **training lines only**: the threshold maximising F1 over the model's out-of-sample
  predictions of its training lines (out-of-bag for the random forest, the tuning's inner
  cross-validation for XGBoost, the line's own label left out of the rates for the naive
  baselines; for the Res-VAE, by default (``resvae_threshold="validation"``) the head's own
  early-stopping validation lines — a stratified fifth of the training lines its kept weights
  never trained on — or, with ``"refits"``, ``threshold_folds``-fold refits of the head on the
  split's pre-trained encoder, four times the cost), then applied to the held-out lines;
  ``f1_all_resistant`` is the F1 of calling every line resistant (``2r / (1 + r)``), the bar
  any F1 has to clear;
* ``n_lines``, ``n_sensitive``, ``n_resistant`` — the held-out lines scored.

Across drugs: mean ± sd per model, and the paired difference in AUROC of each model against the
naive baseline and against the best tree ensemble (the tree model with the higher mean AUROC in
that setting, chosen on these same results), with a percentile confidence interval from a paired
bootstrap over drugs (drugs resampled with replacement; drugs share lines, so the interval is
a guide, not an exact test).

Models (:data:`MODELS`): the naive baselines (:func:`engine.drug.baselines.naive_mean_effects`
uses the held-out line's measured responses to the *other* drugs — a bar a new tumour cannot
offer — and :func:`~engine.drug.baselines.drug_rate`), the tuned random forest and XGBoost, and
the Res-VAE with a frozen or a fine-tuned encoder (:mod:`engine.drug.resvae`, through its
contract: ``ResVAE(config, seed).fit(x)`` once per split on that split's training lines —
unlabelled, never a held-out line — then ``ResVAEClassifier(vae, freeze_encoder, config,
seed).fit(x, y).predict_proba(x)`` per drug). When :mod:`engine.drug.resvae` cannot be imported
the Res-VAE variants are left out and the result says why.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from engine import settings
from engine.core.config import check_choice, check_range, json_ready
from engine.drug.baselines import (
    ForestConfig,
    TunedRandomForest,
    TunedXGBoost,
    XGBoostConfig,
    drug_rate,
    naive_mean_effects,
)
from engine.drug.data import LABEL_SOURCES, DrugDataset, load_drug_data
from engine.drug.metrics import f1_threshold, held_out_metrics, paired_bootstrap, summary
from engine.drug.splits import SETTINGS, Split, make_splits, tissues

__all__ = [
    "EVALUATION_NAME",
    "FAMILY",
    "MIN_TISSUE_CLASS_LINES",
    "MODELS",
    "RESVAE_BUDGETS",
    "RESVAE_THRESHOLDS",
    "EvaluationConfig",
    "ModelInfo",
    "evaluable_drugs",
    "evaluate",
    "load_evaluation",
    "save_evaluation",
    "text_table",
]

FAMILY = "drug"
"""Registry family of the saved evaluation (``models/drug/``)."""
EVALUATION_NAME = "evaluation"
"""Registry name of the saved evaluation (``models/drug/evaluation.json``)."""


@dataclass(frozen=True)
class ModelInfo:
    """What a model is, for tables and the JSON output."""

    label: str
    """Short description."""
    family: str
    """``"naive"``, ``"tree"`` or ``"resvae"``."""
    uses_other_drug_labels: bool
    """Whether a held-out line's score uses that line's measured responses to other drugs
    (information a clinic does not have for a new tumour)."""


MODELS: dict[str, ModelInfo] = {
    "naive_mean_effects": ModelInfo(
        "naive mean effects: drug's training rate + the line's mean deviation over the other "
        "drugs", "naive", True),
    "drug_rate": ModelInfo("drug's training resistance rate (one score for every line)",
                           "naive", False),
    "random_forest": ModelInfo("random forest, tuned by out-of-bag AUROC", "tree", False),
    "xgboost": ModelInfo("XGBoost, tuned by inner cross-validated AUROC", "tree", False),
    "resvae_frozen": ModelInfo("Res-VAE, pre-trained encoder frozen, head fine-tuned",
                               "resvae", False),
    "resvae_unfrozen": ModelInfo("Res-VAE, encoder fine-tuned with the head", "resvae", False),
}
"""Every model, in table order."""

RESVAE_BUDGETS: tuple[str, ...] = ("default", "tiny")
"""Res-VAE budgets: ``ResVAEConfig()`` or ``ResVAEConfig.tiny()`` (tests)."""
RESVAE_THRESHOLDS: tuple[str, ...] = ("validation", "refits")
"""Sources of the Res-VAE's out-of-sample training scores for its F1 threshold."""

_NAIVE = ("naive_mean_effects", "drug_rate")


@dataclass(frozen=True)
class EvaluationConfig:
    """What is evaluated and with which budget (defaults: the full default evaluation)."""

    settings: tuple[str, ...] = SETTINGS
    """Settings evaluated, from ``leave_cell_line_out``, ``leave_tissue_out``."""
    models: tuple[str, ...] = tuple(MODELS)
    """Models evaluated, keys of :data:`MODELS` (Res-VAE variants are dropped, with a note,
    when :mod:`engine.drug.resvae` is not available)."""
    drugs: tuple[str, ...] = ()
    """Drugs evaluated; empty: every drug of the catalogue with ``min_class_lines`` lines of
    each class (:func:`evaluable_drugs`)."""
    label_source: str = "gdsc1_nihgcn"
    """``prefer`` of :func:`engine.drug.data.load_drug_data`."""
    n_folds: int = 5
    """Folds of leave-cell-line-out. Accepted 2–20."""
    min_tissue_lines: int = 40
    """Leave-tissue-out holds out lung, liver and every tissue with at least this many lines.
    Accepted ≥ 1."""
    min_class_lines: int = 10
    """A drug is evaluated when it has at least this many sensitive and resistant lines.
    Accepted ≥ 2."""
    resvae_threshold: str = "validation"
    """Out-of-sample training scores behind the Res-VAE's F1 threshold: ``"validation"`` (the
    head's early-stopping validation lines, ``ResVAEClassifier.oof_``; no extra fit) or
    ``"refits"`` (``threshold_folds``-fold refits of the head, every training line scored)."""
    threshold_folds: int = 3
    """Inner folds giving out-of-sample training predictions (for the F1 threshold) with
    ``resvae_threshold="refits"``, or when the validation lines hold fewer than 2 lines of a
    class. Accepted 2–10."""
    forest: ForestConfig = field(default_factory=ForestConfig)
    """Random forest and its grid."""
    xgboost: XGBoostConfig = field(default_factory=XGBoostConfig)
    """XGBoost and its grid."""
    resvae_budget: str = "default"
    """``"default"`` (``ResVAEConfig()``) or ``"tiny"`` (``ResVAEConfig.tiny()``, tests)."""
    n_bootstrap: int = 2000
    """Paired bootstrap resamples over drugs for the confidence intervals. Accepted ≥ 100."""
    ci_level: float = 0.95
    """Level of the confidence intervals. Accepted (0.5, 1)."""
    drugs_per_job: int = 4
    """Drugs per parallel job (a job fits every model of those drugs on one split). Accepted
    ≥ 1."""
    seed: int = 0
    """Seed of the fold assignment, the models and the bootstrap. Accepted ≥ 0."""

    def __post_init__(self) -> None:
        if not self.settings:
            raise ValueError(f"EvaluationConfig.settings is empty; accepted one or more of "
                             f"{', '.join(SETTINGS)}")
        for s in self.settings:
            check_choice("EvaluationConfig.settings", s, SETTINGS)
        if not self.models:
            raise ValueError(f"EvaluationConfig.models is empty; accepted one or more of "
                             f"{', '.join(MODELS)}")
        for m in self.models:
            check_choice("EvaluationConfig.models", m, MODELS)
        check_choice("EvaluationConfig.label_source", self.label_source, LABEL_SOURCES)
        check_range("EvaluationConfig.n_folds", self.n_folds, 2, 20, integer=True)
        check_range("EvaluationConfig.min_tissue_lines", self.min_tissue_lines, 1, integer=True)
        check_range("EvaluationConfig.min_class_lines", self.min_class_lines, 2, integer=True)
        check_range("EvaluationConfig.threshold_folds", self.threshold_folds, 2, 10,
                    integer=True)
        check_choice("EvaluationConfig.resvae_budget", self.resvae_budget, RESVAE_BUDGETS)
        check_choice("EvaluationConfig.resvae_threshold", self.resvae_threshold,
                     RESVAE_THRESHOLDS)
        check_range("EvaluationConfig.n_bootstrap", self.n_bootstrap, 100, integer=True)
        check_range("EvaluationConfig.ci_level", self.ci_level, 0.5, 1.0, lo_open=True,
                    hi_open=True)
        check_range("EvaluationConfig.drugs_per_job", self.drugs_per_job, 1, integer=True)
        check_range("EvaluationConfig.seed", self.seed, 0, integer=True)

    @classmethod
    def tiny(cls, **overrides: Any) -> EvaluationConfig:
        """A budget for unit tests: two drugs, small forests and boosters, the tiny Res-VAE."""
        base: dict[str, Any] = {
            "drugs": ("Gefitinib", "Trametinib"),
            "forest": ForestConfig(n_estimators=20, min_samples_leaf=(1, 5)),
            "xgboost": XGBoostConfig(max_depth=(2,), n_estimators=(5, 10), inner_folds=2),
            "resvae_budget": "tiny", "threshold_folds": 2, "n_bootstrap": 200,
        }
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (tuples as lists)."""
        return json_ready(self)


def evaluable_drugs(data: DrugDataset, min_class_lines: int) -> tuple[list[str], dict[str, str]]:
    """Drugs with at least ``min_class_lines`` sensitive and resistant lines, and why the
    others are not evaluated."""
    ok, skipped = [], {}
    for drug, rec in data.drug_info.iterrows():
        if min(rec["n_sensitive"], rec["n_resistant"]) >= min_class_lines:
            ok.append(str(drug))
        else:
            skipped[str(drug)] = (f"{rec['n_sensitive']} sensitive and {rec['n_resistant']} "
                                  f"resistant lines; at least {min_class_lines} of each needed")
    return ok, skipped


# --- the Res-VAE through its contract -----------------------------------------------------------


def _resvae_module() -> tuple[Any, str | None]:
    """``engine.drug.resvae`` or None with the reason it cannot be used."""
    try:
        module = importlib.import_module("engine.drug.resvae")
    except ImportError as err:
        return None, f"engine.drug.resvae is not available ({err})"
    missing = [n for n in ("ResVAEConfig", "ResVAE", "ResVAEClassifier") if not hasattr(module, n)]
    if missing:
        return None, f"engine.drug.resvae lacks {', '.join(missing)}"
    return module, None


def _resvae_config(module: Any, budget: str) -> Any:
    cls = module.ResVAEConfig
    return cls.tiny() if budget == "tiny" and hasattr(cls, "tiny") else cls()


def _config_dict(config: Any) -> dict[str, Any]:
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    return json_ready(config)


def _pretrain(module: Any, config: Any, x: np.ndarray, binary: np.ndarray, seed: int) -> Any:
    """``ResVAE(config, seed).fit(x)`` (passing the 0/1 columns when ``fit`` accepts them)."""
    vae = module.ResVAE(config, seed)
    if "binary_columns" in inspect.signature(vae.fit).parameters:
        mask = np.zeros(x.shape[1], dtype=bool)
        mask[binary] = True
        return vae.fit(x, binary_columns=mask)
    return vae.fit(x)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0] % (2**31 - 1))


# --- jobs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PretrainJob:
    setting: str
    split: Split
    data_dir: Path | None
    label_source: str
    budget: str
    seed: int


def _run_pretrain(job: _PretrainJob) -> dict[str, Any]:
    """Pre-train one Res-VAE on a split's training lines (every line of the split's training
    side, labelled or not; no label is read)."""
    module, reason = _resvae_module()
    if module is None:
        raise RuntimeError(reason)
    data = load_drug_data(job.data_dir, job.label_source)
    start, cpu = time.perf_counter(), time.process_time()
    vae = _pretrain(module, _resvae_config(module, job.budget), data.x[job.split.train],
                    data.binary_columns, job.seed)
    return {"vae": vae, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu, "n_lines": len(job.split.train)}


@dataclass(frozen=True)
class _DrugJob:
    setting: str
    split_index: int
    split: Split
    drugs: tuple[str, ...]
    models: tuple[str, ...]
    config: EvaluationConfig
    data_dir: Path | None
    vae: Any


def _inner_oof(fit: Callable[[np.ndarray, np.ndarray], Any], x: np.ndarray, y: np.ndarray,
               n_folds: int, seed: int) -> np.ndarray:
    """Out-of-sample predictions of the training lines by ``n_folds``-fold refits of ``fit``."""
    oof = np.full(len(y), np.nan)
    k = min(n_folds, int(np.bincount(y, minlength=2).min()))
    if k < 2:
        return oof
    for tr, va in StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y):
        if np.bincount(y[tr], minlength=2).min() >= 2:
            oof[va] = fit(x[tr], y[tr]).predict_proba(x[va])
    return oof


def _fit_model(name: str, job: _DrugJob, x: np.ndarray, y: np.ndarray, seed: int
               ) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """Fit one model on a drug's training lines: (model, out-of-sample training scores, info)."""
    c = job.config
    if name == "random_forest":
        model = TunedRandomForest(c.forest, seed).fit(x, y)
        return model, model.oof_, {"params": model.best_params_}
    if name == "xgboost":
        model = TunedXGBoost(c.xgboost, seed).fit(x, y)
        return model, model.oof_, {"params": model.best_params_}
    module, _ = _resvae_module()
    config = _resvae_config(module, c.resvae_budget)
    frozen = name == "resvae_frozen"

    def fit(xx: np.ndarray, yy: np.ndarray) -> Any:
        return module.ResVAEClassifier(job.vae, freeze_encoder=frozen, config=config,
                                       seed=seed).fit(xx, yy)

    model = fit(x, y)
    oof = getattr(model, "oof_", None)
    source = "validation"
    if oof is not None:
        ok = np.isfinite(oof)
        if np.bincount(y[ok], minlength=2).min() < 2:
            oof = None  # a class barely present among the validation lines: no threshold
    if c.resvae_threshold == "refits" or oof is None:
        oof, source = _inner_oof(fit, x, y, c.threshold_folds, seed), "refits"
    return model, np.asarray(oof, dtype=float), {"threshold_source": source}


def _run_drugs(job: _DrugJob) -> dict[str, Any]:
    """Every fitted model (trees, Res-VAE) on one split for a few drugs."""
    data = load_drug_data(job.data_dir, job.config.label_source)
    out: dict[str, Any] = {}
    for drug in job.drugs:
        rows, y = data.labelled(drug)
        tr, te = job.split.restrict(rows)
        record: dict[str, Any] = {"test_rows": rows[te], "models": {}}
        out[drug] = record
        if len(te) == 0:
            record["skipped"] = "no labelled line in the held-out set"
            continue
        if np.bincount(y[tr], minlength=2).min() < 2:
            record["skipped"] = "fewer than 2 training lines of a class"
            continue
        x_tr, x_te = data.x[rows[tr]], data.x[rows[te]]
        for name in job.models:
            seed = _seed(job.config.seed, SETTINGS.index(job.setting), job.split_index,
                         data.drug_index(drug), list(MODELS).index(name))
            start, cpu = time.perf_counter(), time.process_time()
            model, oof, info = _fit_model(name, job, x_tr, y[tr], seed)
            record["models"][name] = {
                "score": np.asarray(model.predict_proba(x_te), dtype=float),
                "threshold": f1_threshold(y[tr], oof), "seconds": time.perf_counter() - start,
                "cpu_seconds": time.process_time() - cpu, **info}
    return {"setting": job.setting, "split": job.split.name, "drugs": out}


def _naive_predictions(data: DrugDataset, split: Split, drug: str, name: str
                       ) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Test rows, scores and the training-chosen threshold of a naive baseline."""
    rows, y = data.labelled(drug)
    tr, te = split.restrict(rows)
    if len(te) == 0 or len(tr) == 0:
        return None
    j = data.drug_index(drug)
    train_lines = split.train
    if name == "naive_mean_effects":
        score_te = naive_mean_effects(data.y, train_lines, rows[te], j)
        score_tr = naive_mean_effects(data.y, train_lines, rows[tr], j)
    else:
        rate = drug_rate(data.y, train_lines)[j]
        score_te = np.full(len(te), rate)
        score_tr = np.full(len(tr), rate)
    return rows[te], score_te, f1_threshold(y[tr], score_tr)


# --- the evaluation -----------------------------------------------------------------------------


def evaluate(config: EvaluationConfig | None = None, executor: Any = None, *,
             data_dir: Path | None = None,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run the evaluation (see the module docstring).

    Args:
        config: what to evaluate and the budget (default :class:`EvaluationConfig`).
        executor: an :mod:`engine.platform.executor` executor (default: serial, this process);
            parallel over (split, drug group) jobs, after one Res-VAE pre-training job per split.
        data_dir: data folder (default the shipped ``assets/data``; tests use fixtures).
        progress: ``(done, total)`` callback over the jobs of both phases.

    Returns:
        JSON-ready dict: ``config``, ``data`` (version, hash, drug table, drugs not held or not
        evaluated), ``models``, ``resvae`` (availability, pre-training policy, config),
        ``settings`` → ``splits``, ``per_drug`` (model → drug → metrics), ``summary`` (model →
        metric → mean/sd/n over drugs), ``best_tree``, ``comparisons``, ``by_tissue`` (leave-
        tissue-out), ``tuning`` (chosen hyper-parameters counts); ``timing_s`` and ``cpu_s`` (per
        model, summed over jobs: wall and CPU seconds), ``elapsed_s`` (wall, the whole run),
        ``machine`` (CPU count, workers, 1/5/15-minute load averages at the start and the end).
    """
    from engine.platform.executor import SerialExecutor

    c = config or EvaluationConfig()
    started = time.perf_counter()
    load_start = _load_average()
    data = load_drug_data(data_dir, c.label_source)
    ok, not_evaluated = evaluable_drugs(data, c.min_class_lines)
    if c.drugs:
        for drug in c.drugs:
            data.drug_index(drug)  # a clear error for an unknown drug
        drugs = [d for d in c.drugs if d in ok]
        not_evaluated = {d: r for d, r in not_evaluated.items() if d in c.drugs}
    else:
        drugs = ok
    if not drugs:
        raise ValueError("no drug to evaluate: " + "; ".join(f"{d}: {r}"
                                                             for d, r in not_evaluated.items()))
    module, reason = _resvae_module()
    models = [m for m in c.models if MODELS[m].family != "resvae" or module is not None]
    dropped = [m for m in c.models if m not in models]
    fitted = [m for m in models if m not in _NAIVE]
    split_sets = {s: make_splits(s, data.lineages, data.y, n_folds=c.n_folds, seed=c.seed,
                                 min_tissue_lines=c.min_tissue_lines) for s in c.settings}

    own = executor if executor is not None else SerialExecutor()
    pre_jobs = [_PretrainJob(s, sp, data_dir, c.label_source, c.resvae_budget,
                             _seed(c.seed, SETTINGS.index(s), k, 99))
                for s in c.settings for k, sp in enumerate(split_sets[s])
                ] if any(MODELS[m].family == "resvae" for m in models) else []
    groups = [tuple(drugs[i:i + c.drugs_per_job]) for i in range(0, len(drugs), c.drugs_per_job)]
    n_drug_jobs = sum(len(v) for v in split_sets.values()) * len(groups) if fitted else 0
    total = len(pre_jobs) + n_drug_jobs

    def phase_progress(offset: int) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, _n: progress(offset + done, total)

    try:
        pretrained = own.map(_run_pretrain, pre_jobs, progress=phase_progress(0),
                             desc="drug: Res-VAE pre-training")
        vaes = {(j.setting, j.split.name): r for j, r in zip(pre_jobs, pretrained, strict=True)}
        jobs = [_DrugJob(s, k, sp, g, tuple(fitted), c, data_dir,
                         vaes[s, sp.name]["vae"] if (s, sp.name) in vaes else None)
                for s in c.settings for k, sp in enumerate(split_sets[s]) for g in groups
                ] if fitted else []
        results = own.map(_run_drugs, jobs, progress=phase_progress(len(pre_jobs)),
                          desc="drug: models per split")
    finally:
        if executor is None:
            own.close()

    # wall seconds inside the jobs (longer on a busy machine) and the jobs' own CPU seconds
    timing: dict[str, float] = {m: 0.0 for m in fitted}
    cpu: dict[str, float] = {m: 0.0 for m in fitted}
    if pretrained:
        timing["resvae_pretraining"] = float(sum(r["seconds"] for r in pretrained))
        cpu["resvae_pretraining"] = float(sum(r["cpu_seconds"] for r in pretrained))
    out_settings: dict[str, Any] = {}
    rng = np.random.default_rng(_seed(c.seed, 7))
    for s in c.settings:
        splits = split_sets[s]
        pooled: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]] = {
            m: {d: [] for d in drugs} for m in models}
        tuning: dict[str, dict[str, int]] = {m: {} for m in fitted}
        skipped: dict[str, list[str]] = {}
        for sp in splits:
            for drug in drugs:
                for m in (x for x in models if x in _NAIVE):
                    got = _naive_predictions(data, sp, drug, m)
                    if got is not None:
                        pooled[m][drug].append((got[0], got[1], got[1] >= got[2]))
        for res in (r for r in results if r["setting"] == s):
            for drug, rec in res["drugs"].items():
                if "skipped" in rec:
                    if len(rec["test_rows"]):
                        skipped.setdefault(drug, []).append(f"{res['split']}: {rec['skipped']}")
                    continue
                for m, got in rec["models"].items():
                    pooled[m][drug].append((rec["test_rows"], got["score"],
                                            got["score"] >= got["threshold"]))
                    timing[m] += got["seconds"]
                    cpu[m] += got["cpu_seconds"]
                    if "params" in got:
                        key = ", ".join(f"{k}={v}" for k, v in got["params"].items())
                        tuning[m][key] = tuning[m].get(key, 0) + 1
                    if "threshold_source" in got:
                        key = f"F1 threshold from {got['threshold_source']}"
                        tuning[m][key] = tuning[m].get(key, 0) + 1
        per_drug: dict[str, dict[str, Any]] = {m: {} for m in models}
        for m in models:
            for drug in drugs:
                j = data.drug_index(drug)
                parts = [(data.y[rows, j].astype(np.int64), score, called)
                         for rows, score, called in pooled[m][drug]]
                if parts:
                    per_drug[m][drug] = held_out_metrics(parts)
        metric_names = ("auroc", "auprc", "auprc_sensitive", "f1", "f1_all_resistant")
        means = {m: {k: summary([v[k] for v in per_drug[m].values()]) for k in metric_names}
                 for m in models}
        trees = [m for m in ("random_forest", "xgboost") if m in models]
        best_tree = max(trees, key=lambda m: means[m]["auroc"]["mean"] or -1.0) if trees \
            else None
        comparisons: dict[str, dict[str, Any]] = {}
        for ref in ([r for r in ("naive_mean_effects",) if r in models]
                    + ([best_tree] if best_tree else [])):
            comparisons[f"vs_{ref}"] = {}
            for m in models:
                if m == ref:
                    continue
                common = [d for d in drugs if d in per_drug[m] and d in per_drug[ref]
                          and per_drug[m][d]["auroc"] is not None
                          and per_drug[ref][d]["auroc"] is not None]
                diff = np.array([per_drug[m][d]["auroc"] - per_drug[ref][d]["auroc"]
                                 for d in common])
                comparisons[f"vs_{ref}"][m] = {"metric": "auroc", **paired_bootstrap(
                    diff, c.n_bootstrap, c.ci_level, rng)}
        entry: dict[str, Any] = {
            "splits": [{"name": sp.name, "n_train_lines": len(sp.train),
                        "n_test_lines": len(sp.test)} for sp in splits],
            "per_drug": per_drug, "summary": means, "best_tree": best_tree,
            "comparisons": comparisons, "tuning": tuning, "skipped_splits": skipped,
        }
        if s == "leave_tissue_out":
            entry["by_tissue"] = _by_tissue(data, splits, pooled, drugs, models)
        out_settings[s] = entry

    resvae_info: dict[str, Any] = {
        "available": module is not None,
        "note": reason if module is None else "",
        "models_dropped": dropped,
        "pretraining": ("once per split, unsupervised, on that split's training lines only "
                        "(every line not held out, labelled or not; no drug label is read); "
                        "one pre-trained encoder serves every drug's head of that split"),
    }
    if module is not None:
        resvae_info["config"] = _config_dict(_resvae_config(module, c.resvae_budget))
        resvae_info["pretraining_seconds"] = [
            {"setting": j.setting, "split": j.split.name, "n_lines": r["n_lines"],
             "seconds": r["seconds"]} for j, r in zip(pre_jobs, pretrained, strict=True)]
    info = data.drug_info.reset_index()
    return {
        "config": c.to_dict(),
        "data": {
            "version": data.version, "data_hash": data.data_hash,
            "n_lines": len(data.lines), "n_features": int(data.x.shape[1]),
            "label_source": c.label_source,
            "drugs": {str(r["drug"]): {k: _plain(r[k]) for k in info.columns if k != "drug"}
                      for _, r in info.iterrows()},
            "evaluated": drugs, "not_evaluated": not_evaluated, "not_held": data.not_held,
            "tissues": {t: int(n) for t, n in zip(*np.unique(
                tissues(data.lineages).astype(str), return_counts=True), strict=True)},
        },
        "models": {m: asdict(MODELS[m]) for m in models},
        "resvae": resvae_info,
        "settings": out_settings,
        "timing_s": timing,
        "cpu_s": cpu,
        "elapsed_s": time.perf_counter() - started,
        "machine": {"cpu_count": os.cpu_count(), "workers": getattr(own, "n_workers", 1),
                    "load_average_start": load_start, "load_average_end": _load_average()},
    }


def _load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (None where the OS has none): a wall time is
    judged against what else the machine ran."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


MIN_TISSUE_CLASS_LINES = 5
"""Leave-tissue-out per tissue: a drug is ranked within a tissue with at least this many
sensitive and resistant held-out lines of it."""


def _by_tissue(data: DrugDataset, splits: list[Split], pooled: dict[str, Any],
               drugs: list[str], models: list[str]) -> dict[str, Any]:
    """Leave-tissue-out per held-out tissue: per drug the AUROC within the tissue (when it has
    :data:`MIN_TISSUE_CLASS_LINES` lines of each class) and the mean over those drugs."""
    out: dict[str, Any] = {}
    for sp in splits:
        held = set(sp.test.tolist())
        per_drug: dict[str, dict[str, float]] = {m: {} for m in models}
        counts: dict[str, dict[str, int]] = {}
        for drug in drugs:
            j = data.drug_index(drug)
            for m in models:
                part = next((p for p in pooled[m][drug] if len(p[0]) and int(p[0][0]) in held),
                            None)
                if part is None:
                    continue
                y = data.y[part[0], j].astype(np.int64)
                n_sens = int((y == 0).sum())
                counts[drug] = {"n_lines": len(y), "n_sensitive": n_sens}
                if min(n_sens, len(y) - n_sens) >= MIN_TISSUE_CLASS_LINES:
                    per_drug[m][drug] = float(roc_auc_score(y, part[1]))
        out[sp.name] = {
            "n_lines": len(sp.test), "drug_counts": counts,
            "auroc": {m: summary(list(per_drug[m].values())) for m in models},
            "per_drug_auroc": per_drug,
        }
    return out


# --- saving, loading, text ----------------------------------------------------------------------


def save_evaluation(result: dict[str, Any], models_dir: Any = None):
    """Save ``result`` as ``models/drug/evaluation.json`` through the registry; returns its meta
    (seed, config with the Res-VAE's config under ``resvae``, data hash, metrics: mean AUROC per
    setting and model)."""
    from engine.platform import registry

    root = settings.models_dir(models_dir)
    metrics = {f"{s}.{m}.auroc_mean": v["auroc"]["mean"]
               for s, info in result["settings"].items() for m, v in info["summary"].items()}
    config = {**result["config"], "resvae": result["resvae"].get("config")}
    return registry.save_json_artifact(
        root, FAMILY, EVALUATION_NAME, result, seed=int(result["config"]["seed"]),
        config=config, data_hash=result["data"]["data_hash"],
        cohort_version=result["data"]["version"], metrics=metrics)


def load_evaluation(models_dir: Any = None) -> tuple[dict[str, Any], Any]:
    """The saved evaluation and its manifest meta (hash-checked)."""
    from engine.platform import registry

    root = settings.models_dir(models_dir)
    return registry.load_json_artifact(root, FAMILY, EVALUATION_NAME)


def _pm(entry: dict[str, Any], digits: int = 3) -> str:
    if entry.get("mean") is None:
        return "n/a"
    return f"{entry['mean']:.{digits}f} ± {entry['sd']:.{digits}f}"


def text_table(result: dict[str, Any]) -> str:
    """The summary as aligned text (for the command line)."""
    data = result["data"]
    lines = [f"Drug resistance (1 = resistant): {len(data['evaluated'])} drugs, "
             f"{data['n_lines']} lines x {data['n_features']} features ({data['version']}); "
             f"{result['elapsed_s']:.0f} s"]
    if not result["resvae"]["available"]:
        lines.append(f"Res-VAE left out: {result['resvae']['note']}")
    for s, info in result["settings"].items():
        names = ", ".join(sp["name"] for sp in info["splits"])
        lines.append(f"\n{s} (splits: {names}); mean ± sd over drugs")
        for m, summ in info["summary"].items():
            flag = "  uses the line's other-drug labels" if result["models"][m][
                "uses_other_drug_labels"] else ""
            lines.append(f"  {m:20s} AUROC {_pm(summ['auroc'])}  AUPRC(sens) "
                         f"{_pm(summ['auprc_sensitive'])}  F1 {_pm(summ['f1'])} "
                         f"(all resistant {_pm(summ['f1_all_resistant'])}){flag}")
        for ref, table in info["comparisons"].items():
            for m, d in table.items():
                if d["mean"] is None:
                    continue
                ci = ("" if d["ci_low"] is None else
                      f" [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] ({100 * d['level']:.0f} % CI)")
                lines.append(f"  AUROC {m} {ref.replace('_', ' ')}: {d['mean']:+.3f}{ci}, better "
                             f"on {d['n_better']}/{d['n_drugs']} drugs")
    return "\n".join(lines)
