"""Training of the synthetic-patient GAN and the ODM ensembles.

One deterministic command per protocol (``artds train odm --protocol nsclc``) runs:

1. the WGAN-GP on the complete cases of the default virtual trial, its 10,000 synthetic patients
   and their per-feature Jensen–Shannon divergences (saved: ``gan/<protocol>_generator.pt`` and
   ``gan/<protocol>_evaluation.json``);
2. per outcome architecture (``glogd``, ``single``) five ODM members, member k planning on
   4,000 synthetic patients drawn with replacement (seed k) evaluated by ARTE member k of the
   *served* outcome ensemble, then Double-DQN learning (``odm/<protocol>_<arch>_<k>.pt``); each
   member's manifest entry records the outcome-model version and the sha256 of the two RTOE
   artifacts it planned on, and the GAN artifact's sha256;
3. the evaluation (``odm/<protocol>_evaluation.json``, :mod:`engine.arclids.odm_eval`): RMSD and
   MAD against the historic clinical decisions, the self-evaluation, how much of the exact
   argmax's reward the ODM reaches, and regret against the virtual trial's oracle.

Artifact names, the loaders of the GAN, the outcome models and the ODM ensembles, and the guard
that refuses an ODM trained against another outcome model than the one served, live in
:mod:`engine.arclids.serving`.

Weights are stored as float16 (a 5 × 256 Q-network is 1.1 MB in float32, 0.55 MB in float16;
20 members fit the models/ budget only this way). The evaluation scores the float16-rounded
networks, i.e. exactly what is served.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine import settings
from engine.arclids.architectures import ODM_ARCHS
from engine.arclids.arte import evaluate_arte, goal_flags, goal_index, reward
from engine.arclids.cohort import generate_cohort
from engine.arclids.gan import (
    WGANGP,
    GANConfig,
    TabularTransform,
    feature_divergences,
    feature_histograms,
)
from engine.arclids.odm import DoubleDQN, ODMConfig, Transitions, arte_member, plan
from engine.arclids.odm_eval import evaluate_odm
from engine.arclids.rtoe_eval import evaluation_cohort
from engine.arclids.serving import (
    GAN_FAMILY,
    N_ODM_MEMBERS,
    N_SYNTHETIC,
    ODM_FAMILY,
    SYNTHETIC_SEED,
    gan_evaluation_name,
    gan_name,
    load_gan,
    load_members,
    load_served_model,
    odm_ensemble,
    odm_evaluation_name,
    odm_member_name,
    synthetic_pool,
)
from engine.core.protocols import load_protocol
from engine.platform import registry
from engine.platform.executor import Executor

__all__ = [
    "BUDGETS",
    "Budget",
    "OdmJob",
    "train_gan",
    "train_odm",
]

WEIGHT_DTYPE = torch.float16
"""Storage dtype of the Q-network weights (see the module docstring)."""


@dataclass(frozen=True)
class Budget:
    """A named training budget: the GAN's and each ODM member's configuration."""

    gan: GANConfig
    """WGAN-GP hyperparameters."""
    odm: ODMConfig
    """Hyperparameters of each ODM member (its seed is set per member)."""
    description: str
    """One line on what the budget is for."""
    n_synthetic: int = N_SYNTHETIC
    """Synthetic patients in the pool the ODM members plan on (the paper's 10,000; the
    distribution checks always use 10,000)."""


BUDGETS: dict[str, Budget] = {
    "paper": Budget(
        GANConfig(),
        ODMConfig(),
        "ARCliDS S5/S6 as printed: GAN 500 epochs; ODM 300 epochs on one draw of 4,000 of "
        "10,000 synthetic patients, member k on ARTE member k, the members' mean dose served.",
    ),
    "paper-100": Budget(
        GANConfig(),
        ODMConfig(epochs=100),
        "The paper's method at 100 ODM epochs (the comparison row of docs/model-card-odm.md).",
    ),
    "default": Budget(
        GANConfig(),
        ODMConfig(epochs=100, planning_resample=True, planning_arte="ensemble"),
        "The paper's GAN and networks; ODM 100 epochs of 4,000 patients drawn afresh per epoch "
        "from 50,000, every member on the ensemble-mean ARTE (measured in "
        "docs/model-card-odm.md).",
        n_synthetic=50_000,
    ),
    "long": Budget(
        GANConfig(),
        ODMConfig(epochs=300, planning_resample=True, planning_arte="ensemble"),
        "The default at the paper's 300 ODM epochs: better NSCLC reward capture for 3x the "
        "ODM time (measured in docs/model-card-odm.md).",
        n_synthetic=50_000,
    ),
    "tiny": Budget(
        GANConfig(hidden=32, n_layers=2, latent_dim=8, epochs=3),
        ODMConfig(hidden=32, n_layers=2, epochs=3, n_planning_patients=200,
                  planning_resample=True, planning_arte="ensemble"),
        "Smoke-test budget for CI (the default's planning, tiny networks): seconds, not a "
        "usable model.",
        n_synthetic=1_000,
    ),
}
"""Training budgets of ``artds train odm --budget``."""


# ------------------------------------------------------------------------------------------------
# Data


def _training_table(protocol_name: str) -> tuple[pd.DataFrame, Any]:
    """Complete cases of the default virtual trial and the trial (for its version)."""
    cohort = generate_cohort(protocol_name)
    return cohort.complete_table, cohort


@cache
def _population(protocol_name: str) -> pd.DataFrame:
    """A large fresh virtual cohort: what the population really looks like (for the JSD)."""
    return generate_cohort(protocol_name, seed=90_002, n_patients=10_000).complete_table


# ------------------------------------------------------------------------------------------------
# GAN


def train_gan(
    protocol_name: str,
    *,
    budget: str = "default",
    models_dir: Any = None,
    seed: int = 0,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Train the WGAN-GP, save the generator and its distribution checks; return the checks."""
    models_dir = settings.models_dir(models_dir)
    protocol = load_protocol(protocol_name)
    table, cohort = _training_table(protocol_name)
    config = replace(BUDGETS[budget].gan, seed=seed)
    log(f"{protocol_name} GAN: {config.epochs} epochs on {len(table)} complete cases")
    gan = WGANGP(protocol, config).fit(table)
    data_hash = registry.data_hash(table)
    synthetic = gan.sample(N_SYNTHETIC, seed=SYNTHETIC_SEED)
    population = _population(protocol_name)
    jsd_train = feature_divergences(protocol, table, synthetic)
    jsd_pop = feature_divergences(protocol, population, synthetic)
    floor = feature_divergences(protocol, population, table)
    checks = {
        "protocol": protocol_name,
        "budget": budget,
        "n_training_cases": len(table),
        "n_synthetic": N_SYNTHETIC,
        "jsd_vs_training": jsd_train,
        "jsd_vs_population": jsd_pop,
        "jsd_training_vs_population": floor,
        "jsd_vs_training_mean": float(np.mean(list(jsd_train.values()))),
        "jsd_vs_population_mean": float(np.mean(list(jsd_pop.values()))),
        "jsd_training_vs_population_mean": float(np.mean(list(floor.values()))),
        "histograms": feature_histograms(
            protocol, {"training": table, "synthetic": synthetic, "population": population}
        ),
        "history": gan.history_[:: max(1, len(gan.history_) // 100)],
    }
    meta = registry.save_artifact(
        models_dir,
        GAN_FAMILY,
        gan_name(protocol_name),
        gan.state_dict(),
        seed=seed,
        config={"protocol": protocol_name, "budget": budget, **config.to_dict()},
        data_hash=data_hash,
        cohort_version=cohort.version,
        metrics={
            "jsd_vs_training_mean": checks["jsd_vs_training_mean"],
            "jsd_vs_population_mean": checks["jsd_vs_population_mean"],
        },
    )
    checks["generator_sha256"] = meta.sha256
    registry.save_json_artifact(
        models_dir,
        GAN_FAMILY,
        gan_evaluation_name(protocol_name),
        checks,
        seed=seed,
        config={"protocol": protocol_name, "budget": budget},
        data_hash=data_hash,
        cohort_version=cohort.version,
        metrics={"jsd_vs_training_mean": checks["jsd_vs_training_mean"]},
    )
    return checks


# ------------------------------------------------------------------------------------------------
# ODM members (jobs for any executor)


@dataclass(frozen=True)
class OdmJob:
    """Plan and learn one ODM member."""

    protocol: str
    """Protocol name."""
    arch: str
    """Outcome architecture whose member ``member`` is the ARTE."""
    member: int
    """Member index k (ARTE member k; planning draw seed)."""
    config: dict
    """ODMConfig as a dict (seed included)."""
    models_dir: str
    """Where the GAN and the outcome models are loaded from (hash-checked)."""
    n_synthetic: int = N_SYNTHETIC
    """Size of the synthetic pool."""


def _member_state(
    dqn: DoubleDQN, encoder: TabularTransform, n_actions: int
) -> dict[str, torch.Tensor]:
    """What one ODM member artifact holds: float16 Q-network weights and the state encoder."""
    state = {f"encoder.{k}": v for k, v in encoder.state().items()}
    for key, value in dqn.online_.state_dict().items():
        state[f"q_net.{key}"] = value.detach().to(WEIGHT_DTYPE).clone()
    state["q_net.n_actions"] = torch.tensor(n_actions)
    return state


@lru_cache(maxsize=1)
def _planning_memory(
    protocol_name: str, arch: str, models_dir: str, n_synthetic: int, gan_sha256: str,
    rtoe_version: str, n_planning: int, resample: bool, planning_arte: str, seed: int,
    member: int,
) -> tuple[pd.DataFrame, Transitions, TabularTransform, float]:
    """The planning cases, their memory, the state encoder and the mean planned reward.

    Cached (one entry) per worker process: with ``planning_arte="ensemble"`` and resampling,
    the five members plan on the same pool with the same environment, so a worker that runs
    several members evaluates ARTE over the pool once. The key holds the GAN's sha256 and the
    outcome ensemble's version, so a retrained model is never served from the cache.
    """
    protocol = load_protocol(protocol_name)
    gan, gan_meta = load_gan(protocol_name, models_dir)
    model = load_served_model(protocol_name, arch, models_dir)
    if gan_meta.sha256 != gan_sha256 or model.version != rtoe_version:
        raise registry.ArtifactError("the GAN or the outcome models changed while training")
    pool = synthetic_pool(gan, n_synthetic)
    encoder = TabularTransform(protocol).fit(pool)
    if resample:
        # The whole pool is planned; DoubleDQN draws n_planning_patients of it per epoch.
        cases = pool
    else:
        rng = np.random.default_rng(np.random.SeedSequence([seed, member, 4_000]))
        draw = rng.choice(len(pool), size=n_planning, replace=True)
        cases = pool.iloc[draw].reset_index(drop=True)
    if planning_arte == "ensemble":
        arte = evaluate_arte(cases, protocol, model)
        tcp, ntcp = arte.tcp.mean(axis=0), arte.ntcp.mean(axis=0)  # [P, D]
        arte = dataclasses.replace(
            arte, tcp=tcp[None], ntcp=ntcp[None], reward=reward(tcp, ntcp, protocol.goals)[None],
            goal=goal_index(tcp, ntcp, protocol.goals)[None],
            goal_flags=goal_flags(tcp, ntcp, protocol.goals)[:, None],
        )
    else:
        arte = evaluate_arte(cases, protocol, arte_member(model, member))
    memory, _ = plan(cases, protocol, arte, encoder)
    return cases, memory, encoder, float(arte.reward.mean())


def _odm_job(job: OdmJob) -> dict[str, Any]:
    """Plan on synthetic patients with ARTE (member k's or the ensemble mean), learn by Double
    DQN, return the weights."""
    protocol = load_protocol(job.protocol)
    config = ODMConfig.from_dict(job.config)
    _, gan_meta = load_gan(job.protocol, job.models_dir)
    model = load_served_model(job.protocol, job.arch, job.models_dir)
    shared = config.planning_arte == "ensemble" and config.planning_resample
    cases, memory, encoder, reward_mean = _planning_memory(
        job.protocol, job.arch, job.models_dir, job.n_synthetic, gan_meta.sha256, model.version,
        config.n_planning_patients, config.planning_resample, config.planning_arte,
        # member k's draw (and, in member mode, its ARTE member); a shared memory has neither
        *((-1, -1) if shared else (config.seed, job.member)),
    )
    dqn = DoubleDQN(memory.states.shape[1], len(protocol.dose_grid_gy), config).fit(memory)
    return {
        "state": _member_state(dqn, encoder, len(protocol.dose_grid_gy)),
        "loss": dqn.loss_,
        "planning_hash": registry.data_hash(cases),
        "planning_reward_mean": reward_mean,
    }


# ------------------------------------------------------------------------------------------------
# The whole pipeline


def train_odm(
    protocol_name: str,
    executor: Executor,
    *,
    budget: str = "default",
    archs: Sequence[str] = ODM_ARCHS,
    models_dir: Any = None,
    seed: int = 0,
    with_gan: bool = True,
    progress_factory: Callable[[str], Callable[[int, int], None]] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """GAN (unless ``with_gan`` is False), five ODM members per architecture, the evaluation.

    Deterministic: the same protocol, budget, seed, code and outcome models give the same
    artifacts whichever executor runs the member jobs. Returns the evaluation payload (also
    saved as ``odm/<protocol>_evaluation.json``).
    """
    models_dir = settings.models_dir(models_dir)
    protocol = load_protocol(protocol_name)
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    gan_checks = None
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if with_gan:
        gan_checks = train_gan(protocol_name, budget=budget, models_dir=models_dir, seed=seed,
                               log=log)
        timings["gan"] = time.perf_counter() - started
    _, gan_meta = load_gan(protocol_name, models_dir)
    trial, cohort = _training_table(protocol_name)
    fresh, _ = evaluation_cohort(protocol_name)
    base = replace(BUDGETS[budget].odm, seed=seed)
    n_synthetic = BUDGETS[budget].n_synthetic
    payload: dict[str, Any] = {
        "protocol": protocol_name,
        "budget": budget,
        "seed": seed,
        "odm_config": base.to_dict(),
        "gan_sha256": gan_meta.sha256,
        "gan_jsd_vs_training_mean": gan_meta.metrics.get("jsd_vs_training_mean"),
        "cohort_version": cohort.version,
        "n_synthetic": n_synthetic,
        "architectures": {},
    }
    for arch in archs:
        model = load_served_model(protocol_name, arch, models_dir)
        _, tcp_metas = load_members(protocol_name, arch, protocol.target.outcome, models_dir)
        _, ntcp_metas = load_members(protocol_name, arch, protocol.oar.outcome, models_dir)
        jobs = [
            OdmJob(protocol_name, arch, k, replace(base, seed=seed + k).to_dict(),
                   str(models_dir), n_synthetic=n_synthetic)
            for k in range(N_ODM_MEMBERS)
        ]
        log(f"{protocol_name} {arch}: planning and learning {N_ODM_MEMBERS} ODM members "
            f"({base.epochs} epochs, {base.n_planning_patients} synthetic patients each)")
        bar = progress_factory(f"{arch} ODM members") if progress_factory else None
        arch_started = time.perf_counter()
        results = executor.map(_odm_job, jobs, progress=bar, desc=f"{arch} ODM")
        timings[f"odm_{arch}"] = time.perf_counter() - arch_started
        states, metas = [], []
        for job, result in zip(jobs, results, strict=True):
            # member k plans on outcome member k (planning_arte "member") or on all of them
            tm = tcp_metas[job.member % len(tcp_metas)]
            nm = ntcp_metas[job.member % len(ntcp_metas)]
            config = ODMConfig.from_dict(job.config)
            meta = registry.save_artifact(
                models_dir,
                ODM_FAMILY,
                odm_member_name(protocol_name, arch, job.member),
                result["state"],
                seed=config.seed,
                config={
                    "protocol": protocol_name,
                    "arch": arch,
                    "member": job.member,
                    "budget": budget,
                    "odm": config.to_dict(),
                    "weight_dtype": str(WEIGHT_DTYPE).removeprefix("torch."),
                    "rtoe_version": model.version,
                    # the outcome artifacts the member planned on: member k's, or all of them
                    **({"rtoe_member_sha256": {"tcp": tm.sha256, "ntcp": nm.sha256}}
                       if config.planning_arte == "member" else
                       {"rtoe_sha256": {"tcp": [m.sha256 for m in tcp_metas],
                                        "ntcp": [m.sha256 for m in ntcp_metas]}}),
                    "gan_sha256": gan_meta.sha256,
                    "n_synthetic": n_synthetic,
                },
                data_hash=result["planning_hash"],
                cohort_version=cohort.version,
                metrics={"final_loss": result["loss"][-1] if result["loss"] else None},
            )
            states.append(result["state"])
            metas.append(meta)
        odm = odm_ensemble(protocol, arch, states, metas)
        log(f"{protocol_name} {arch}: evaluating {odm.version}")
        metrics = evaluate_odm(protocol, model, odm, trial, fresh)
        metrics["loss"] = [r["loss"][:: max(1, len(r["loss"]) // 100)] for r in results]
        payload["architectures"][arch] = metrics
        timings[f"evaluate_{arch}"] = time.perf_counter() - arch_started - timings[f"odm_{arch}"]
    timings["total"] = time.perf_counter() - started
    if gan_checks is not None:
        payload["gan_jsd_vs_training_mean"] = gan_checks["jsd_vs_training_mean"]
    registry.save_json_artifact(
        models_dir,
        ODM_FAMILY,
        odm_evaluation_name(protocol_name),
        payload,
        seed=seed,
        config={"protocol": protocol_name, "budget": budget, "archs": list(archs)},
        data_hash=registry.data_hash(trial),
        cohort_version=cohort.version,
        metrics={},
    )
    # Wall-clock seconds on this machine: returned and logged, not saved (artifacts stay
    # byte-identical between runs).
    return payload | {"wall_seconds": {k: round(v, 1) for k, v in timings.items()}}
