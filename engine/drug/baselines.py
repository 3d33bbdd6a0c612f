"""Baselines for drug resistance: tuned random forest and XGBoost, and the naive baselines.

* :class:`TunedRandomForest` — scikit-learn's ``RandomForestClassifier``; its hyper-parameters
  are chosen by the **out-of-bag** AUROC on the training lines (each grid point is fitted once
  on the training lines; a line's out-of-bag prediction comes only from trees that never saw it),
  so tuning never sees a test line and the chosen forest needs no refit.
* :class:`TunedXGBoost` — ``xgboost.XGBClassifier`` (histogram trees); depth × number of
  boosting rounds chosen by the AUROC of a stratified inner cross-validation on the training
  lines (one fit per depth and inner fold scores every round count at once), then refitted on
  all training lines.
* :func:`naive_mean_effects` — DrEval's "naive mean effects" for a classification target: the
  drug's resistance rate on the training lines, adjusted by the line's mean deviation from the
  other drugs' training rates over the other drugs it was tested with (never the drug being
  predicted). For a held-out line this uses **its measured responses to the other drugs**: a
  clinic has no such panel for a new tumour, so this is a strong, partly informed bar, not a
  deployable model.
* :func:`drug_rate` — the drug's training resistance rate alone (the same score for every line
  of a test set: AUROC 0.5 within any one test set by construction).

Both tree models expose ``oof_``: out-of-sample predictions for their training lines
(out-of-bag or inner cross-validation), from which the evaluation picks each model's F1
threshold without touching the test lines.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from engine.core.config import DictConfig, check_choice, check_range
from engine.drug.data import MISSING

__all__ = [
    "ForestConfig",
    "TunedRandomForest",
    "TunedXGBoost",
    "XGBoostConfig",
    "drug_rate",
    "naive_mean_effects",
]


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    """AUROC, or NaN when a class is absent or a score is undefined."""
    ok = np.isfinite(score)
    if ok.sum() < 2 or len(np.unique(y[ok])) < 2:
        return float("nan")
    return float(roc_auc_score(y[ok], score[ok]))


def _check_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be [n, F] and y [n]; got {x.shape} and {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must hold 0 (sensitive) and 1 (resistant) only")
    if np.bincount(y.astype(np.int64), minlength=2).min() < 2:
        raise ValueError("y needs at least 2 lines of each class to fit a tuned model")
    return x, y.astype(np.int64)


@dataclass(frozen=True)
class ForestConfig(DictConfig):
    """Random forest and its tuning grid (out-of-bag AUROC on the training lines)."""

    n_estimators: int = 100
    """Trees per forest. Accepted ≥ 10 (out-of-bag predictions need enough trees)."""
    min_samples_leaf: tuple[int, ...] = (1, 5)
    """Grid: smallest number of lines in a leaf. Each value ≥ 1."""
    max_features: tuple[str | float, ...] = ("sqrt",)
    """Grid: features tried per split, ``"sqrt"``, ``"log2"`` or a fraction in (0, 1]."""
    class_weight: str = "balanced_subsample"
    """``"balanced_subsample"`` (classes reweighted in each bootstrap sample; sensitive lines
    are the minority) or ``"none"``."""
    n_jobs: int = 1
    """Threads per forest (1: the evaluation parallelises over drugs). Accepted ≥ 1."""

    def __post_init__(self) -> None:
        check_range("ForestConfig.n_estimators", self.n_estimators, 10, integer=True)
        if not self.min_samples_leaf or not self.max_features:
            raise ValueError("ForestConfig: min_samples_leaf and max_features need ≥ 1 value")
        for v in self.min_samples_leaf:
            check_range("ForestConfig.min_samples_leaf", v, 1, integer=True)
        for v in self.max_features:
            if isinstance(v, str):
                check_choice("ForestConfig.max_features", v, ("sqrt", "log2"))
            else:
                check_range("ForestConfig.max_features", v, 0.0, 1.0, lo_open=True)
        check_choice("ForestConfig.class_weight", self.class_weight,
                     ("balanced_subsample", "none"))
        check_range("ForestConfig.n_jobs", self.n_jobs, 1, integer=True)

    def grid(self) -> list[dict[str, int | str | float]]:
        """The grid points, in a fixed order."""
        return [{"min_samples_leaf": leaf, "max_features": feat}
                for feat in self.max_features for leaf in self.min_samples_leaf]


class TunedRandomForest:
    """Random forest tuned by out-of-bag AUROC; ``fit`` sets ``model_``, ``best_params_``,
    ``oof_`` (the chosen forest's out-of-bag probabilities of resistance, ``[n]``; NaN for a
    line in every bootstrap sample) and ``grid_scores_``."""

    def __init__(self, config: ForestConfig | None = None, seed: int = 0) -> None:
        self.config = config or ForestConfig()
        self.seed = int(seed)

    def fit(self, x: np.ndarray, y: np.ndarray) -> TunedRandomForest:
        """Fit every grid point on ``x [n, F]``, ``y [n]`` (1 = resistant); keep the best."""
        x, y = _check_xy(x, y)
        c = self.config
        best: tuple[float, int] | None = None
        self.grid_scores_: list[dict[str, object]] = []
        for k, params in enumerate(c.grid()):
            forest = RandomForestClassifier(
                n_estimators=c.n_estimators, oob_score=True, bootstrap=True,
                class_weight=None if c.class_weight == "none" else c.class_weight,
                n_jobs=c.n_jobs, random_state=self.seed, **params)
            with warnings.catch_warnings():
                # a line drawn into every bootstrap sample has no OOB prediction (NaN, ignored)
                warnings.simplefilter("ignore", UserWarning)
                forest.fit(x, y)
            oob = forest.oob_decision_function_[:, 1]
            score = _auroc(y, oob)
            self.grid_scores_.append({**params, "oob_auroc": score})
            key = (score if np.isfinite(score) else -np.inf, -k)
            if best is None or key > best:
                best = key
                self.model_, self.best_params_, self.oof_ = forest, params, oob
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probability of resistance ``[n]`` for ``x [n, F]``."""
        return self.model_.predict_proba(np.asarray(x, dtype=np.float32))[:, 1]


@dataclass(frozen=True)
class XGBoostConfig(DictConfig):
    """XGBoost and its tuning grid (AUROC of an inner stratified cross-validation)."""

    max_depth: tuple[int, ...] = (2, 3)
    """Grid: tree depth. Each value 1–12."""
    n_estimators: tuple[int, ...] = (25, 50, 100, 150)
    """Grid: boosting rounds (one fit of the largest scores every smaller count). Each ≥ 1."""
    learning_rate: float = 0.1
    """Shrinkage per round. Accepted (0, 1]."""
    subsample: float = 0.8
    """Fraction of the lines drawn for each tree. Accepted (0, 1]."""
    colsample_bytree: float = 0.3
    """Fraction of the features drawn for each tree. Accepted (0, 1]."""
    min_child_weight: float = 1.0
    """Smallest hessian sum in a leaf. Accepted ≥ 0."""
    max_bin: int = 32
    """Histogram bins per feature. Accepted 2–256."""
    inner_folds: int = 3
    """Inner cross-validation folds on the training lines. Accepted 2–10."""
    n_jobs: int = 1
    """Threads per model (1: the evaluation parallelises over drugs). Accepted ≥ 1."""

    def __post_init__(self) -> None:
        if not self.max_depth or not self.n_estimators:
            raise ValueError("XGBoostConfig: max_depth and n_estimators need ≥ 1 value")
        for v in self.max_depth:
            check_range("XGBoostConfig.max_depth", v, 1, 12, integer=True)
        for v in self.n_estimators:
            check_range("XGBoostConfig.n_estimators", v, 1, integer=True)
        check_range("XGBoostConfig.learning_rate", self.learning_rate, 0.0, 1.0, lo_open=True)
        check_range("XGBoostConfig.subsample", self.subsample, 0.0, 1.0, lo_open=True)
        check_range("XGBoostConfig.colsample_bytree", self.colsample_bytree, 0.0, 1.0,
                    lo_open=True)
        check_range("XGBoostConfig.min_child_weight", self.min_child_weight, 0.0)
        check_range("XGBoostConfig.max_bin", self.max_bin, 2, 256, integer=True)
        check_range("XGBoostConfig.inner_folds", self.inner_folds, 2, 10, integer=True)
        check_range("XGBoostConfig.n_jobs", self.n_jobs, 1, integer=True)


class TunedXGBoost:
    """XGBoost tuned by inner cross-validated AUROC; ``fit`` sets ``model_`` (an
    ``xgboost.Booster``), ``best_params_``, ``oof_`` (inner cross-validated probabilities of
    resistance of the chosen setting, ``[n]``) and ``grid_scores_``.

    The histogram bin edges are sketched once from the training lines' features (no labels) and
    shared by the inner fits, which saves most of a fit's fixed cost on 2,118 features.
    """

    def __init__(self, config: XGBoostConfig | None = None, seed: int = 0) -> None:
        self.config = config or XGBoostConfig()
        self.seed = int(seed)

    def _params(self, depth: int) -> dict[str, object]:
        c = self.config
        return {"objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist",
                "max_depth": depth, "eta": c.learning_rate, "subsample": c.subsample,
                "colsample_bytree": c.colsample_bytree, "min_child_weight": c.min_child_weight,
                "max_bin": c.max_bin, "nthread": c.n_jobs, "seed": self.seed, "verbosity": 0}

    def fit(self, x: np.ndarray, y: np.ndarray) -> TunedXGBoost:
        """Inner CV over the grid on ``x [n, F]``, ``y [n]`` (1 = resistant); refit the best."""
        import xgboost as xgb

        x, y = _check_xy(x, y)
        c = self.config
        rounds = sorted(set(c.n_estimators))
        n_folds = min(c.inner_folds, int(np.bincount(y).min()))
        folds = StratifiedKFold(n_folds, shuffle=True, random_state=self.seed).split(x, y)
        full = xgb.QuantileDMatrix(x, label=y, max_bin=c.max_bin, nthread=c.n_jobs)
        oof = {(d, r): np.full(len(y), np.nan) for d in c.max_depth for r in rounds}
        for train, val in folds:
            dtrain = xgb.QuantileDMatrix(x[train], label=y[train], ref=full, max_bin=c.max_bin,
                                         nthread=c.n_jobs)
            dval = xgb.DMatrix(x[val], nthread=c.n_jobs)
            for depth in c.max_depth:
                booster = xgb.train(self._params(depth), dtrain, num_boost_round=rounds[-1])
                for r in rounds:
                    oof[depth, r][val] = booster.predict(dval, iteration_range=(0, r))
        self.grid_scores_ = [{"max_depth": d, "n_estimators": r, "inner_auroc": _auroc(y, p)}
                             for (d, r), p in oof.items()]
        best = max(range(len(self.grid_scores_)), key=lambda k: (
            np.nan_to_num(self.grid_scores_[k]["inner_auroc"], nan=-np.inf), -k))
        d, r = self.grid_scores_[best]["max_depth"], self.grid_scores_[best]["n_estimators"]
        self.best_params_ = {"max_depth": d, "n_estimators": r}
        self.oof_ = oof[d, r]
        self.model_ = xgb.train(self._params(d), full, num_boost_round=r)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probability of resistance ``[n]`` for ``x [n, F]``."""
        import xgboost as xgb

        data = xgb.DMatrix(np.asarray(x, dtype=np.float32), nthread=self.config.n_jobs)
        return self.model_.predict(data).astype(np.float64)


def drug_rate(y: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Training resistance rate of every drug.

    Args:
        y: labels ``[n_lines, n_drugs]``, 1 resistant, 0 sensitive, :data:`MISSING` masked.
        train: indices of the training lines.

    Returns:
        ``[n_drugs]`` rates in [0, 1]; NaN for a drug without a training label.
    """
    yt = y[train]
    labelled = yt != MISSING
    n = labelled.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (yt == 1).sum(0) / np.maximum(n, 1), np.nan)


def naive_mean_effects(y: np.ndarray, train: np.ndarray, rows: np.ndarray,
                       drug: int) -> np.ndarray:
    """DrEval's naive mean effects for one drug, as a resistance score in [0, 1].

    ``score(i) = clip(r_d + mean_{d' ≠ d, i labelled for d'} (y[i, d'] − r_d'), 0, 1)`` with
    ``r`` the drugs' resistance rates on the training lines. The mean runs over the other drugs
    the line has labels for (never ``drug``); a line without any gets ``r_d``. For a training
    line the rates leave that line's own label out (so its score, used to pick the F1
    threshold, is out-of-sample like a test line's).

    Args:
        y: labels ``[n_lines, n_drugs]`` (1, 0 or :data:`MISSING`), all lines.
        train: indices of the training lines (they define the rates).
        rows: lines to score (test or training lines).
        drug: column of the drug predicted.

    Returns:
        ``[len(rows)]`` scores.
    """
    yt = y[train]
    labelled = (yt != MISSING)
    n = labelled.sum(0).astype(float)  # [D]
    k = (yt == 1).sum(0).astype(float)  # [D]
    yr = y[rows]  # [m, D]
    lab_r = yr != MISSING
    in_train = np.isin(rows, train)[:, None] & lab_r  # own label inside the rates
    n_r = n[None, :] - in_train  # [m, D] leave-own-label-out counts
    k_r = k[None, :] - (in_train & (yr == 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n_r > 0, k_r / np.maximum(n_r, 1), np.nan)  # [m, D]
    other = lab_r & np.isfinite(rate)
    other[:, drug] = False
    dev = np.where(other, (yr == 1) - np.nan_to_num(rate), 0.0)
    count = other.sum(1)
    mean_dev = np.where(count > 0, dev.sum(1) / np.maximum(count, 1), 0.0)
    return np.clip(rate[:, drug] + mean_dev, 0.0, 1.0)
