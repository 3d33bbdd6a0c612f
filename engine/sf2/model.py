"""The served SF2 model: a REPTILE ensemble over the pan-cancer panel, adapted per sample.

Training (``artds train sf2``): genes are selected on all 273 lines (variance filter, correlation
pruning, 10 × 5-fold LASSO at 30 genes, top 20), inputs are min–max scaled over the lines, and
``n_members`` REPTILE initialisations (different seeds) are meta-trained on tissue tasks. The
members' state_dicts and one JSON (genes, scaling, the labelled reference lines, the gene
ranking, config) go to ``models/sf2/`` through :mod:`engine.platform.registry`.

Prediction for a sample (an uploaded profile, or a panel line): its support set is up to
``support_size`` labelled reference lines of its own subgroup — the same lung histology when the
sample is lung with a known histology, else the same tissue — drawn ``n_support_draws`` times
per member (fixed seeds; a panel line never supports itself). Each member is adapted on each draw
with the inner loop (10 SGD steps of 0.01 on the MAE) and scores the sample; ``sf2`` is the mean
over members × draws and ``sf2_sd`` their standard deviation (model and support-set
uncertainty, not a calibrated prediction interval). Without a tissue (or a tissue with no
labelled line) the members' initialisations score the sample unadapted (``adapted_on`` says so).

α for the planner: SF2 = exp(−2α − 4β) with a fixed α/β (default 10 Gy, the usual tumour
value, also the NSCLC protocol's), so α = −ln(SF2) / (2 + 4/(α/β)) and β = α/(α/β)
(:func:`engine.core.radiobiology.alpha_from_sf2`). A fixed α/β
keeps α > 0 for every SF2 < 1; the GARD convention (β fixed at 0.05 Gy⁻²) would give α ≤ 0 for
SF2 ≥ 0.82 — 14 % of these proliferation-assay lines. GARD itself is reported with its own
published convention (:mod:`engine.sf2.rsi`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine import settings
from engine.core.config import check_choice, check_range
from engine.core.radiobiology import alpha_from_sf2
from engine.platform import registry
from engine.sf2.data import (
    LUNG_HISTOLOGY_LABELS,
    SETTINGS,
    ExpressionUpload,
    load_panel,
    subgroups,
)
from engine.sf2.evaluate import SERVED_META_LR
from engine.sf2.features import FeatureConfig, GeneSelector
from engine.sf2.influence import gene_gradients
from engine.sf2.reptile import MLP, Reptile, ReptileConfig, adapt, forward_each
from engine.sf2.rsi import GARD_BETA_PER_GY2, gard, rsi, rsi_alpha_per_gy
from engine.sf2.tasks import minmax, subgroup_task_sampler

__all__ = [
    "DEFAULT_ALPHA_BETA_GY",
    "FAMILY",
    "SF2Model",
    "SF2Prediction",
    "ServedConfig",
    "load_served_sf2",
    "train_sf2",
]

FAMILY = "sf2"
"""Registry family (``models/sf2/``)."""
MODEL_NAME = "model"
"""JSON artifact with genes, scaling, reference lines and config."""
DEFAULT_ALPHA_BETA_GY = 10.0
"""α/β used to turn SF2 into α (Gy)."""


@dataclass(frozen=True)
class ServedConfig:
    """How the served ensemble is trained and applied."""

    setting: str = "pan_cancer"
    """Training lines: all 273 (tissue tasks)."""
    n_members: int = 5
    """Ensemble members (meta-learned initialisations, seeds ``seed … seed + n − 1``)."""
    n_iterations: int = 3000
    """Meta-iterations per member (the paper's 3,000)."""
    meta_lr: float = SERVED_META_LR
    """Outer step size β, annealed linearly to 0 (see ``engine.sf2.evaluate.SERVED_META_LR``)."""
    support_size: int = 5
    """Labelled lines of the sample's subgroup it is adapted on."""
    n_support_draws: int = 4
    """Support sets drawn per member (the spread enters ``sf2_sd``)."""
    alpha_beta_gy: float = DEFAULT_ALPHA_BETA_GY
    """α/β for α from SF2, Gy."""
    features: FeatureConfig = field(default_factory=FeatureConfig)
    """Gene selection."""
    seed: int = 0
    """Base seed."""

    def __post_init__(self) -> None:
        check_choice("ServedConfig.setting", self.setting, SETTINGS)
        for name in ("n_members", "n_iterations", "support_size", "n_support_draws"):
            check_range(f"ServedConfig.{name}", getattr(self, name), 1, integer=True)
        check_range("ServedConfig.meta_lr", self.meta_lr, 0.0)
        check_range("ServedConfig.alpha_beta_gy", self.alpha_beta_gy, 0.0, lo_open=True)
        check_range("ServedConfig.seed", self.seed, 0, integer=True)

    def reptile(self, member: int) -> ReptileConfig:
        return ReptileConfig(meta_lr=self.meta_lr, n_iterations=self.n_iterations,
                             seed=self.seed + member)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _MemberJob:
    member: int
    config: ServedConfig
    genes: tuple[str, ...]


def _train_member(job: _MemberJob) -> dict[str, Any]:
    """Meta-train one member; returns its state_dict and loss history summary."""
    torch.set_num_threads(1)
    panel = load_panel().setting(job.config.setting)
    z = panel.expression[list(job.genes)].to_numpy(dtype=float)
    lo, hi = minmax(z)
    x = torch.tensor((z - lo) / (hi - lo), dtype=torch.float32)
    y = torch.tensor(panel.lines["sf2"].to_numpy(), dtype=torch.float32)
    sg = subgroups(panel.lines, job.config.setting).to_numpy()
    sampler = subgroup_task_sampler(x, y, sg, np.arange(len(y)), job.config.support_size)
    meta = Reptile(job.config.reptile(job.member)).fit(sampler)
    h = meta.history_
    k = max(1, len(h) // 10)
    return {"state": {n: t.clone() for n, t in meta.model_.state_dict().items()},
            "loss_first": float(h[:k].mean()), "loss_last": float(h[-k:].mean())}


@dataclass(frozen=True)
class SF2Prediction:
    """The prediction for one sample."""

    sample_id: str
    tissue: str
    histology: str
    sf2: float
    """Ensemble-mean predicted SF2 (surviving fraction at 2 Gy, proliferation-assay scale)."""
    sf2_sd: float
    """Standard deviation over members × support draws."""
    alpha_per_gy: float
    """α implied by ``sf2`` at the model's α/β, Gy⁻¹."""
    alpha_per_gy_sd: float
    """Standard deviation of α over members × support draws, Gy⁻¹."""
    beta_per_gy2: float
    """β = α/(α/β), Gy⁻²."""
    alpha_beta_gy: float
    """α/β used, Gy."""
    adapted_on: dict[str, Any]
    """``subgroup`` (e.g. ``"tissue: lung"``), ``n_lines`` available, ``cell_lines`` (names)."""
    influence: dict[str, float]
    """Per model gene: ∂SF2/∂z (SF2 per +1 sd of expression), ensemble mean."""
    expression: dict[str, float]
    """The sample's z-score of each model gene."""
    rsi: float | None = None
    """RSI from ``raw_`` columns (all 10 genes), else None."""
    rsi_alpha_per_gy: float | None = None
    """α from RSI with GARD's β = 0.05 Gy⁻²."""
    gard: float | None = None
    """GARD for ``gard_regimen``."""
    gard_regimen: dict[str, float] | None = None
    """``n_fractions`` and ``dose_per_fraction_gy`` of the GARD value."""
    measured_sf2: float | None = None
    """Measured SF2 when the sample is a panel line (it was in the training data)."""

    def top_genes(self, n: int = 10) -> list[dict[str, float | str]]:
        """The ``n`` genes with the largest |influence|: gene, influence, z."""
        order = sorted(self.influence, key=lambda g: -abs(self.influence[g]))[:n]
        return [{"gene": g, "influence_per_sd": self.influence[g],
                 "z": self.expression[g]} for g in order]

    def to_dict(self, n_top: int = 10) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("influence", "expression")}
        out["top_genes"] = self.top_genes(n_top)
        return out


@dataclass(frozen=True)
class SF2Model:
    """The loaded served ensemble (read-only)."""

    genes: list[str]
    """The model's input genes (order of the network's inputs)."""
    lo: np.ndarray
    """``[d]`` min of each gene's z-score over the training lines."""
    hi: np.ndarray
    """``[d]`` max (> min)."""
    members: list[MLP]
    """Meta-learned initialisations."""
    reference: pd.DataFrame
    """Labelled training lines, index ``DepMap_ID``: ``cell_line``, ``tissue``,
    ``lung_histology``, ``sf2`` and the model genes' z-scores."""
    selection: pd.DataFrame
    """Gene ranking of the selection (index gene; ``rank``, ``mean_abs_coef``, ``mean_coef``,
    ``selection_frequency``), top 30."""
    config: ServedConfig
    version: str
    """Short version: the first 12 hex of the model JSON's sha256."""
    created: str
    """When it was trained (UTC, ISO-8601)."""
    data_version: str
    """The cell-line panel's version."""

    @property
    def label(self) -> str:
        return f"REPTILE ensemble ({len(self.members)} members, {len(self.genes)} genes)"

    def support_pool(self, tissue: str, histology: str,
                     exclude: str | None = None) -> tuple[str, pd.DataFrame]:
        """Reference lines a sample is adapted on, and how the subgroup is named."""
        ref = self.reference if exclude is None else self.reference.drop(index=exclude,
                                                                          errors="ignore")
        if tissue == "lung" and histology in LUNG_HISTOLOGY_LABELS:
            pool = ref[ref["lung_histology"] == histology]
            if len(pool):
                return f"lung histology: {LUNG_HISTOLOGY_LABELS[histology]}", pool
        if tissue:
            pool = ref[ref["tissue"] == tissue]
            if len(pool):
                return f"tissue: {tissue}", pool
        return "none", ref.iloc[:0]

    def scale(self, z: np.ndarray) -> torch.Tensor:
        return torch.tensor((z - self.lo) / (self.hi - self.lo), dtype=torch.float32)

    def predict(
        self,
        expression: pd.DataFrame,
        samples: pd.DataFrame,
        *,
        exclude: pd.Series | None = None,
        raw_rsi: pd.DataFrame | None = None,
        gard_n_fractions: int = 30,
        gard_dose_per_fraction_gy: float = 2.0,
        influence_method: str = "gradient",
    ) -> list[SF2Prediction]:
        """Predict SF2 for each sample (see the module docstring).

        Args:
            expression: samples × genes (z-scores), must contain :attr:`genes`.
            samples: index like ``expression``; ``tissue`` and ``histology`` columns.
            exclude: per sample, a reference ``DepMap_ID`` never used as its support (the
                sample's own line), or None.
            raw_rsi: samples × RSI genes on an absolute scale; RSI/GARD where all 10 exist.
            influence_method: ``"gradient"`` or ``"gradient_x_input"``.
        """
        c = self.config
        z = expression[self.genes].to_numpy(dtype=float)
        x = self.scale(z)  # [n, d]
        n, d = x.shape
        ref_x = self.scale(self.reference[self.genes].to_numpy(dtype=float))
        ref_y = torch.tensor(self.reference["sf2"].to_numpy(), dtype=torch.float32)
        ref_pos = {rid: i for i, rid in enumerate(self.reference.index)}
        names, pools = [], []
        for i, sid in enumerate(expression.index):
            skip = None if exclude is None else exclude.iloc[i]
            name, pool = self.support_pool(str(samples.loc[sid, "tissue"]),
                                           str(samples.loc[sid, "histology"]), skip)
            names.append(name)
            pools.append(pool)
        k = c.support_size
        draws = c.n_support_draws
        preds = np.zeros((len(self.members), draws, n))
        grads = np.zeros((len(self.members), draws, n, d))
        for m, member in enumerate(self.members):
            rng = np.random.default_rng([c.seed, m])
            sup = np.full((draws, n, k), -1, dtype=np.int64)
            for j in range(draws):
                for i, pool in enumerate(pools):
                    if len(pool):
                        ids = rng.choice(np.sort(pool.index.to_numpy()),
                                         size=min(k, len(pool)), replace=False)
                        sup[j, i, : len(ids)] = [ref_pos[r] for r in ids]
            flat = sup.reshape(draws * n, k)
            mask = torch.as_tensor(flat >= 0, dtype=torch.float32)
            idx = torch.as_tensor(np.where(flat >= 0, flat, 0))
            params = adapt(member.flat_params(), ref_x[idx] * mask[..., None], ref_y[idx] * mask,
                           mask, lr=0.01, steps=10, activation="relu", output="sigmoid",
                           loss="mae")
            xs = x.repeat(draws, 1)  # [draws * n, d]
            g = gene_gradients(params, xs, self.hi - self.lo, np.tile(z, (draws, 1)),
                               influence_method)
            preds[m] = forward_each(params, xs).reshape(draws, n)
            grads[m] = g.reshape(draws, n, d)
        flat_pred = preds.reshape(-1, n)
        alphas = alpha_from_sf2(flat_pred, c.alpha_beta_gy)
        mean_sf2 = flat_pred.mean(0)
        rsi_values = None
        if raw_rsi is not None and len(raw_rsi.columns) == 10:
            rsi_values = rsi(raw_rsi.loc[expression.index])
        out = []
        for i, sid in enumerate(expression.index):
            alpha = float(alpha_from_sf2(mean_sf2[i], c.alpha_beta_gy))
            pool = pools[i]
            r = None if rsi_values is None else float(rsi_values[i])
            r_alpha = None if r is None else float(rsi_alpha_per_gy(r))
            r_gard = None if r is None else float(gard(r, gard_n_fractions,
                                                       gard_dose_per_fraction_gy))
            measured = None
            if exclude is not None and exclude.iloc[i] in self.reference.index:
                measured = float(self.reference.loc[exclude.iloc[i], "sf2"])
            out.append(SF2Prediction(
                sample_id=str(sid),
                tissue=str(samples.loc[sid, "tissue"]),
                histology=str(samples.loc[sid, "histology"]),
                sf2=float(mean_sf2[i]),
                sf2_sd=float(flat_pred[:, i].std(ddof=1)),
                alpha_per_gy=alpha,
                alpha_per_gy_sd=float(np.nanstd(alphas[:, i], ddof=1)),
                beta_per_gy2=alpha / c.alpha_beta_gy,
                alpha_beta_gy=c.alpha_beta_gy,
                adapted_on={"subgroup": names[i], "n_lines": len(pool),
                            "cell_lines": sorted(pool["cell_line"].tolist())[:60]},
                influence={g: float(v) for g, v in zip(self.genes,
                                                       grads[:, :, i].mean((0, 1)), strict=True)},
                expression={g: float(v) for g, v in zip(self.genes, z[i], strict=True)},
                rsi=r if r is None or np.isfinite(r) else None,
                rsi_alpha_per_gy=r_alpha if r_alpha is None or np.isfinite(r_alpha) else None,
                gard=r_gard if r_gard is None or np.isfinite(r_gard) else None,
                gard_regimen=None if r is None else {
                    "n_fractions": gard_n_fractions,
                    "dose_per_fraction_gy": gard_dose_per_fraction_gy,
                    "beta_per_gy2": GARD_BETA_PER_GY2},
                measured_sf2=measured,
            ))
        return out

    def predict_upload(self, upload: ExpressionUpload, **kwargs: Any) -> list[SF2Prediction]:
        """:meth:`predict` on a validated upload (RSI from its ``raw_`` columns)."""
        raw = upload.raw_rsi if upload.has_full_rsi else None
        return self.predict(upload.expression, upload.samples, raw_rsi=raw, **kwargs)

    def predict_lines(self, ids: list[str], **kwargs: Any) -> list[SF2Prediction]:
        """Predict reference lines by ``DepMap_ID`` (never adapted on their own label)."""
        ref = self.reference.loc[ids]
        samples = pd.DataFrame({"tissue": ref["tissue"].to_numpy(),
                                "histology": ref["lung_histology"].to_numpy()},
                               index=ref["cell_line"].to_numpy())
        expression = ref[self.genes].set_axis(ref["cell_line"].to_numpy())
        return self.predict(expression, samples, exclude=pd.Series(ids), **kwargs)


def train_sf2(
    models_dir: Path | str | None = None,
    config: ServedConfig | None = None,
    executor=None,
    *,
    log: Callable[[str], None] = lambda _msg: None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Train the served ensemble and write it to ``<models_dir>/sf2/`` (see module docstring).

    Returns:
        A summary: genes, data version, member losses, files written.
    """
    from engine.platform.executor import SerialExecutor

    c = config or ServedConfig()
    root = settings.models_dir(models_dir)
    panel = load_panel().setting(c.setting)
    y = panel.lines["sf2"].to_numpy(dtype=float)
    log(f"selecting genes on {len(y)} lines ({c.features.n_repeats} x {c.features.n_folds}-fold "
        f"LASSO at {c.features.n_nonzero} genes)")
    selector = GeneSelector(c.features).fit(panel.expression, y)
    genes = selector.genes_
    z = panel.expression[genes].to_numpy(dtype=float)
    lo, hi = minmax(z)
    log(f"meta-training {c.n_members} members x {c.n_iterations} iterations")
    own = executor if executor is not None else SerialExecutor()
    members = own.map(_train_member, [_MemberJob(m, c, tuple(genes)) for m in
                                      range(c.n_members)], progress=progress,
                      desc="sf2 members")
    if executor is None:
        own.close()
    table = panel.lines[["cell_line", "tissue", "sf2"]].join(panel.expression[genes])
    dhash = registry.data_hash(table.reset_index())
    common = {"seed": c.seed, "data_hash": dhash, "cohort_version": panel.version}
    metas = []
    for m, res in enumerate(members):
        metas.append(registry.save_artifact(
            root, FAMILY, f"member_{m}", res["state"],
            config={**c.to_dict(), "member": m, "reptile": c.reptile(m).to_dict(),
                    "genes": genes},
            metrics={"meta_loss_first_tenth": res["loss_first"],
                     "meta_loss_last_tenth": res["loss_last"]},
            **{**common, "seed": c.seed + m}))
    reference = panel.lines[["cell_line", "tissue", "lung_histology", "sf2"]].join(
        panel.expression[genes])
    ranking = selector.ranking_.head(c.features.n_nonzero)
    payload = {
        "genes": genes,
        "lo": lo.tolist(),
        "hi": hi.tolist(),
        "n_members": c.n_members,
        "reference": reference.reset_index().round(8).to_dict(orient="list"),
        "selection": ranking.reset_index().to_dict(orient="list"),
        "data_version": panel.version,
    }
    metas.append(registry.save_json_artifact(
        root, FAMILY, MODEL_NAME, payload, config=c.to_dict(),
        metrics={"n_lines": len(y), "n_genes": len(genes)}, **common))
    load_served_sf2.cache_clear()
    return {"genes": genes, "data_version": panel.version, "n_lines": len(y),
            "members": [{k: v for k, v in r.items() if k != "state"} for r in members],
            "files": [m.file for m in metas]}


def _config_from(entry: dict[str, Any]) -> ServedConfig:
    known = {k: v for k, v in entry.items() if k in ServedConfig.__dataclass_fields__}
    if isinstance(known.get("features"), dict):
        known["features"] = FeatureConfig(**known["features"])
    return ServedConfig(**known)


@functools.lru_cache(maxsize=4)
def load_served_sf2(models_dir: Path | str | None = None) -> SF2Model:
    """Load the served ensemble from ``<models_dir>/sf2/`` (hash-checked; cached per folder).

    Raises:
        registry.ArtifactError: missing, unlisted or changed artifacts.
    """
    root = settings.models_dir(models_dir)
    payload, meta = registry.load_json_artifact(root, FAMILY, MODEL_NAME)
    config = _config_from(meta.config)
    members = []
    for m in range(int(payload["n_members"])):
        state, _ = registry.load_artifact(root, FAMILY, f"member_{m}")
        net = MLP(config.reptile(m).layer_sizes, "relu", "sigmoid")
        net.load_state_dict(state)
        members.append(net.eval())
    reference = pd.DataFrame(payload["reference"]).set_index("DepMap_ID")
    selection = pd.DataFrame(payload["selection"]).set_index("gene")
    return SF2Model(
        genes=list(payload["genes"]),
        lo=np.asarray(payload["lo"], dtype=float),
        hi=np.asarray(payload["hi"], dtype=float),
        members=members,
        reference=reference,
        selection=selection,
        config=config,
        version=meta.sha256[:12],
        created=meta.created,
        data_version=str(payload["data_version"]),
    )
