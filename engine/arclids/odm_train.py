"""Training, serving and evaluation of the synthetic-patient GAN and the ODM ensembles.

One deterministic command per protocol (``artds train odm --protocol nsclc``) runs:

1. the WGAN-GP on the complete cases of the default virtual trial, its 10,000 synthetic patients
   and their per-feature Jensen–Shannon divergences (saved: ``gan/<protocol>_generator.pt`` and
   ``gan/<protocol>_evaluation.json``);
2. per outcome architecture (``glogd``, ``single``) five ODM members, member k planning on
   4,000 synthetic patients drawn with replacement (seed k) evaluated by ARTE member k of the
   *served* outcome ensemble, then Double-DQN learning (``odm/<protocol>_<arch>_<k>.pt``); each
   member's manifest entry records the outcome-model version and the sha256 of the two RTOE
   artifacts it planned on, and the GAN artifact's sha256;
3. the evaluation (``odm/<protocol>_evaluation.json``): RMSD and MAD against the historic
   clinical decisions, the self-evaluation, how much of the exact argmax's reward the ODM
   reaches, and regret against the virtual trial's oracle.

Serving (:func:`load_served_odm`, :func:`odm_for_model`) refuses an ODM whose recorded outcome
model is not the one being served: the recommender then falls back to the exact argmax of the
reward and says why (:mod:`engine.arclids.recommend`).

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
from engine.arclids.arte import at_dose, evaluate_arte, goal_flags, goal_index, reward
from engine.arclids.cohort import ReferenceModel, generate_cohort
from engine.arclids.evaluation import (
    best_fixed_dose,
    gain_captured,
    mad,
    mean_sem,
    positive_outcome,
    rmsd,
    self_evaluation,
    verdict_shares,
)
from engine.arclids.gan import (
    WGANGP,
    GANConfig,
    TabularTransform,
    feature_divergences,
    feature_histograms,
)
from engine.arclids.odm import (
    DoubleDQN,
    ODMConfig,
    ODMEnsemble,
    ODMPrediction,
    Transitions,
    arte_member,
    ensemble_version,
    plan,
)
from engine.core.protocols import Protocol, load_protocol
from engine.core.rl import QNetwork
from engine.core.schema import case_labels
from engine.platform import registry
from engine.platform.executor import Executor

__all__ = [
    "BUDGETS",
    "GAN_FAMILY",
    "ODM_ARCHS",
    "ODM_FAMILY",
    "OdmUnavailable",
    "evaluate_odm",
    "load_gan",
    "load_odm_evaluation",
    "load_served_odm",
    "odm_for_model",
    "summarise_odm_evaluation",
    "synthetic_pool",
    "train_gan",
    "train_odm",
]

GAN_FAMILY = "gan"
"""Artifact family of the synthetic-patient generators."""
ODM_FAMILY = "odm"
"""Artifact family of the decision makers."""
"""Outcome architectures an ODM ensemble is trained on (GLoGD+DDQN and Single+DDQN)."""
N_MEMBERS = 5
"""ODM members per architecture (the paper's 5), member k on ARTE member k."""
N_SYNTHETIC = 10_000
"""Synthetic patients drawn from the GAN (the paper's 10,000)."""
SYNTHETIC_SEED = 10_000
"""Seed of the latent draws of the synthetic pool."""
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


class OdmUnavailable(Exception):
    """No decision maker can serve this outcome model; the message says why, in one line."""


# ------------------------------------------------------------------------------------------------
# Names and data


def gan_name(protocol_name: str) -> str:
    return f"{protocol_name}_generator"


def gan_evaluation_name(protocol_name: str) -> str:
    return f"{protocol_name}_evaluation"


def odm_member_name(protocol_name: str, arch: str, k: int) -> str:
    return f"{protocol_name}_{arch}_{k}"


def odm_evaluation_name(protocol_name: str) -> str:
    return f"{protocol_name}_evaluation"


def _models_dir(models_dir: Any) -> Any:
    return settings.models_dir() if models_dir is None else models_dir


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
    models_dir = _models_dir(models_dir)
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


def load_gan(protocol_name: str, models_dir: Any = None) -> tuple[WGANGP, registry.ArtifactMeta]:
    """The saved generator (hash-checked) and its manifest entry."""
    protocol = load_protocol(protocol_name)
    state, meta = registry.load_artifact(
        _models_dir(models_dir), GAN_FAMILY, gan_name(protocol_name)
    )
    config = GANConfig.from_dict(
        {k: v for k, v in meta.config.items() if k not in ("protocol", "budget")}
    )
    return WGANGP.from_state_dict(protocol, config, state), meta


def synthetic_pool(gan: WGANGP, n: int = N_SYNTHETIC) -> pd.DataFrame:
    """The synthetic patients every ODM member draws its planning patients from."""
    return gan.sample(n, seed=SYNTHETIC_SEED)


def load_gan_evaluation(protocol_name: str, models_dir: Any = None) -> dict[str, Any]:
    payload, _ = registry.load_json_artifact(
        _models_dir(models_dir), GAN_FAMILY, gan_evaluation_name(protocol_name)
    )
    return payload


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
    from engine.arclids.rtoe_train import load_served_model

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
    from engine.arclids.rtoe_train import load_served_model

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


def _q_network(state: dict[str, torch.Tensor], config: ODMConfig) -> QNetwork:
    weights = {k[len("q_net.") :]: v.float() for k, v in state.items()
               if k.startswith("q_net.") and k != "q_net.n_actions"}
    n_state = weights["net.0.weight"].shape[1]
    net = QNetwork(n_state, int(state["q_net.n_actions"]), config.hidden, config.n_layers)
    net.load_state_dict(weights, strict=True)
    return net.eval()


def _encoder(protocol: Protocol, state: dict[str, torch.Tensor]) -> TabularTransform:
    return TabularTransform.from_state(
        protocol, {k: state[f"encoder.{k}"] for k in ("mean", "sd", "dose_step_gy")}
    )


def _ensemble(
    protocol: Protocol, arch: str, states: Sequence[dict], metas: Sequence[Any]
) -> ODMEnsemble:
    configs = [ODMConfig.from_dict(m.config["odm"]) for m in metas]
    rules = {(c.serving_rule, c.planning_arte) for c in configs}
    if len(rules) != 1:
        raise registry.ArtifactError(
            f"odm/{protocol.name}_{arch}_*: members disagree on the serving rule or the "
            f"planning environment; retrain with `artds train odm --protocol {protocol.name}`"
        )
    serving_rule, planning_arte = rules.pop()
    rtoe_versions = {m.config["rtoe_version"] for m in metas}
    if len(rtoe_versions) != 1:
        raise registry.ArtifactError(
            f"odm/{protocol.name}_{arch}_*: members were trained against different outcome "
            f"models ({', '.join(sorted(rtoe_versions))}); retrain with "
            f"`artds train odm --protocol {protocol.name}`"
        )
    if len(protocol.dose_grid_gy) != int(states[0]["q_net.n_actions"]):
        raise registry.ArtifactError(
            f"odm/{protocol.name}_{arch}_0.pt: trained for another dose grid "
            f"({int(states[0]['q_net.n_actions'])} doses, the protocol has "
            f"{len(protocol.dose_grid_gy)}); retrain with "
            f"`artds train odm --protocol {protocol.name}`"
        )
    return ODMEnsemble(
        protocol,
        _encoder(protocol, states[0]),
        [_q_network(s, c) for s, c in zip(states, configs, strict=True)],
        version=ensemble_version(protocol.name, arch, [m.sha256 for m in metas]),
        rtoe_version=rtoe_versions.pop(),
        arch=arch,
        serving_rule=serving_rule,
        planning_arte=planning_arte,
    )


def load_served_odm(protocol_name: str, arch: str, models_dir: Any = None) -> ODMEnsemble:
    """The saved ODM ensemble of one architecture (hash-checked); raises ArtifactError."""
    protocol = load_protocol(protocol_name)
    states, metas = [], []
    for k in range(N_MEMBERS):
        state, meta = registry.load_artifact(
            _models_dir(models_dir), ODM_FAMILY, odm_member_name(protocol_name, arch, k)
        )
        states.append(state)
        metas.append(meta)
    return _ensemble(protocol, arch, states, metas)


def odm_for_model(
    protocol_name: str, model: Any, models_dir: Any = None
) -> ODMEnsemble:
    """The ODM ensemble that may serve ``model``, or :class:`OdmUnavailable` saying why not.

    Refuses (never crashes on) a missing or tampered ODM, an outcome model no ODM is trained
    for (reference truth, logistic baseline) and an ODM trained against another version of the
    outcome model (e.g. after ``artds train rtoe`` without ``artds train odm``).
    """
    arch = str(getattr(model, "name", "")).removeprefix("rtoe-")
    if arch not in ODM_ARCHS:
        raise OdmUnavailable(
            f"no decision maker is trained for {model.label}; the recommendation is the exact "
            "argmax of the reward"
        )
    try:
        odm = load_served_odm(protocol_name, arch, models_dir)
    except registry.ArtifactError as exc:
        first = str(exc).splitlines()[0]
        raise OdmUnavailable(f"decision maker not loaded ({first})") from exc
    if odm.rtoe_version != model.version:
        raise OdmUnavailable(
            f"decision maker {odm.version} was trained against outcome model {odm.rtoe_version}, "
            f"not the served {model.version}; retrain with `artds train odm --protocol "
            f"{protocol_name}`"
        )
    return odm


# ------------------------------------------------------------------------------------------------
# Evaluation


def _true_reward(protocol: Protocol, truth_tcp: np.ndarray, truth_ntcp: np.ndarray,
                 dose_gy: np.ndarray) -> np.ndarray:
    """True reward at one (possibly off-grid) dose per case, [P]."""
    doses = protocol.dose_grid()
    return reward(at_dose(doses, truth_tcp, dose_gy), at_dose(doses, truth_ntcp, dose_gy),
                  protocol.goals)


def _policy_scores(
    protocol: Protocol, arte_tcp: np.ndarray, arte_ntcp: np.ndarray, dose_gy: np.ndarray
) -> np.ndarray:
    """ARTE (ensemble-mean) reward at one dose per case, [P]."""
    doses = protocol.dose_grid()
    return reward(at_dose(doses, arte_tcp, dose_gy), at_dose(doses, arte_ntcp, dose_gy),
                  protocol.goals)


def _regret(protocol: Protocol, cases: pd.DataFrame, policies: dict[str, np.ndarray]
            ) -> dict[str, Any]:
    """Per policy: mean |dose − oracle dose| and mean true-reward loss against the oracle."""
    truth = ReferenceModel(protocol.name).predict_curves(cases, protocol)
    t_tcp, t_ntcp = truth.tcp[0], truth.ntcp[0]  # [P, D]
    t_reward = reward(t_tcp, t_ntcp, protocol.goals)
    doses = protocol.dose_grid()
    oracle_j = np.argmax(t_reward, axis=1)
    oracle_dose = doses[oracle_j]
    oracle_reward = t_reward[np.arange(len(cases)), oracle_j]
    out: dict[str, Any] = {
        "n_cases": len(cases),
        "oracle_true_reward_mean": float(oracle_reward.mean()),
        "oracle_dose_mean_gy": float(oracle_dose.mean()),
    }
    for name, dose in policies.items():
        r = _true_reward(protocol, t_tcp, t_ntcp, dose)
        out[name] = {
            "dose_abs_error_gy": float(np.mean(np.abs(dose - oracle_dose))),
            "true_reward_loss": float(np.mean(oracle_reward - r)),
            "true_reward_mean": float(r.mean()),
        }
    return out


def _reward_capture(
    protocol: Protocol, tcp: np.ndarray, ntcp: np.ndarray, dose_gy: np.ndarray
) -> dict[str, Any]:
    """argmax_reward_ratio and gain_captured of a dose per case on one ARTE ([P, D] curves)."""
    r = reward(tcp, ntcp, protocol.goals)  # [P, D]
    r_policy = float(_policy_scores(protocol, tcp, ntcp, dose_gy).mean())
    r_argmax = float(r.max(axis=1).mean())
    j_fixed, r_fixed = best_fixed_dose(r)
    return {
        "argmax_reward_ratio": r_policy / r_argmax if r_argmax > 0 else None,
        "gain_captured": gain_captured(r_policy, r_argmax, r_fixed),
        "reward_mean": r_policy,
        "exact_argmax_reward_mean": r_argmax,
        "best_fixed_dose_gy": float(protocol.dose_grid()[j_fixed]),
        "best_fixed_dose_reward_mean": r_fixed,
    }


def evaluate_odm(
    protocol: Protocol,
    model: Any,
    odm: ODMEnsemble,
    trial: pd.DataFrame,
    fresh: pd.DataFrame,
) -> dict[str, Any]:
    """Every metric of one RTOE+DDQN pairing (see the module docstring and the model card).

    Args:
        protocol: the protocol.
        model: the served outcome ensemble the ODM was trained on (ARTE).
        odm: the ODM ensemble.
        trial: complete cases of the training trial with ``dose_adapt_gy`` and both outcomes
            (the historic clinical decisions the paper compares with).
        fresh: complete cases of a fresh virtual cohort (regret on a larger sample).
    """
    doses = protocol.dose_grid()
    window = 0.1 * float(doses[-1])
    out: dict[str, Any] = {"odm_version": odm.version, "rtoe_version": model.version,
                           "self_evaluation_window_gy": window}
    cohort_metrics = {}
    for label, cases in (("trial", trial), ("fresh", fresh)):
        arte = evaluate_arte(cases, protocol, model)
        pred = odm.predict(cases)
        tcp, ntcp = arte.tcp.mean(axis=0), arte.ntcp.mean(axis=0)  # [P, D]
        exact_dose = doses[np.argmax(reward(tcp, ntcp, protocol.goals), axis=1)]
        served = _reward_capture(protocol, tcp, ntcp, pred.dose_gy)
        # Each member on the environment it planned on: its own ARTE member, or the mean.
        own = odm.planning_arte == "member"
        per_member = [
            _reward_capture(protocol, arte.tcp[k] if own else tcp, arte.ntcp[k] if own else ntcp,
                            pred.member_dose_gy[k])
            for k in range(pred.n_members)
        ]
        clinical = cases["dose_adapt_gy"].to_numpy(np.float64)
        by_rule = {
            rule: {key: value for key, value in _reward_capture(protocol, tcp, ntcp, dose).items()
                   if key in ("argmax_reward_ratio", "gain_captured", "reward_mean")}
            for rule, dose in (("mean-dose", pred.member_mean_dose_gy),
                               ("mean-q", pred.mean_q_dose_gy))
        }
        m: dict[str, Any] = {
            "n_cases": len(cases),
            **served,
            "serving_rule": odm.serving_rule,
            "by_serving_rule": by_rule,
            "per_member": {
                key: mean_sem(np.array([pm[key] if pm[key] is not None else np.nan
                                        for pm in per_member]))
                for key in ("argmax_reward_ratio", "gain_captured")
            },
            "exact_match_rate": float(np.mean(np.isclose(pred.dose_gy, exact_dose))),
            "dose_abs_error_vs_exact_argmax_gy": float(np.mean(np.abs(pred.dose_gy - exact_dose))),
            "dose_sem_mean_gy": float(pred.dose_sem_gy.mean()),
            "q_value_mean": float(pred.q_value.mean()),
            "regret": _regret(protocol, cases, {
                "odm": pred.dose_gy, "exact_argmax": exact_dose, "historic": clinical,
                "odm_mean_dose": pred.member_mean_dose_gy, "odm_mean_q": pred.mean_q_dose_gy,
            }),
        }
        if label == "trial":
            m.update(_against_clinic(protocol, cases, pred, window))
            m["patients"] = _patient_rows(protocol, cases, pred, exact_dose, window)
        cohort_metrics[label] = m
    out["trial"] = cohort_metrics["trial"]
    out["fresh"] = cohort_metrics["fresh"]
    return out


def _against_clinic(
    protocol: Protocol, cases: pd.DataFrame, pred: ODMPrediction, window: float
) -> dict[str, Any]:
    """RMSD/MAD (mean ± sem over members) and self-evaluation, overall and by outcome."""
    clinical = cases["dose_adapt_gy"].to_numpy(np.float64)
    tc = cases[protocol.target.outcome].to_numpy().astype(int)
    tox = cases[protocol.oar.outcome].to_numpy().astype(int)
    positive = positive_outcome(tc, tox)
    groups = {"overall": np.ones(len(cases), bool), "positive": positive, "negative": ~positive}
    verdicts = self_evaluation(pred.dose_gy, clinical, tc, tox, window)
    out: dict[str, Any] = {"rmsd_gy": {}, "mad_gy": {}, "self_evaluation": {}, "n_by_outcome": {}}
    for name, mask in groups.items():
        out["n_by_outcome"][name] = int(mask.sum())
        out["rmsd_gy"][name] = mean_sem(np.array(
            [rmsd(d[mask], clinical[mask]) for d in pred.member_dose_gy]))
        out["mad_gy"][name] = mean_sem(np.array(
            [mad(d[mask], clinical[mask]) for d in pred.member_dose_gy]))
        out["self_evaluation"][name] = verdict_shares(verdicts[mask])
    out["rmsd_served_gy"] = rmsd(pred.dose_gy, clinical)
    return out


def _patient_rows(protocol: Protocol, cases: pd.DataFrame, pred: ODMPrediction,
                  exact_dose: np.ndarray, window: float) -> dict[str, list]:
    """Per case (for the recommendation-vs-clinical figure): columns of equal length."""
    tc = cases[protocol.target.outcome].to_numpy().astype(int)
    tox = cases[protocol.oar.outcome].to_numpy().astype(int)
    clinical = cases["dose_adapt_gy"].to_numpy(np.float64)
    return {
        "label": case_labels(cases),
        "clinical_dose_gy": clinical.tolist(),
        "tumour_controlled": tc.tolist(),
        "toxicity": tox.tolist(),
        "recommended_dose_gy": [round(float(v), 6) for v in pred.dose_gy],
        "recommended_dose_sem_gy": [round(float(v), 6) for v in pred.dose_sem_gy],
        "member_mean_dose_gy": [round(float(v), 6) for v in pred.member_mean_dose_gy],
        "q_value": [round(float(v), 6) for v in pred.q_value],
        "exact_argmax_dose_gy": exact_dose.tolist(),
        "self_evaluation": self_evaluation(pred.dose_gy, clinical, tc, tox, window).tolist(),
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
    from engine.arclids.rtoe_train import evaluation_cohort, load_members, load_served_model

    models_dir = _models_dir(models_dir)
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
            for k in range(N_MEMBERS)
        ]
        log(f"{protocol_name} {arch}: planning and learning {N_MEMBERS} ODM members "
            f"({base.epochs} epochs, {base.n_planning_patients} synthetic patients each)")
        bar = progress_factory(f"{arch} ODM members") if progress_factory else None
        arch_started = time.perf_counter()
        results = executor.map(_odm_job, jobs, progress=bar, desc=f"{arch} ODM")
        timings[f"odm_{arch}"] = time.perf_counter() - arch_started
        states, metas = [], []
        for job, result, tm, nm in zip(jobs, results, tcp_metas, ntcp_metas, strict=True):
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
        odm = _ensemble(protocol, arch, states, metas)
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


def load_odm_evaluation(protocol_name: str, models_dir: Any = None) -> tuple[dict, Any]:
    """The saved ODM evaluation payload (hash-checked) and its manifest entry."""
    return registry.load_json_artifact(
        _models_dir(models_dir), ODM_FAMILY, odm_evaluation_name(protocol_name)
    )


_SUMMARY_KEYS = (
    "rmsd_gy", "mad_gy", "self_evaluation", "n_by_outcome", "argmax_reward_ratio",
    "gain_captured", "serving_rule", "by_serving_rule", "per_member", "best_fixed_dose_gy",
    "exact_match_rate", "dose_abs_error_vs_exact_argmax_gy", "dose_sem_mean_gy", "q_value_mean",
    "regret",
)


def summarise_odm_evaluation(
    payload: dict[str, Any], meta: Any, served_rtoe: dict[str, str] | None = None
) -> dict[str, Any]:
    """What ``artds evaluate odm --json`` prints: the metrics without per-patient rows.

    ``served_rtoe`` maps architecture → the version of the outcome model served now; an
    architecture whose evaluation was computed against another version gets
    ``"stale": true`` and a note.
    """
    archs = {}
    for arch, m in payload["architectures"].items():
        entry = {
            "odm_version": m["odm_version"],
            "rtoe_version": m["rtoe_version"],
            **{k: m["trial"][k] for k in _SUMMARY_KEYS if k in m["trial"]},
            "fresh_cohort": {k: m["fresh"][k] for k in _SUMMARY_KEYS if k in m["fresh"]}
            | {"n_cases": m["fresh"]["n_cases"]},
            "n_cases": m["trial"]["n_cases"],
        }
        served = (served_rtoe or {}).get(arch)
        entry["stale"] = served is not None and served != m["rtoe_version"]
        if entry["stale"]:
            entry["note"] = (f"evaluated against outcome model {m['rtoe_version']}, but "
                             f"{served} is served: retrain with `artds train odm --protocol "
                             f"{payload['protocol']}`")
        archs[arch] = entry
    return {
        "protocol": payload["protocol"],
        "budget": payload["budget"],
        "created": meta.created,
        "cohort_version": payload["cohort_version"],
        "gan_jsd_vs_training_mean": payload.get("gan_jsd_vs_training_mean"),
        "planning": _planning_summary(payload),
        "architectures": archs,
    }


def _planning_summary(payload: dict[str, Any]) -> dict[str, Any]:
    """How the members planned and what is served (for the review text and the JSON)."""
    config = ODMConfig.from_dict(payload["odm_config"])
    return {
        "n_synthetic": payload.get("n_synthetic", N_SYNTHETIC),
        "n_planning_patients": config.n_planning_patients,
        "planning_resample": config.planning_resample,
        "planning_arte": config.planning_arte,
        "serving_rule": config.serving_rule,
        "epochs": config.epochs,
    }


def served_rtoe_versions(protocol_name: str, models_dir: Any = None) -> dict[str, str]:
    """Version of each outcome ensemble that loads now (architectures that do not are left out)."""
    from engine.arclids.rtoe_train import load_served_model

    out = {}
    for arch in ODM_ARCHS:
        try:
            out[arch] = load_served_model(protocol_name, arch, models_dir).version
        except (registry.ArtifactError, RuntimeError, KeyError, ValueError, OSError):
            continue
    return out

