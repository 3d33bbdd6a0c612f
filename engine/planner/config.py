"""Configuration of the fractionation planner: biology ranges, reward, course, DQN, evaluation.

Every config is a frozen dataclass with a docstring per field, checked when it is built
(``__post_init__`` runs :meth:`validate`, with the shared checks of :mod:`engine.core.config`): a
``ValueError`` names the field, the value and the accepted range. Defaults follow DESIGN.md §5
and the paper's lung case (Ebrahimi & Lim): 35 fractions, 5 a week, actions {1.8, 2.0, 2.2} Gy
(Algorithm 2 with d = 2.0, d̲ = 1.8, d̄ = 2.2, Δ = 0.2), total dose 68–72 Gy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from engine.core.config import check_choice, check_interval, check_range
from engine.planner.model import OarBiology, action_set

__all__ = [
    "PRIORITIES",
    "REWARD_MODES",
    "BiologyRanges",
    "CourseConfig",
    "DQNConfig",
    "PlanConfig",
    "RewardWeights",
    "config_from_dict",
    "preference_weights",
]

REWARD_MODES = ("terminal", "cumulative")
"""How reward (15) is paid out over a course (see :class:`RewardWeights`)."""
PRIORITIES = ("tumour", "oar_sparing")
"""Planner preferences: raise tumour BED within the OAR tolerance, or spare the OAR."""


@dataclass(frozen=True)
class BiologyRanges:
    """Uniform sampling ranges of the uncertain tumour biology (lung, DESIGN.md §5)."""

    alpha_per_gy: tuple[float, float] = (0.20, 0.365)
    """α of oxic tumour cells, Gy⁻¹ (Jeong 2017; Uzan & Nahum 2012). Accepted 0.01–1."""
    alpha_beta_gy: tuple[float, float] = (4.0, 10.0)
    """Tumour α/β, Gy. Accepted 0.5–30."""
    tau_g_days: tuple[float, float] = (10.0, 60.0)
    """Repopulation time constant τ_g = T_d / ln 2, days. Accepted 1–1000."""
    tau_d_days: tuple[float, float] = (2.0, 6.0)
    """Dead-cell decay time constant, days. Accepted 0.5–100."""
    oer: float = 1.7
    """Oxygen enhancement ratio (fixed, lung). Accepted 1–3."""
    rho: float = 0.8
    """Share of lethally hit cells that die at once (the paper's sensitivity analysis; its lung
    case does not state one). Accepted 0–1."""
    patient_alpha_per_gy: float | None = None
    """The patient's own α, Gy⁻¹ (e.g. from a predicted SF2), or None. When set, every scenario
    uses it and only α/β, τ_g and τ_d stay uncertain. Accepted 0.01–1."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> BiologyRanges:
        """Check every field (done at construction); returns self."""
        check_interval("alpha_per_gy", self.alpha_per_gy, 0.01, 1.0)
        check_interval("alpha_beta_gy", self.alpha_beta_gy, 0.5, 30.0)
        check_interval("tau_g_days", self.tau_g_days, 1.0, 1000.0)
        check_interval("tau_d_days", self.tau_d_days, 0.5, 100.0)
        check_range("oer", self.oer, 1.0, 3.0)
        check_range("rho", self.rho, 0.0, 1.0)
        if self.patient_alpha_per_gy is not None:
            check_range("patient_alpha_per_gy", self.patient_alpha_per_gy, 0.01, 1.0)
        return self


@dataclass(frozen=True)
class CourseConfig:
    """The treatment course and its action set (Algorithm 2)."""

    n_fractions: int = 35
    """Fractions in the course. Accepted 5–60, a multiple of ``fractions_per_week``."""
    fractions_per_week: int = 5
    """Fractions a week (Monday–Friday; weekends are treatment gaps). Accepted 1–7."""
    reference_dose_gy: float = 2.0
    """Conventional dose per fraction d of the equal-dose reference plan, Gy. Accepted 0.5–10."""
    min_dose_gy: float = 1.8
    """Per-fraction lower bound d̲ of Algorithm 2, Gy (≤ reference)."""
    max_dose_gy: float = 2.2
    """Per-fraction upper bound d̄ of Algorithm 2, Gy (≥ reference)."""
    step_gy: float = 0.2
    """Algorithm 2's Δ, Gy. Accepted 0.01–5."""
    fractions_per_decision: int = 5
    """Fractions each action of the planner is held for: 5 decides once a week, at the paper's
    adaptation epochs (the default: the ART plan and the oracle are weekly, and 7 decisions
    train reliably within the time budget); 1 decides every fraction (Algorithm 1 as printed,
    Fig. 12a). Must be 1 or ``fractions_per_week``."""
    total_dose_bounds_gy: tuple[float, float] = (68.0, 72.0)
    """Total physical dose allowed over the course, Gy (paper: 68–72 Gy, Roach 2018). Actions
    that would make it unreachable are masked; must contain the reference total."""

    @property
    def actions_gy(self) -> tuple[float, ...]:
        """Candidate doses per fraction from Algorithm 2, Gy, ascending."""
        return action_set(self.reference_dose_gy, self.min_dose_gy, self.max_dose_gy,
                          self.step_gy)

    @property
    def n_weeks(self) -> int:
        return self.n_fractions // self.fractions_per_week

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> CourseConfig:
        """Check every field (done at construction); returns self."""
        check_range("fractions_per_week", self.fractions_per_week, 1, 7, integer=True)
        check_range("n_fractions", self.n_fractions, 5, 60, integer=True)
        if self.n_fractions % self.fractions_per_week:
            raise ValueError(
                f"n_fractions = {self.n_fractions} must be a multiple of fractions_per_week = "
                f"{self.fractions_per_week}"
            )
        if self.fractions_per_decision not in (1, self.fractions_per_week):
            raise ValueError(
                f"fractions_per_decision = {self.fractions_per_decision!r}; accepted 1 or "
                f"fractions_per_week ({self.fractions_per_week})"
            )
        check_range("reference_dose_gy", self.reference_dose_gy, 0.5, 10.0)
        check_range("min_dose_gy", self.min_dose_gy, 0.1, self.reference_dose_gy)
        check_range("max_dose_gy", self.max_dose_gy, self.reference_dose_gy, 20.0)
        check_range("step_gy", self.step_gy, 0.01, 5.0)
        lo, hi = self.total_dose_bounds_gy
        total = self.n_fractions * self.reference_dose_gy
        if not lo - 1e-9 <= total <= hi + 1e-9:
            raise ValueError(
                f"total_dose_bounds_gy = ({lo:g}, {hi:g}) must contain the reference total "
                f"{total:g} Gy"
            )
        return self


@dataclass(frozen=True)
class RewardWeights:
    """Reward (15): λ1 BED^T − λ2 (BED^T_Ref − BED^T)⁺ − λ3 (SF·SF^Ref − ε)⁺ − λ4 (OAR excess)⁺,
    the OAR excess being BED^φ − BED^φ_Ref − tol |BED^φ_Ref|.

    All BEDs are cumulative after k fractions and compared with the equal-dose reference plan on
    the same biology after k fractions; SF·SF^Ref is the final surviving fraction projected by
    finishing the course with the reference plan (:func:`~engine.planner.model.
    reference_continuation`). Units: λ1, λ2, λ4 per Gy of BED, λ3 per unit of SF, so a reward is
    in "Gy of tumour BED".
    """

    lambda_tumour: float = 1.0
    """λ1, weight of the cumulative tumour BED. Accepted 0–100."""
    lambda_tumour_shortfall: float = 2.0
    """λ2, penalty per Gy of tumour BED below the reference. Accepted 0–1000."""
    lambda_sf: float = 1000.0
    """λ3, penalty per unit of projected surviving fraction above ε. Accepted 0–1e9."""
    lambda_oar: float = 4.0
    """λ4, penalty per Gy of OAR BED above the reference plus the tolerance. Accepted 0–1000."""
    sf_target: float = 1e-4
    """ε, the surviving-fraction cap (0.01 %). Accepted 1e-12–1."""
    oar_tolerance: float = 0.005
    """Allowed OAR BED increase over the reference before λ4 applies, relative to the
    reference's magnitude (+0.5 %). Accepted 0–0.5."""
    oar_two_sided: bool = False
    """When True the OAR term is λ4 (BED^φ − BED^φ_Ref) without the hinge, so sparing below the
    reference is rewarded (the "OAR sparing" preference of the paper's Table 7)."""
    mode: Literal["terminal", "cumulative"] = "terminal"
    """"terminal": the step reward is the change of (15) over the fraction, so a course's return
    is (15) at the end of the course (the clinical goal). "cumulative": each step pays (15) on
    the cumulative quantities, as printed, so the return Σ_k (15)_k weights fraction k's BED
    N − k + 1 times and favours early dose for its own sake."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> RewardWeights:
        """Check every field (done at construction); returns self."""
        check_range("lambda_tumour", self.lambda_tumour, 0.0, 100.0)
        check_range("lambda_tumour_shortfall", self.lambda_tumour_shortfall, 0.0, 1000.0)
        check_range("lambda_sf", self.lambda_sf, 0.0, 1e9)
        check_range("lambda_oar", self.lambda_oar, 0.0, 1000.0)
        check_range("sf_target", self.sf_target, 1e-12, 1.0)
        check_range("oar_tolerance", self.oar_tolerance, 0.0, 0.5)
        check_choice("mode", self.mode, REWARD_MODES)
        return self


def preference_weights(priority: str, base: RewardWeights | None = None) -> RewardWeights:
    """Reward weights for a planner preference.

    "tumour": raise tumour BED while keeping OAR BED within +0.5 % of the reference (defaults).
    "oar_sparing": keep tumour BED at the reference (λ2 = 10) and reward every Gy of OAR BED
    spared (two-sided λ4 = 2, λ1 = 0.5), like the paper's second decision maker (Table 7).
    """
    check_choice("priority", priority, PRIORITIES)
    base = base or RewardWeights()
    if priority == "oar_sparing":
        return replace(base, lambda_tumour=0.5, lambda_tumour_shortfall=10.0, lambda_oar=2.0,
                       oar_tolerance=0.0, oar_two_sided=True)
    return base


@dataclass(frozen=True)
class DQNConfig:
    """Double-DQN training (Algorithm 1) over vectorised episodes."""

    n_episodes: int = 600
    """Training episodes; each runs ``n_envs`` sampled biologies through a whole course in
    lock-step (so scenario-courses = n_episodes × n_envs). Accepted 1–100000."""
    n_envs: int = 32
    """Parallel scenarios per episode (biology re-sampled every episode). Accepted 1–4096."""
    scenarios_per_env: int = 16
    """Biologies each parallel environment runs under one shared action (the paper's "tumour
    volume cases" per step): its reward is their mean and its observation the mean of their
    observations, which cuts the biology noise of the TD targets by √K. Evaluation runs the
    trained policy on every scenario alone. Accepted 1–256."""
    hidden: int = 128
    """Width of the two hidden layers of the Q-network. Accepted 4–1024."""
    learning_rate: float = 1e-3
    """Adam learning rate. Accepted 1e-6–1."""
    learning_rate_final_fraction: float = 0.05
    """The learning rate anneals (cosine, per episode) to this share of ``learning_rate`` by the
    last episode, so the Q-values average out the biology noise at the end. Accepted 0–1."""
    discount: float = 1.0
    """γ_RL of the TD target; 1 because the course is a finite horizon and fraction progress is
    in the state. Accepted 0–1."""
    n_step: int = 1
    """Decisions of reward summed before bootstrapping (n-step TD target r_t + … +
    γ^{n−1} r_{t+n−1} + γ^n Q(s_{t+n}, ·)). 1 is plain Double DQN; with per-fraction decisions 5
    (one week) lets the course end's value reach the first fraction in 7 hops instead of 35.
    Accepted 1–60."""
    batch_size: int = 256
    """Minibatch size. Accepted 1–65536."""
    buffer_size: int = 200_000
    """Replay memory capacity N_D, transitions. Accepted 100–10⁷."""
    updates_per_step: int = 2
    """Gradient steps per vectorised environment step. Accepted 1–16."""
    learning_starts: int = 500
    """Transitions stored before learning starts. Accepted 0–10⁷."""
    target_update_steps: int = 50
    """Hard copy of the online weights into the target network every this many gradient steps
    (Algorithm 1's τ). Accepted 1–10⁶."""
    epsilon_start: float = 1.0
    """ε at the first episode. Accepted 0–1."""
    epsilon_end: float = 0.02
    """ε after the decay. Accepted 0–1."""
    epsilon_decay_fraction: float = 0.6
    """Share of the episodes over which ε decays linearly. Accepted 0.01–1."""
    max_grad_norm: float = 10.0
    """Gradient clipping (global norm). Accepted 0.01–1000."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> DQNConfig:
        """Check every field (done at construction); returns self."""
        check_range("n_episodes", self.n_episodes, 1, 100_000, integer=True)
        check_range("n_envs", self.n_envs, 1, 4096, integer=True)
        check_range("scenarios_per_env", self.scenarios_per_env, 1, 256, integer=True)
        check_range("hidden", self.hidden, 4, 1024, integer=True)
        check_range("learning_rate", self.learning_rate, 1e-6, 1.0)
        check_range("learning_rate_final_fraction", self.learning_rate_final_fraction, 0.0, 1.0)
        check_range("discount", self.discount, 0.0, 1.0)
        check_range("n_step", self.n_step, 1, 60, integer=True)
        check_range("batch_size", self.batch_size, 1, 65536, integer=True)
        check_range("buffer_size", self.buffer_size, 100, 10**7, integer=True)
        check_range("updates_per_step", self.updates_per_step, 1, 16, integer=True)
        check_range("learning_starts", self.learning_starts, 0, 10**7, integer=True)
        check_range("target_update_steps", self.target_update_steps, 1, 10**6, integer=True)
        check_range("epsilon_start", self.epsilon_start, 0.0, 1.0)
        check_range("epsilon_end", self.epsilon_end, 0.0, 1.0)
        check_range("epsilon_decay_fraction", self.epsilon_decay_fraction, 0.01, 1.0)
        check_range("max_grad_norm", self.max_grad_norm, 0.01, 1000.0)
        return self


@dataclass(frozen=True)
class PlanConfig:
    """Everything one planning run needs; ``artds plan`` and the app build one of these."""

    biology: BiologyRanges = field(default_factory=BiologyRanges)
    """Uncertain tumour biology."""
    oar: OarBiology = field(default_factory=OarBiology)
    """OAR parameters, including the sparing factor γ (0.7 or 0.4 in the paper)."""
    course: CourseConfig = field(default_factory=CourseConfig)
    """Fractions, weekends, actions, total-dose bounds."""
    reward: RewardWeights = field(default_factory=RewardWeights)
    """Reward (15) weights and mode."""
    dqn: DQNConfig = field(default_factory=DQNConfig)
    """Double-DQN training budget and hyper-parameters."""
    priority: str = "tumour"
    """Planner preference the reward weights came from ("tumour" or "oar_sparing"); a label."""
    n_eval_scenarios: int = 500
    """Scenarios of the evaluation (and of the exact oracle). Accepted 10–20000."""
    adaptation_threshold_gy: float = 0.03
    """A week is an adaptation point when its expected dose differs from the running ART dose
    by at least this, Gy. Accepted 0–1."""
    seed: int = 0
    """Seed of training (torch and numpy); evaluation scenarios use ``seed + 1``."""
    beamlet: bool = True
    """Also optimise beamlet weights on the 2-D phantom (reference vs ART)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> PlanConfig:
        """Check every field, the parts included (done at construction); returns self."""
        self.biology.validate()
        self.course.validate()
        self.reward.validate()
        self.dqn.validate()
        check_range("oar.sparing_gamma", self.oar.sparing_gamma, 0.0, 1.0, lo_open=True)
        check_range("oar.alpha_per_gy", self.oar.alpha_per_gy, 0.01, 1.0)
        check_range("oar.alpha_beta_gy", self.oar.alpha_beta_gy, 0.5, 30.0)
        check_choice("priority", self.priority, PRIORITIES)
        check_range("n_eval_scenarios", self.n_eval_scenarios, 10, 20_000, integer=True)
        check_range("adaptation_threshold_gy", self.adaptation_threshold_gy, 0.0, 1.0)
        check_range("seed", self.seed, 0, integer=True)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (tuples as lists)."""
        return asdict(self)


def config_from_dict(data: dict[str, Any]) -> PlanConfig:
    """Inverse of :meth:`PlanConfig.to_dict` (used to ship a config to a worker process)."""
    parts = {
        "biology": BiologyRanges, "oar": OarBiology, "course": CourseConfig,
        "reward": RewardWeights, "dqn": DQNConfig,
    }
    kwargs: dict[str, Any] = {}
    for f in fields(PlanConfig):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name in parts:
            cls = parts[f.name]
            value = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
        kwargs[f.name] = value
    return PlanConfig(**kwargs)
