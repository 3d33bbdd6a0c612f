"""Learning Mode (ARCliDS Fig. 2): retrain the outcome estimators on the clinic's own cases.

A physicist starts a training job on the cases stored with a known outcome (the adaptive dose
actually given and both outcomes recorded), optionally pooled with the virtual trial. The job
(:func:`run_job`, run in a worker process) trains a new ensemble of the served architecture, scores
it, and registers it as a new model version, reporting progress and honouring a cancel through
its database row (:class:`engine.platform.jobs.StoreJobReporter`). The version serves only after
an explicit, audited promotion (``engine.platform.store.Store.promote``), and any earlier version
can be promoted back (rollback).

What the candidate is scored on, next to the version serving when the job ran:

* **the clinic's cases, held out**: stratified shuffle splits of the clinic's cases; the
  candidate's configuration is trained on the rest (plus the virtual trial when pooled) and
  scored on the held-out cases, and the serving version is scored on exactly the same held-out
  cases: a paired comparison (AUROC, Brier). It needs at least two events and two non-events of
  an outcome among the clinic's cases, else it is reported as not computable, with the reason.
* **a fresh virtual cohort** (2,000 simulated patients, never trained on): AUROC against the
  outcomes drawn there, the Bayes ceiling, Brier, monotonicity violations and ensemble spread,
  as for the shipped models (``engine.arclids.rtoe_eval.evaluate_members``).

Artifacts go through :mod:`engine.platform.registry` (state_dicts, manifest with sha256, seed,
config, data hash) into a folder of their own under the learning directory (``$ARTDS_LEARNING_DIR``,
default ``var/models``; the shipped ``models/`` may be a read-only volume), named by the version,
which is derived from the artifacts' hashes: the same training gives the same version.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine import settings
from engine.arclids.architectures import SERVED_ARCH, architecture
from engine.arclids.evaluation import auroc
from engine.core.config import check_bool, check_choice, check_range
from engine.core.protocols import Protocol, load_protocol
from engine.platform.jobs import (
    Cancelled,
    JobReporter,
    StoreJobReporter,
    StoreJobRunner,
    checkpoint,
    process_identity,
)

__all__ = [
    "BUDGETS",
    "Budget",
    "LearningConfig",
    "TrainedVersion",
    "clinic_table",
    "discard_scratch",
    "job_runner",
    "run_job",
    "train_version",
]



@dataclass(frozen=True)
class Budget:
    """How much training a Learning Mode job does."""

    epochs: int | None
    """Epochs per member (≥ 0); None keeps the served version's configuration."""
    hidden: int | None
    """Network width (≥ 1); None keeps the served version's configuration."""
    n_splits: int
    """Held-out splits of the clinic's cases for the paired comparison (≥ 1)."""
    n_members: int
    """Ensemble members per outcome (≥ 1)."""

    def __post_init__(self) -> None:
        if self.epochs is not None:
            check_range("Budget.epochs", self.epochs, 0, integer=True)
        if self.hidden is not None:
            check_range("Budget.hidden", self.hidden, 1, integer=True)
        check_range("Budget.n_splits", self.n_splits, 1, integer=True)
        check_range("Budget.n_members", self.n_members, 1, integer=True)


BUDGETS: dict[str, Budget] = {
    "standard": Budget(epochs=None, hidden=None, n_splits=5, n_members=20),
    # For tests and a first look: minutes become seconds; the numbers mean little.
    "tiny": Budget(epochs=4, hidden=16, n_splits=2, n_members=5),
}
"""Training budgets offered in the app (``"tiny"`` is for tests and demonstrations)."""


@dataclass(frozen=True)
class LearningConfig:
    """What a Learning Mode job trains."""

    protocol: str
    """Protocol name."""
    budget: str = "standard"
    """Key of :data:`BUDGETS`."""
    pool_virtual_trial: bool = True
    """Train on the clinic's cases together with the virtual trial's complete cases."""
    arch: str = SERVED_ARCH
    """Architecture trained (the served one, monotone in dose by construction)."""
    seed: int = 0
    """Seed of splits and members (member k uses seed + k)."""

    def __post_init__(self) -> None:
        load_protocol(self.protocol)
        check_choice("LearningConfig.budget", self.budget, BUDGETS)
        check_bool("LearningConfig.pool_virtual_trial", self.pool_virtual_trial)
        architecture(self.arch)
        check_range("LearningConfig.seed", self.seed, 0, integer=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LearningConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass(frozen=True)
class TrainedVersion:
    """A model version a job produced (registered in the store by :func:`run_job`)."""

    version: str
    """Version string, from the artifacts' hashes."""
    location: Path
    """Its models folder (manifest + artifacts)."""
    metrics: dict[str, Any]
    """``{"candidate": {...}, "serving": {...}}`` per outcome key ``"tcp"``/``"ntcp"``."""
    training: dict[str, Any]
    """Cases used (clinic, virtual), data hash, configs, budget."""


def clinic_table(protocol: Protocol, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Validated training cases from stored inputs (id columns, features, both doses, outcomes).

    Raises ``engine.core.tabular.SchemaError`` when a stored record no longer validates.
    """
    from engine.platform.inputs import cases_from_stored, stored_columns

    if not records:
        return pd.DataFrame(columns=stored_columns(protocol))
    table = cases_from_stored(protocol, records, require_outcomes=True)
    if table["dose_adapt_gy"].isna().any():
        raise ValueError("every training case needs dose_adapt_gy (the adaptive dose given)")
    return table


def _training_table(protocol: Protocol, clinic: pd.DataFrame, pool: bool) -> pd.DataFrame:
    from engine.arclids.rtoe_train import training_cases

    keep = [*protocol.feature_names, "dose_eval_gy", "dose_adapt_gy", *protocol.outcome_names]
    # Patient ids only group rows for the bootstrap (one patient, several HCC sites); prefixed
    # so a clinic id never merges with a virtual one.
    parts = [clinic[keep].assign(source="clinic",
                                 patient_id="clinic:" + clinic["patient_id"].astype(str))]
    if pool:
        virtual = training_cases(protocol.name)
        parts.append(virtual[keep].assign(
            source="virtual", patient_id="virtual:" + virtual["patient_id"].astype(str)))
    table = pd.concat(parts, ignore_index=True)
    for outcome in protocol.outcome_names:
        table[outcome] = table[outcome].astype(int)
    return table


def _base_config(protocol: Protocol, arch: str, outcome: str, budget: Budget,
                 seed: int) -> Any:
    """The served version's member configuration (from models/), with the budget applied."""
    from engine.arclids.rtoe import RTOEConfig
    from engine.arclids.serving import RTOE_FAMILY, member_name
    from engine.platform import registry

    try:
        meta = next(m for m in registry.list_artifacts(settings.models_dir(), RTOE_FAMILY)
                    if m.name == member_name(protocol.name, arch, outcome, 0))
        config = RTOEConfig.from_dict(meta.config)
    except (StopIteration, registry.ArtifactError, ValueError):
        config = RTOEConfig(arch=arch, hidden=64, lr=1e-3, epochs=100)
    changes: dict[str, Any] = {"seed": seed}
    if budget.epochs is not None:
        changes["epochs"] = budget.epochs
    if budget.hidden is not None:
        changes["hidden"] = budget.hidden
    return replace(config, **changes)


def _scores(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return auroc(pred, y), float(np.mean((pred - y) ** 2))


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def train_version(
    config: LearningConfig,
    clinic: pd.DataFrame,
    out_root: Path,
    *,
    serving: Any | None = None,
    serving_version: str | None = None,
    serving_metrics: Mapping[str, Any] | None = None,
    reporter: JobReporter | None = None,
    scratch_prefix: str = ".job-",
) -> TrainedVersion:
    """Train, score and save a new ensemble; returns its version (not yet registered).

    Args:
        config: what to train.
        clinic: the clinic's cases with known outcomes (:func:`clinic_table`).
        out_root: the learning directory; the version gets its own sub-folder.
        serving: the model serving when the job started (scored on the same held-out cases).
        serving_version: its version string.
        serving_metrics: its stored fresh-cohort metrics (per ``"tcp"``/``"ntcp"``).
        reporter: where progress goes (share done 0…1, what is happening), checked for a
            cancel before each split, member and scoring step; None: nowhere, never cancelled.
        scratch_prefix: name prefix of the scratch folder under ``out_root`` the version is
            written to before it is moved into place (a job's own, so the files of a job whose
            worker was killed can be found: :func:`discard_scratch`).

    Raises:
        engine.platform.jobs.Cancelled: the reporter asked to stop (nothing is left on disk).
        ValueError: no training data (no clinic case and no pooling).
    """
    from engine.arclids.calibration import CALIBRATION_RECIPE
    from engine.arclids.rtoe import OutcomeEstimator
    from engine.arclids.rtoe_calibration import calibrate_advice, calibrate_members
    from engine.arclids.rtoe_eval import evaluate_members
    from engine.arclids.serving import (
        RTOE_FAMILY,
        calibration_name,
        learned_version,
        member_name,
    )
    from engine.arclids.splits import (
        BOOTSTRAP_SEED,
        bootstrap_rows,
        patient_groups,
        stratified_splits,
    )
    from engine.platform import registry

    protocol = load_protocol(config.protocol)
    budget = BUDGETS[config.budget]
    if clinic.empty and not config.pool_virtual_trial:
        raise ValueError("no stored case has a known outcome: record follow-ups (dose given "
                         "and outcomes) or pool with the virtual trial")
    table = _training_table(protocol, clinic, config.pool_virtual_trial)
    is_clinic = (table["source"] == "clinic").to_numpy()
    clinic_rows = np.flatnonzero(is_clinic)
    train_frame = table.drop(columns="source")
    data_hash = registry.data_hash(train_frame)
    outcome_keys = {protocol.target.outcome: "tcp", protocol.oar.outcome: "ntcp"}
    n_steps = len(protocol.outcome_names) * (budget.n_splits + budget.n_members + 1)
    done = 0

    def step(message: str) -> None:
        nonlocal done
        if reporter is not None:
            checkpoint(reporter, done / n_steps, message)
        done += 1

    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=scratch_prefix, dir=out_root))
    try:
        candidate: dict[str, Any] = {}
        serving_scores: dict[str, Any] = {}
        shas: list[str] = []
        configs: dict[str, Any] = {}
        calibrations: dict[str, Any] = {}
        all_members: dict[str, Any] = {}
        for outcome in protocol.outcome_names:
            key = outcome_keys[outcome]
            base = _base_config(protocol, config.arch, outcome, budget, config.seed)
            configs[key] = base.to_dict()
            y_all = train_frame[outcome].to_numpy().astype(int)
            y_clinic = y_all[clinic_rows]
            n_events = int(y_clinic.sum())
            held_out: dict[str, Any] = {"n_cases": len(y_clinic), "n_events": n_events}
            cand_auc, cand_brier, serv_auc, serv_brier = [], [], [], []
            if min(n_events, len(y_clinic) - n_events) >= 2:
                splits = stratified_splits(
                    y_clinic, n_splits=budget.n_splits, test_size=0.3, seed=config.seed,
                    groups=patient_groups(train_frame.iloc[clinic_rows]))
            else:
                splits = []
                held_out["why_not"] = ("needs at least 2 events and 2 non-events among the "
                                       "clinic's cases")
            for i in range(budget.n_splits):
                step(f"{key.upper()}: held-out split {i + 1} of {budget.n_splits}")
                if i >= len(splits):
                    continue
                train_c, test_c = splits[i]
                train_rows = np.r_[np.flatnonzero(~is_clinic), clinic_rows[train_c]]
                est = OutcomeEstimator(protocol, outcome, base).fit(
                    train_frame.iloc[train_rows].reset_index(drop=True), y_all[train_rows])
                test_frame = train_frame.iloc[clinic_rows[test_c]].reset_index(drop=True)
                y_test = y_clinic[test_c]
                a, b = _scores(_prior_shift(est, y_all[train_rows]).apply(
                    est.predict_proba(test_frame)), y_test)
                cand_auc.append(a)
                cand_brier.append(b)
                if serving is not None:
                    pred = _serving_proba(serving, protocol, outcome, test_frame)
                    a, b = _scores(pred, y_test)
                    serv_auc.append(a)
                    serv_brier.append(b)
            members, bags = [], []
            for k in range(budget.n_members):
                step(f"{key.upper()}: member {k + 1} of {budget.n_members}")
                member_config = replace(base, seed=config.seed + k)
                bag_seed = BOOTSTRAP_SEED + config.seed + k
                rows = bootstrap_rows(train_frame, bag_seed)
                est = OutcomeEstimator(protocol, outcome, member_config).fit(
                    train_frame.iloc[rows].reset_index(drop=True), y_all[rows])
                meta = registry.save_artifact(
                    tmp, RTOE_FAMILY, member_name(protocol.name, config.arch, outcome, k),
                    est.state_dict(), seed=member_config.seed, config=member_config.to_dict(),
                    data_hash=data_hash, cohort_version=f"learning-{data_hash[:12]}",
                    metrics={"bootstrap_seed": bag_seed})
                shas.append(meta.sha256)
                members.append(est)
                bags.append(bag_seed)
            step(f"{key.upper()}: calibration and scoring on fresh virtual cohorts")
            calibrations[key] = calibrate_members(protocol, outcome, members, train_frame, bags)
            all_members[key] = members
            fresh = evaluate_members(protocol, outcome, members, calibrations[key])
            candidate[key] = {
                "held_out_auroc": _mean(cand_auc), "held_out_brier": _mean(cand_brier),
                "n_scored_splits": len([a for a in cand_auc if math.isfinite(a)]),
                **held_out, **fresh,
            }
            serving_scores[key] = {
                "held_out_auroc": _mean(serv_auc), "held_out_brier": _mean(serv_brier),
                **{k: v for k, v in (serving_metrics or {}).get(key, {}).items()
                   if k in fresh},
            }
        if reporter is not None:  # no checkpoint: the work is done, it is saved
            reporter.progress(1.0, "saving the new version")
        saved_calibrations: dict[str, Any] = {k: c.to_dict() for k, c in calibrations.items()}
        saved_calibrations["advice"] = calibrate_advice(
            protocol, all_members["tcp"], all_members["ntcp"], saved_calibrations).to_dict()
        cal_meta = registry.save_json_artifact(
            tmp, RTOE_FAMILY, calibration_name(protocol.name, config.arch),
            saved_calibrations, seed=config.seed,
            config={"method": CALIBRATION_RECIPE, "n_members": budget.n_members},
            data_hash=data_hash, cohort_version=f"learning-{data_hash[:12]}", metrics={})
        shas.append(cal_meta.sha256)
        version = learned_version(protocol.name, config.arch, shas)
        training = {
            "config": config.to_dict(), "budget": asdict(budget), "member_configs": configs,
            "n_clinic_cases": int(is_clinic.sum()),
            "n_virtual_cases": int((~is_clinic).sum()), "data_hash": data_hash,
            "serving_version_at_training": serving_version,
        }
        metrics = {"candidate": candidate, "serving": serving_scores,
                   "serving_version": serving_version}
        registry.save_json_artifact(
            tmp, RTOE_FAMILY, f"{protocol.name}_learning",
            {"metrics": metrics, "training": training},
            seed=config.seed, config=config.to_dict(), data_hash=data_hash,
            cohort_version=f"learning-{data_hash[:12]}", metrics={})
        final = out_root / version
        if final.exists():
            shutil.rmtree(tmp)  # the same training again: the same version is already there
        else:
            os.replace(tmp, final)
        return TrainedVersion(version, final, json.loads(json.dumps(metrics)), training)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _prior_shift(est: Any, y_train: np.ndarray) -> Any:
    """The analytic prior-shift correction of one member trained with oversampling (logit + logit
    of the training event rate; balanced training sees 50 %): a held-out split's candidate is
    scored calibrated without fitting anything on data it is scored on."""
    from engine.arclids.calibration import IDENTITY, OutcomeCalibration

    rate = float(np.mean(y_train))
    if not est.config.oversample or rate in (0.0, 1.0):
        return IDENTITY
    return OutcomeCalibration(intercept=math.log(rate / (1.0 - rate)))


def _serving_proba(model: Any, protocol: Protocol, outcome: str, cases: pd.DataFrame) -> np.ndarray:
    """The serving model's ensemble-mean probability of ``outcome`` at each case's received
    adaptive dose (interpolated on the dose grid for models that only give curves)."""
    is_tcp = outcome == protocol.target.outcome
    members = getattr(model, "tcp_members" if is_tcp else "ntcp_members", None)
    if members:
        from engine.arclids.ensemble import member_calibrated_proba

        calibration = getattr(model, "tcp_calibration" if is_tcp else "ntcp_calibration")
        return member_calibrated_proba(members, calibration, cases).mean(axis=0)
    curves = model.predict_curves(cases, protocol)
    tcp, ntcp = curves.mean()
    grid = curves.doses_gy
    values = tcp if outcome == protocol.target.outcome else ntcp
    given = cases["dose_adapt_gy"].to_numpy(dtype=float)
    return np.array([np.interp(d, grid, row) for d, row in zip(given, values, strict=True)])


# --------------------------------------------------------------------------------------------
# The job, as run by a worker process


def _scratch_prefix(job_id: int) -> str:
    return f".job-{int(job_id)}-"


def discard_scratch(out_root: str | Path, job_id: int) -> None:
    """Remove what job ``job_id`` was writing under ``out_root`` (its worker was killed before it
    could clean up); a finished version, already moved into place, is not touched."""
    root = Path(out_root)
    if root.is_dir():
        for scratch in root.glob(f"{_scratch_prefix(job_id)}*"):
            shutil.rmtree(scratch, ignore_errors=True)


def run_job(database_url: str, job_id: int, out_root: str) -> str | None:
    """Run training job ``job_id`` of the store at ``database_url``; returns the new version, or
    None when cancelled or failed. Progress, messages and the outcome are written to the job's
    row, so any app process can show them; a cancel flag set there (or the job ended elsewhere)
    stops the job at its next step. Meant for a worker process started by
    :func:`job_runner` (CPU-bound; one torch thread); a job still queued is claimed first, so a
    direct call runs it only if no job runner has.

    A version is registered only once completely written and moved into place, and only while
    the job is still running: a job given up on never registers one.
    """
    import torch

    from engine.platform.store import Store

    torch.set_num_threads(1)
    store = Store(database_url)
    try:
        job = store.job(job_id)
        if job is not None and job.status == "queued":
            job = store.claim_job(process_identity(), job_id)
        if job is None or job.status != "running":
            return None
        config = LearningConfig.from_dict(job.config)
        protocol = load_protocol(config.protocol)
        if store.update_job(job_id, progress=0.0, message="reading the stored cases"):
            raise Cancelled("reading the stored cases")
        records = [r.values for r in store.inputs_with_outcomes(config.protocol)]
        clinic = clinic_table(protocol, records)
        serving, serving_info = _serving(store, config)
        trained = train_version(
            config, clinic, Path(out_root), serving=serving,
            serving_version=None if serving_info is None else serving_info.version,
            serving_metrics=_fresh_metrics(serving_info),
            reporter=StoreJobReporter(store, job_id), scratch_prefix=_scratch_prefix(job_id),
        )
        if store.update_job(job_id, message="registering the new version"):
            raise Cancelled("registering the new version")
        store.register_model_version(
            protocol=config.protocol, arch=config.arch, version=trained.version,
            location=str(trained.location), source="learning", created_by=job.created_by,
            metrics=trained.metrics, training=trained.training)
        store.update_job(job_id, status="done", progress=1.0, model_version=trained.version,
                         message=f"new version {trained.version}")
        store.log_event(job.created_by, "training_done",
                        {"job": job_id, "protocol": config.protocol, "version": trained.version})
        return trained.version
    except Cancelled:
        store.update_job(job_id, status="cancelled", message="cancelled")
        ended = store.job(job_id)
        if ended is not None and (ended.status, ended.message) == ("cancelled", "cancelled"):
            store.log_event("system", "training_cancelled", {"job": job_id})
        return None
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        store.update_job(job_id, status="failed", message="failed",
                         error=f"{type(exc).__name__}: {text}"[:500])
        return None
    finally:
        store.dispose()


def job_runner(database_url: str, out_root: str | Path, **options: float) -> StoreJobRunner:
    """The Learning Mode job runner of an app process: runs the queued jobs of the store at
    ``database_url`` with :func:`run_job`, versions going to ``out_root`` (the learning
    directory), the scratch files of a job given up on removed. ``options``: timings of
    :class:`engine.platform.jobs.StoreJobRunner` (poll_s, heartbeat_s, stale_after_s,
    cancel_grace_s). Not started: call ``start()``."""
    import functools

    return StoreJobRunner(database_url, run_job, (str(out_root),),
                          discard=functools.partial(discard_scratch, str(out_root)), **options)


def _serving(store: Any, config: LearningConfig) -> tuple[Any | None, Any | None]:
    """The model serving the protocol now (a Learning Mode version, else the shipped one)."""
    from engine.arclids.serving import load_learned_version, load_served_model
    from engine.platform import registry

    info = store.serving_version(config.protocol)
    try:
        if info is not None and info.source == "learning":
            return load_learned_version(config.protocol, info.arch, info.location, info.version,
                                      info.version), info
        model = load_served_model(config.protocol, config.arch)
        shipped = store.model_version(model.version)
        return model, shipped
    except (registry.ArtifactError, OSError, KeyError, ValueError):
        return None, info


def _fresh_metrics(info: Any | None) -> dict[str, Any]:
    """Fresh-cohort metrics stored with a version (shipped: from its evaluation; learned: its
    candidate metrics), per "tcp"/"ntcp"."""
    if info is None:
        return {}
    metrics = info.metrics or {}
    return metrics.get("candidate", metrics)
