"""Which genes push the Res-VAE's resistance predictions: captum Integrated Gradients of the
per-drug classifier (encoder + head), ranked per drug and tissue like the trees' SHAP values
(:mod:`engine.drug.interpret`), with their stability across folds and the paper's TFF1 claim
checked.

**Attributions** (:func:`integrated_gradients`): captum's ``IntegratedGradients`` (Sundararajan
et al. 2017) on the fitted pipeline raw features → standardisation → encoder mean → head →
resistance **logit**, from a baseline that is the pre-training lines' mean profile (for binary
mutation columns, the mutation frequency). A line's attributions sum to its logit minus the
baseline's (completeness, up to the quadrature error, which is measured and saved); a positive
attribution pushes that line toward resistance.

**Models explained** (:func:`explain_resvae`): exactly the evaluation's leave-cell-line-out
Res-VAE models — per fold the VAE pre-trained on that fold's training lines with the
evaluation's seed, and per drug the head fitted with the evaluation's seed (the variant with the
higher mean leave-cell-line-out AUROC in the saved evaluation, or the one asked for). The held-out
AUROC of these refitted models is compared with the saved evaluation's (``auroc_matches_
evaluation``), so the explained models are shown to be the evaluated ones. Every labelled line is
explained by the fold model that never saw it (held-out attributions), ranked per group of lines
(:func:`engine.drug.interpret.line_groups`: all, each lineage with enough lines, lung and liver
sub-subtypes) by mean |attribution|; each fold model also explains all the drug's labelled lines,
and the folds' top-``k`` sets give the stability (:func:`engine.drug.interpret.stability`).

The saved ``models/drug/interpretation_resvae.json`` keeps the top ``top_features`` features per
drug and group, in the trees' form (``mean_abs_attribution`` / ``mean_attribution`` instead of
``*_shap``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from engine import settings
from engine.core.config import DictConfig, check_choice, check_range
from engine.drug.resvae import ResVAEClassifier, _check_x

__all__ = [
    "RESVAE_INTERPRETATION_NAME",
    "VARIANTS",
    "ResVAEExplainConfig",
    "explain_resvae",
    "integrated_gradients",
    "load_resvae_interpretation",
    "save_resvae_interpretation",
]

RESVAE_INTERPRETATION_NAME = "interpretation_resvae"
"""Registry name of the saved attributions (``models/drug/interpretation_resvae.json``)."""
VARIANTS: tuple[str, ...] = ("resvae_frozen", "resvae_unfrozen")
"""Res-VAE variants that can be explained (keys of :data:`engine.drug.evaluate.MODELS`)."""
_LCLO = "leave_cell_line_out"


def integrated_gradients(clf: ResVAEClassifier, x: Any, baseline: Any = None,
                         n_steps: int = 32) -> np.ndarray:
    """Integrated-gradients attributions of the resistance logit to the input features.

    captum's ``IntegratedGradients`` on :meth:`ResVAEClassifier.logit_model` (raw features →
    standardisation → encoder mean → head logit), Gauss–Legendre quadrature with ``n_steps``
    points. Completeness: each line's attributions sum to ``logit(x) − logit(baseline)`` up to
    the quadrature error (a few per cent at 32 steps on these smooth networks).

    Args:
        clf: a fitted classifier.
        x: ``[n, F]`` raw profiles to explain.
        baseline: ``[F]`` or ``[n, F]`` reference profile(s); default the VAE's training lines'
            mean profile (for binary columns, the mutation frequency).
        n_steps: quadrature points, ≥ 2.

    Returns:
        ``[n, F]`` attributions in logit units; > 0 pushes toward resistance.
    """
    from captum.attr import IntegratedGradients  # heavy import, only for interpretation

    check_range("n_steps", n_steps, 2, integer=True)
    n_features = int(clf.mean_.shape[0])
    inputs = torch.from_numpy(_check_x(x, n_features))
    if baseline is None:
        base = clf.baseline_.expand_as(inputs).clone()
    else:
        b = np.asarray(baseline, dtype=np.float32)
        b = _check_x(b[None, :] if b.ndim == 1 else b, n_features, name="baseline")
        if b.shape[0] not in (1, inputs.shape[0]):
            raise ValueError(f"baseline must have 1 or {inputs.shape[0]} rows, got {b.shape[0]}")
        base = torch.from_numpy(b).expand_as(inputs).clone()
    ig = IntegratedGradients(clf.logit_model())
    attr = ig.attribute(inputs, baselines=base, n_steps=n_steps, method="gausslegendre",
                        internal_batch_size=max(n_steps, 4096 // n_steps * n_steps))
    return attr.detach().numpy().astype(np.float64)


@dataclass(frozen=True)
class ResVAEExplainConfig(DictConfig):
    """What is explained and how (the models themselves follow the saved evaluation)."""

    variant: str = "auto"
    """``"auto"``: the Res-VAE variant with the higher mean leave-cell-line-out AUROC in the
    saved evaluation; or one of :data:`VARIANTS`."""
    n_steps: int = 32
    """Gauss–Legendre points of the integrated gradients. Accepted 4–256."""
    top_features: int = 15
    """Features kept per drug and group (as the trees' interpretation). Accepted 1–200."""
    stability_k: int = 20
    """Size of the top-feature sets compared across folds. Accepted 1–200."""
    min_group_lines: int = 10
    """A tissue (or lung/liver sub-subtype) gets its own ranking with at least this many
    labelled lines. Accepted ≥ 2."""
    drugs: tuple[str, ...] = ()
    """Drugs explained; empty: every drug of the saved evaluation."""
    drugs_per_job: int = 5
    """Drugs per parallel job. Accepted ≥ 1."""

    def __post_init__(self) -> None:
        check_choice("ResVAEExplainConfig.variant", self.variant, ("auto", *VARIANTS))
        check_range("ResVAEExplainConfig.n_steps", self.n_steps, 4, 256, integer=True)
        check_range("ResVAEExplainConfig.top_features", self.top_features, 1, 200, integer=True)
        check_range("ResVAEExplainConfig.stability_k", self.stability_k, 1, 200, integer=True)
        check_range("ResVAEExplainConfig.min_group_lines", self.min_group_lines, 2,
                    integer=True)
        check_range("ResVAEExplainConfig.drugs_per_job", self.drugs_per_job, 1, integer=True)

    @classmethod
    def from_dict(cls, raw: Any) -> ResVAEExplainConfig:
        return cls(**{**raw, "drugs": tuple(raw.get("drugs", ()))})


def choose_variant(evaluation: dict[str, Any], forced: str = "auto") -> dict[str, Any]:
    """The variant explained and why (``model``, ``rule``, the mean AUROCs compared)."""
    summary = evaluation["settings"][_LCLO]["summary"]
    means = {v: summary[v]["auroc"]["mean"] for v in VARIANTS if v in summary}
    if forced != "auto":
        if forced not in means:
            raise ValueError(f"{forced} is not in the saved evaluation; accepted "
                             f"{', '.join(means) or 'none'}")
        return {"model": forced, "rule": "forced", "mean_auroc": means}
    if not means:
        raise ValueError("the saved evaluation holds no Res-VAE variant")
    best = max(means, key=lambda v: (means[v] if means[v] is not None else -1.0, v))
    return {"model": best, "rule": "higher mean leave-cell-line-out AUROC in the saved "
            "evaluation", "mean_auroc": means}


# --- jobs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    drugs: tuple[str, ...]
    variant: str
    evaluation_config: dict[str, Any]
    config: ResVAEExplainConfig
    data_dir: Path | None
    vaes: tuple[Any, ...]


def _pretrain_fold(args: tuple[int, dict[str, Any], Path | None]) -> Any:
    """The evaluation's pre-trained VAE of leave-cell-line-out fold ``k`` (same lines, seed and
    budget)."""
    from engine.drug import evaluate as ev
    from engine.drug.data import load_drug_data
    from engine.drug.splits import SETTINGS, make_splits

    k, ec, data_dir = args
    data = load_drug_data(data_dir, ec["label_source"])
    split = make_splits(_LCLO, data.lineages, data.y, n_folds=int(ec["n_folds"]),
                        seed=int(ec["seed"]), min_tissue_lines=int(ec["min_tissue_lines"]))[k]
    module, reason = ev._resvae_module()
    if module is None:
        raise RuntimeError(reason)
    return ev._pretrain(module, ev._resvae_config(module, ec["resvae_budget"]),
                        data.x[split.train], data.binary_columns,
                        ev._seed(int(ec["seed"]), SETTINGS.index(_LCLO), k, 99))


def _explain_drugs(job: _Job) -> dict[str, Any]:
    """Held-out attributions, group rankings and fold stability for a few drugs."""
    from engine.drug import evaluate as ev
    from engine.drug.data import load_drug_data
    from engine.drug.interpret import line_groups, rank_features, stability
    from engine.drug.splits import SETTINGS, make_splits

    ec, c = job.evaluation_config, job.config
    data = load_drug_data(job.data_dir, ec["label_source"])
    names = data.feature_names
    module, _ = ev._resvae_module()
    budget = ev._resvae_config(module, ec["resvae_budget"])
    splits = make_splits(_LCLO, data.lineages, data.y, n_folds=int(ec["n_folds"]),
                         seed=int(ec["seed"]), min_tissue_lines=int(ec["min_tissue_lines"]))
    out: dict[str, Any] = {}
    for drug in job.drugs:
        started = time.perf_counter()
        j = data.drug_index(drug)
        rows, y = data.labelled(drug)
        x = data.x[rows]
        n = len(rows)
        held = np.zeros((n, x.shape[1]))
        score = np.full(n, np.nan)
        fold = np.full(n, -1, dtype=np.int64)
        importance, gaps, parts = [], [], []
        for k, sp in enumerate(splits):
            tr, te = sp.restrict(rows)
            if len(te) == 0 or np.bincount(y[tr], minlength=2).min() < 2:
                continue
            seed = ev._seed(int(ec["seed"]), SETTINGS.index(_LCLO), k, j,
                            list(ev.MODELS).index(job.variant))
            clf = ResVAEClassifier(job.vaes[k], freeze_encoder=job.variant == "resvae_frozen",
                                   config=budget, seed=seed).fit(x[tr], y[tr])
            attr = integrated_gradients(clf, x, n_steps=c.n_steps)  # [n, F], every line
            logit = clf.decision_function(x)
            base = clf.decision_function(clf.baseline_.numpy()[None, :])[0]
            gaps.append(np.abs(attr.sum(1) - (logit - base)) / np.maximum(
                np.abs(logit - base), 1e-3))
            importance.append(np.abs(attr).mean(0))
            held[te] = attr[te]
            score[te] = 1.0 / (1.0 + np.exp(-logit[te]))
            fold[te] = k
            if len(np.unique(y[te])) == 2:
                parts.append((y[te], score[te]))
        scored = fold >= 0
        groups = line_groups([data.lineages[r] for r in rows],
                             [data.lineage_sub_subtypes[r] for r in rows]
                             if data.lineage_sub_subtypes else [], c.min_group_lines)
        by_group = {}
        for gname, pos in groups.items():
            pos = pos[scored[pos]]
            if len(pos) < c.min_group_lines:
                continue
            ranked = rank_features(held[pos], x[pos], names, c.top_features)
            for f in ranked:
                f["mean_abs_attribution"] = f.pop("mean_abs_shap")
                f["mean_attribution"] = f.pop("mean_shap")
            by_group[gname] = {"n_lines": len(pos), "n_sensitive": int((y[pos] == 0).sum()),
                               "top": ranked}
        gap = np.concatenate(gaps) if gaps else np.zeros(0)
        out[drug] = {
            "units": "logit", "n_folds_explained": len(importance),
            "stability": stability(np.array(importance), names, c.stability_k)
            if len(importance) > 1 else None,
            "groups": by_group,
            "auroc_out_of_fold": _split_weighted_auroc(parts),
            "completeness": {"median_relative_gap": float(np.median(gap)) if gap.size else None,
                             "p95_relative_gap": float(np.quantile(gap, 0.95))
                             if gap.size else None},
            "seconds": time.perf_counter() - started,
        }
    return out


def _split_weighted_auroc(parts: list[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """The evaluation's pooled AUROC: per held-out set, weighted by its (pos, neg) pairs."""
    from engine.drug.metrics import split_weighted

    return split_weighted(parts, 1, roc_auc_score) if parts else None


# --- the whole run ------------------------------------------------------------------------------


def explain_resvae(models_dir: Path | str | None = None,
                   config: ResVAEExplainConfig | None = None, executor: Any = None, *,
                   data_dir: Path | None = None,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Explain the evaluation's Res-VAE models (module docstring); returns the payload that
    :func:`save_resvae_interpretation` stores.

    Raises:
        registry.ArtifactError: no (or a changed) saved evaluation.
        ValueError: the evaluation was run on other data, has no Res-VAE, or lacks a drug.
    """
    from engine.drug.data import load_drug_data
    from engine.drug.evaluate import load_evaluation
    from engine.drug.interpret import gene_check
    from engine.drug.serving_train import CHECKED_GENE
    from engine.platform.executor import SerialExecutor

    c = config or ResVAEExplainConfig()
    started = time.perf_counter()
    root = settings.models_dir(models_dir)
    evaluation, eval_meta = load_evaluation(root)
    ec = evaluation["config"]
    data = load_drug_data(data_dir, ec["label_source"])
    if evaluation["data"]["data_hash"] != data.data_hash:
        raise ValueError("the saved evaluation was run on other data (data hash "
                         f"{evaluation['data']['data_hash'][:12]} ≠ {data.data_hash[:12]}); "
                         "rerun `artds drug evaluate --save`")
    if _LCLO not in evaluation["settings"]:
        raise ValueError(f"the saved evaluation has no {_LCLO} setting")
    choice = choose_variant(evaluation, c.variant)
    variant = choice["model"]
    evaluated = list(evaluation["data"]["evaluated"])
    drugs = list(c.drugs) or evaluated
    bad = [d for d in drugs if d not in evaluated]
    if bad:
        raise ValueError(f"drugs {', '.join(bad)}: not in the saved evaluation; accepted "
                         f"{', '.join(evaluated)}")
    n_folds = len(evaluation["settings"][_LCLO]["splits"])
    groups = [tuple(drugs[i:i + c.drugs_per_job]) for i in range(0, len(drugs), c.drugs_per_job)]
    total = n_folds + len(groups)
    own = executor if executor is not None else SerialExecutor()
    try:
        vaes = own.map(_pretrain_fold, [(k, ec, data_dir) for k in range(n_folds)],
                       progress=None if progress is None else
                       (lambda done, _n: progress(done, total)),
                       desc="drug: Res-VAE pre-training (explained folds)")
        jobs = [_Job(g, variant, ec, c, data_dir, tuple(vaes)) for g in groups]
        results = own.map(_explain_drugs, jobs, progress=None if progress is None else
                          (lambda done, _n: progress(n_folds + done, total)),
                          desc="drug: Res-VAE integrated gradients")
    finally:
        if executor is None:
            own.close()
    per_drug: dict[str, Any] = {}
    for res in results:
        per_drug.update(res)
    saved = evaluation["settings"][_LCLO]["per_drug"].get(variant, {})
    for drug, entry in per_drug.items():
        ref = saved.get(drug, {}).get("auroc")
        got = entry["auroc_out_of_fold"]
        entry["auroc_evaluation"] = ref
        entry["auroc_matches_evaluation"] = (ref is not None and got is not None
                                             and abs(ref - got) < 1e-6)
    gene, drug, group = CHECKED_GENE
    check = gene_check(per_drug[drug]["groups"], data.genes, gene, group, drug) \
        if drug in per_drug else None
    stab = [v["stability"]["mean_pairwise_jaccard"] for v in per_drug.values()
            if v["stability"] is not None]
    gaps = [v["completeness"]["median_relative_gap"] for v in per_drug.values()
            if v["completeness"]["median_relative_gap"] is not None]
    from engine.drug.evaluate import MODELS

    return {
        "model": variant, "model_label": MODELS[variant].label, "choice": choice,
        "units": "logit",
        "method": ("captum IntegratedGradients (Gauss-Legendre, "
                   f"{c.n_steps} points) of the resistance logit of each leave-cell-line-out "
                   "fold's Res-VAE classifier (encoder + head, the evaluation's seeds), from the "
                   "fold's pre-training lines' mean profile; each labelled line explained by the "
                   "fold model that never saw it; groups ranked by mean |attribution|"),
        "baseline": "mean raw profile of the fold's pre-training lines (mutation columns: the "
                    "mutation frequency)",
        "config": {**c.to_dict(), "evaluation_config": ec}, "drugs": per_drug,
        "paper_gene_check": check,
        "stability_summary": {"k": c.stability_k,
                              "mean_pairwise_jaccard_mean": _mean(stab),
                              "mean_pairwise_jaccard_min": min(stab) if stab else None,
                              "mean_pairwise_jaccard_max": max(stab) if stab else None,
                              "n_drugs": len(stab)},
        "completeness_median_relative_gap": float(np.median(gaps)) if gaps else None,
        "n_auroc_matches_evaluation": int(sum(v["auroc_matches_evaluation"]
                                              for v in per_drug.values())),
        "evaluation_sha256": eval_meta.sha256, "data_version": data.version,
        "data_hash": data.data_hash, "elapsed_s": time.perf_counter() - started,
    }


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def save_resvae_interpretation(payload: dict[str, Any], models_dir: Path | str | None = None):
    """Save ``models/drug/interpretation_resvae.json`` through the registry; returns its meta."""
    from engine.drug.evaluate import FAMILY
    from engine.platform import registry

    root = settings.models_dir(models_dir)
    ec = payload["config"]["evaluation_config"]
    return registry.save_json_artifact(
        root, FAMILY, RESVAE_INTERPRETATION_NAME, payload, seed=int(ec["seed"]),
        config=payload["config"], data_hash=payload["data_hash"],
        cohort_version=payload["data_version"],
        metrics={"stability_mean_jaccard": payload["stability_summary"][
            "mean_pairwise_jaccard_mean"],
            "n_auroc_matches_evaluation": payload["n_auroc_matches_evaluation"]})


def load_resvae_interpretation(models_dir: Path | str | None = None) -> tuple[dict[str, Any], Any]:
    """The saved Res-VAE attributions and their manifest meta (hash-checked)."""
    from engine.drug.evaluate import FAMILY
    from engine.platform import registry

    root = settings.models_dir(models_dir)
    return registry.load_json_artifact(root, FAMILY, RESVAE_INTERPRETATION_NAME)
