"""The served drug-resistance models, loaded: one model family for every drug, trained on all
labelled lines, calibrated on leave-cell-line-out out-of-fold predictions, with a bagged-ensemble
range. Which family serves and how it is trained: :mod:`engine.drug.serving_train`
(``artds train drug``).

**Artifacts** (``models/drug/``, through :mod:`engine.platform.registry`): ``served_trees.pt`` (the
packed trees of every drug, :mod:`engine.drug.trees`; a state_dict of tensors),
``served.json`` (model choice, per-drug calibration, metrics, hyper-parameters, the cross-fitted
out-of-fold probability of every labelled line, and the sha256 of ``served_trees.pt``, checked
on load so the two files always belong together) and ``interpretation.json``.

**Prediction** (:class:`ServedDrugModels`): a profile's 2,118 features → per drug the calibrated
probability of resistance of the point model, the percentile range over the members, the
model's leave-cell-line-out AUROC and the naive baseline's, and (on request) the SHAP values of
the point model for that profile.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine import settings
from engine.drug.calibration import PlattCalibration
from engine.drug.data import DrugDataset, load_drug_data
from engine.drug.evaluate import FAMILY
from engine.drug.interpret import explain_with, tree_explainer
from engine.drug.trees import PackedTrees, stack
from engine.platform import registry

__all__ = [
    "DEFAULT_COPY_NUMBER",
    "DEFAULT_MUTATION",
    "PREDICT_CHUNK",
    "SERVED_NAME",
    "TREES_NAME",
    "DrugPrediction",
    "ServedDrugModels",
    "data_for",
    "load_served_drug",
]

SERVED_NAME = "served"
"""Registry name of the served models' JSON (``models/drug/served.json``)."""
TREES_NAME = "served_trees"
"""Registry name of the packed trees (``models/drug/served_trees.pt``)."""
DEFAULT_MUTATION = 0.0
"""Mutation call assumed for a gene without a ``mut_`` column: not mutated."""
DEFAULT_COPY_NUMBER = 1.0
"""Relative copy number assumed for a gene without a ``cn_`` column: diploid."""
PREDICT_CHUNK = 25
"""Profiles walked through the trees at a time (memory: chunk × trees × 8 bytes)."""


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9)
    return np.log(q / (1 - q))


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


@dataclass(frozen=True)
class DrugPrediction:
    """One drug's prediction for one profile."""

    drug: str
    p_resistant: float
    """Calibrated probability of resistance from the point model (0–1)."""
    low: float
    """Lower end of the range: the bagged members' spread (``level`` percentile range of their
    calibrated logits around their median) placed around ``p_resistant``."""
    high: float
    """Upper end of that range (``low ≤ p_resistant ≤ high``)."""
    level: float
    """Level of the range (e.g. 0.8: the 10th–90th percentiles)."""
    cv_auroc: float | None
    """The served family's leave-cell-line-out AUROC for this drug (saved evaluation)."""
    naive_auroc: float | None
    """The naive mean-effects baseline's AUROC on the same splits (it reads the held-out line's
    responses to other drugs)."""
    resistant_rate: float
    """Share of the drug's labelled lines that are resistant (the base rate)."""
    top_features: tuple[dict[str, Any], ...] = ()
    """This profile's features with the largest |SHAP| (point model; see
    :meth:`ServedDrugModels.explain`); empty unless asked for."""

    def to_dict(self) -> dict[str, Any]:
        return {"drug": self.drug, "p_resistant": self.p_resistant,
                "interval": {"low": self.low, "high": self.high, "level": self.level},
                "cv_auroc": self.cv_auroc, "naive_auroc": self.naive_auroc,
                "resistant_rate": self.resistant_rate,
                "top_features": list(self.top_features)}


@dataclass(frozen=True, eq=False)
class ServedDrugModels:
    """The loaded served models (read-only)."""

    payload: dict[str, Any]
    """``served.json``."""
    trees: PackedTrees
    """Every drug's point model and members, stacked: drug ``k`` owns ensembles
    ``k · (n_members + 1)`` (point) to ``k · (n_members + 1) + n_members``."""
    version: str
    """First 12 hex of ``served.json``'s sha256."""
    created: str
    """When it was trained (UTC)."""
    _explainers: dict[int, Any] = field(default_factory=dict, repr=False)
    """Cache: drug index → the SHAP explainer of its point model."""

    @property
    def drugs(self) -> list[str]:
        return sorted(self.payload["drugs"], key=lambda d: self.payload["drugs"][d]["index"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.payload["feature_names"])

    @property
    def n_members(self) -> int:
        return int(self.payload["interval"]["n_members"])

    @property
    def level(self) -> float:
        return float(self.payload["interval"]["level"])

    @property
    def label(self) -> str:
        return (f"{self.payload['model_label']}; Platt-calibrated; {self.n_members} bagged "
                f"members")

    def info(self, drug: str) -> dict[str, Any]:
        """The saved record of ``drug`` (calibration, CV numbers, metrics)."""
        try:
            return self.payload["drugs"][drug]
        except KeyError:
            raise ValueError(f"drug {drug!r} is not served; accepted: "
                             f"{', '.join(self.drugs)}") from None

    def _calibration(self, drug: str) -> PlattCalibration:
        return PlattCalibration.from_dict(self.info(drug)["calibration"])

    def predict(self, x: np.ndarray, drugs: Sequence[str] | None = None, *,
                progress: Callable[[int, int], None] | None = None
                ) -> list[list[DrugPrediction]]:
        """Per profile of ``x [n, F]`` and per drug (all served drugs by default, in served
        order), the calibrated probability with its range and CV AUROCs.

        ``progress(done, total)`` is called after each chunk of :data:`PREDICT_CHUNK` profiles.
        """
        chosen = list(drugs) if drugs is not None else self.drugs
        for drug in chosen:
            self.info(drug)  # a clear error for a drug that is not served
        xs = np.asarray(x, dtype=np.float32)
        if xs.ndim != 2 or xs.shape[1] != self.trees.n_features:
            raise ValueError(f"x must be [n, {self.trees.n_features}], got shape {xs.shape}")
        parts = []
        for start in range(0, xs.shape[0], PREDICT_CHUNK):
            parts.append(self.trees.predict_proba(xs[start:start + PREDICT_CHUNK]))
            if progress is not None:
                progress(min(start + PREDICT_CHUNK, xs.shape[0]), xs.shape[0])
        raw = np.concatenate(parts, axis=1)  # [n_models, n]
        width = self.n_members + 1
        lo_q, hi_q = (1 - self.level) / 2, (1 + self.level) / 2
        out: list[list[DrugPrediction]] = [[] for _ in range(raw.shape[1])]
        for drug in chosen:
            info = self.info(drug)
            k = int(info["index"])
            cal = self._calibration(drug)
            point = cal.apply(raw[k * width])  # [n]
            members = _logit(cal.apply(raw[k * width + 1:(k + 1) * width]))  # [M, n]
            # the members' spread, centred on the point model (logit scale): a bootstrap
            # member sees ~63 % of the lines, so the members' centre is biased against the
            # point model fitted on all of them; their spread is what resampling changes
            spread = np.quantile(members - np.median(members, axis=0), [lo_q, hi_q], axis=0)
            low, high = _expit(_logit(point) + spread[0]), _expit(_logit(point) + spread[1])
            for i in range(raw.shape[1]):
                out[i].append(DrugPrediction(
                    drug=drug, p_resistant=float(point[i]), low=float(low[i]),
                    high=float(high[i]), level=self.level, cv_auroc=info["cv"]["auroc"],
                    naive_auroc=info["cv"]["naive_auroc"],
                    resistant_rate=float(info["resistant_rate"])))
        return out

    def explain(self, x: np.ndarray, drug: str, top: int = 10) -> list[list[dict[str, Any]]]:
        """Per profile of ``x [n, F]``: the ``top`` features by |SHAP| of ``drug``'s point model
        (``shap`` > 0 pushes toward resistance; units ``"probability"`` for forests, ``"logit"``
        for boosters, before calibration), with the profile's value of each."""
        from engine.drug.interpret import feature_parts

        k = int(self.info(drug)["index"])
        if k not in self._explainers:
            self._explainers[k] = tree_explainer(
                self.trees.select([k * (self.n_members + 1)]), 0)
        values, expected, units = explain_with(self._explainers[k], x)
        names = self.feature_names
        xs = np.asarray(x, dtype=np.float64)
        out = []
        for i in range(values.shape[0]):
            order = np.lexsort((np.arange(values.shape[1]), -np.abs(values[i])))[:top]
            out.append([{**feature_parts(names[j]), "value": float(xs[i, j]),
                         "shap": float(values[i, j]), "units": units,
                         "expected_value": expected} for j in order])
        return out

    def held_out(self, drug: str, line: str) -> dict[str, Any] | None:
        """A labelled line's held-out prediction for ``drug`` (cross-fitted calibrated
        out-of-fold probability, its fold and measured label), or None when the line has no
        label for the drug (then the served model never saw it)."""
        rec = self.payload["held_out"].get(drug)
        if rec is None:
            return None
        try:
            i = rec["lines"].index(line)
        except ValueError:
            return None
        return {"p_held_out": rec["p_held_out"][i], "fold": rec["fold"][i],
                "measured": "resistant" if rec["y"][i] == 1 else "sensitive"}


@functools.lru_cache(maxsize=4)
def load_served_drug(models_dir: Path | str | None = None) -> ServedDrugModels:
    """Load ``served.json`` and ``served_trees.pt`` from ``<models_dir>/drug/`` (both hash-checked
    against the manifest, and the trees against the sha256 recorded in the JSON); cached per
    folder.

    Raises:
        registry.ArtifactError: missing, unlisted, changed or mismatched artifacts.
    """
    root = settings.models_dir(models_dir)
    payload, meta = registry.load_json_artifact(root, FAMILY, SERVED_NAME)
    state, trees_meta = registry.load_artifact(root, FAMILY, TREES_NAME)
    if trees_meta.sha256 != payload.get("trees_sha256"):
        raise registry.ArtifactError(
            f"{FAMILY}/{TREES_NAME}.pt does not belong to {FAMILY}/{SERVED_NAME}.json (its "
            "sha256 differs from the one recorded at training); retrain with "
            "`artds train drug`")
    order = sorted(payload["drugs"], key=lambda d: payload["drugs"][d]["index"])
    meta_trees = {"kind": payload["kind"], "n_features": payload["n_features"]}
    try:
        parts = [PackedTrees.from_state(state, meta_trees, f"d{payload['drugs'][d]['index']}.")
                 for d in order]
    except (KeyError, ValueError) as err:
        raise registry.ArtifactError(f"{FAMILY}/{TREES_NAME}.pt: {err}; retrain with "
                                     "`artds train drug`") from None
    expected = int(payload["interval"]["n_members"]) + 1
    if any(p.n_models != expected for p in parts):
        raise registry.ArtifactError(f"{FAMILY}/{TREES_NAME}.pt: a drug does not hold "
                                     f"{expected} models; retrain with `artds train drug`")
    return ServedDrugModels(payload=payload, trees=stack(parts), version=meta.sha256[:12],
                            created=meta.created)


def data_for(models: ServedDrugModels, data_dir: Path | None = None) -> DrugDataset:
    """The data set the served models were trained on (for example lines and their labels)."""
    data = load_drug_data(data_dir, models.payload["label_source"])
    if data.version != models.payload["data_version"]:
        raise ValueError(f"the data ({data.version}) are not those the served models were "
                         f"trained on ({models.payload['data_version']})")
    return data
