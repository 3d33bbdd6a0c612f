"""The fractionation environment: one course of N fractions over sampled biologies, reward (15).

A *course state* holds, for every (plan, scenario) pair of a broadcast batch, the tumour
compartments, the cumulative tumour and OAR BED, the physical dose so far and the current value
of reward (15). :func:`course_step` advances it by one fraction; the same function drives the
vectorised RL environment (:class:`FractionationEnv`, one scenario per parallel env), the scoring
of fixed plans (:func:`plan_returns`) and the exact oracle, so all three agree to the last bit.

Reward (15), with every quantity cumulative after k fractions and compared with the equal-dose
reference plan on the same biology after k fractions (``Ref``)::

    J_k = λ1 BED^T_k − λ2 (BED^T_Ref,k − BED^T_k)⁺ − λ3 (SF_k SF^Ref_{N−k} − ε)⁺
          − λ4 (BED^φ_k − BED^φ_Ref,k − tol |BED^φ_Ref,k|)⁺

(two-sided OAR term ``λ4 (BED^φ_k − BED^φ_Ref,k)`` for the OAR-sparing preference). In
"terminal" mode the step reward is J_k − J_{k−1}, so a course's return is J_N − J_0 (J_0 is the
same for every plan); in "cumulative" mode it is J_k, as printed, and the return is Σ_k J_k.

The agent observes what a clinic could know during the course, never the sampled biology:
fraction progress, the weekday (a weekend follows Friday's fraction), the physical dose and the
OAR BED delivered relative to the reference, the tumour BED relative to the reference and the
tumour volume (weekly imaging) and the projected surviving fraction of the scenario. Actions
are indices into the action set (Algorithm 2); those that would make the total-dose bounds
unreachable are masked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from engine.planner.config import BiologyRanges, PlanConfig, RewardWeights
from engine.planner.model import (
    OarBiology,
    TumourBiology,
    TumourState,
    oar_bed_increment_gy,
    reference_continuation,
    treatment_gaps_days,
    tumour_bed_increment_gy,
    tumour_step,
)

__all__ = [
    "N_OBS",
    "CourseState",
    "FractionationEnv",
    "PlanOutcome",
    "ScenarioSet",
    "action_mask",
    "course_start",
    "course_step",
    "objective",
    "observe",
    "plan_returns",
    "prepare_scenarios",
    "sample_biology",
]

N_OBS = 8
"""Length of an observation vector (see :func:`observe`)."""


def sample_biology(ranges: BiologyRanges, n: int, rng: np.random.Generator) -> TumourBiology:
    """``n`` scenarios drawn uniformly from ``ranges`` (α fixed when the patient's α is given).

    Draw order is fixed (α, α/β, τ_g, τ_d), so a seed gives the same scenarios whether or not
    the patient's α replaces the drawn one.
    """
    alpha = rng.uniform(*ranges.alpha_per_gy, n)
    ab = rng.uniform(*ranges.alpha_beta_gy, n)
    tau_g = rng.uniform(*ranges.tau_g_days, n)
    tau_d = rng.uniform(*ranges.tau_d_days, n)
    if ranges.patient_alpha_per_gy is not None:
        alpha = np.full(n, float(ranges.patient_alpha_per_gy))
    return TumourBiology(alpha_per_gy=alpha, alpha_beta_gy=ab, tau_g_days=tau_g,
                         tau_d_days=tau_d, oer=np.full(n, ranges.oer),
                         rho=np.full(n, ranges.rho))


def objective(bed_t: np.ndarray, ref_bed_t: np.ndarray, sf_projected: np.ndarray,
              oar_bed: np.ndarray, ref_oar_bed: np.ndarray, w: RewardWeights) -> np.ndarray:
    """J_k of reward (15) (module docstring), in Gy of tumour BED; arrays broadcast."""
    shortfall = np.maximum(ref_bed_t - bed_t, 0.0)
    sf_excess = np.maximum(sf_projected - w.sf_target, 0.0)
    if w.oar_two_sided:
        oar_term = oar_bed - ref_oar_bed
    else:
        # Tolerance relative to |reference|: with a small γ the time terms of (18) can make
        # the reference OAR BED negative, and (1 + tol)·ref would then tighten the limit.
        oar_term = np.maximum(oar_bed - ref_oar_bed - w.oar_tolerance * np.abs(ref_oar_bed),
                              0.0)
    return (w.lambda_tumour * bed_t - w.lambda_tumour_shortfall * shortfall
            - w.lambda_sf * sf_excess - w.lambda_oar * oar_term)


@dataclass(frozen=True)
class ScenarioSet:
    """Sampled biologies with everything the reward needs from the reference plan on them."""

    bio: TumourBiology
    """Tumour biology, arrays [S]."""
    oar: OarBiology
    """OAR parameters."""
    gaps_days: np.ndarray
    """Days after each fraction, [N] (last 0)."""
    reference_doses_gy: np.ndarray
    """The equal-dose reference plan, [N]."""
    continuation: np.ndarray
    """[S, N + 1, 2]: final SF from (u_k, m_k) when finishing with the reference plan."""
    ref_bed_t: np.ndarray
    """Reference cumulative tumour BED, Gy, [S, N + 1]."""
    ref_oar_bed: np.ndarray
    """Reference cumulative OAR BED, Gy, [N + 1] (biology-independent)."""
    ref_rewards: np.ndarray
    """Step rewards of the reference plan, [S, N]."""
    objective_0: np.ndarray
    """J_0 (before any fraction), [S]; the same for every plan."""

    @property
    def n_scenarios(self) -> int:
        return int(self.ref_bed_t.shape[0])

    @property
    def n_fractions(self) -> int:
        return int(self.gaps_days.shape[0])


@dataclass(frozen=True)
class CourseState:
    """The course after ``k`` fractions for a broadcast batch ``[..., S]`` of plan × scenario."""

    k: int
    """Fractions delivered."""
    tumour: TumourState
    """Compartments (u, w, m)."""
    bed_t: np.ndarray
    """Cumulative tumour BED, Gy."""
    oar_bed: np.ndarray
    """Cumulative OAR BED, Gy."""
    dose_gy: np.ndarray
    """Cumulative physical dose, Gy."""
    objective: np.ndarray
    """J_k of reward (15)."""


def _sf_projected(cs: CourseState, scen: ScenarioSet) -> np.ndarray:
    """SF_k · SF^Ref_{N−k}: the final SF if the rest of the course follows the reference."""
    g = scen.continuation[:, cs.k, :]  # [S, 2]
    return g[:, 0] * cs.tumour.viable + g[:, 1] * cs.tumour.doomed


def course_start(scen: ScenarioSet, batch_shape: tuple[int, ...] = ()) -> CourseState:
    """The state before fraction 1 for a batch ``[*batch_shape, S]``."""
    shape = (*batch_shape, scen.n_scenarios)
    zeros = np.zeros(shape)
    return CourseState(
        k=0, tumour=TumourState(np.ones(shape), zeros, zeros), bed_t=zeros, oar_bed=zeros,
        dose_gy=zeros, objective=np.broadcast_to(scen.objective_0, shape).copy(),
    )


def course_step(cs: CourseState, dose_gy: np.ndarray | float, scen: ScenarioSet,
                weights: RewardWeights) -> tuple[CourseState, np.ndarray]:
    """Deliver fraction ``cs.k + 1`` with ``dose_gy`` (broadcast against the batch).

    Returns:
        (next state, step reward of the batch shape; see the module docstring).
    """
    k = cs.k
    if k >= scen.n_fractions:
        raise ValueError(f"the course has {scen.n_fractions} fractions; all are delivered")
    dose = np.asarray(dose_gy, dtype=np.float64)
    gap = scen.gaps_days[k]
    bed_t = cs.bed_t + tumour_bed_increment_gy(cs.tumour, dose, gap, scen.bio)
    oar_bed = cs.oar_bed + oar_bed_increment_gy(dose, gap, scen.oar)
    tumour = tumour_step(cs.tumour, dose, gap, scen.bio)
    nxt = CourseState(k=k + 1, tumour=tumour, bed_t=bed_t, oar_bed=oar_bed,
                      dose_gy=cs.dose_gy + dose, objective=cs.objective)
    j = objective(bed_t, scen.ref_bed_t[:, k + 1], _sf_projected(nxt, scen), oar_bed,
                  scen.ref_oar_bed[k + 1], weights)
    reward = j - cs.objective if weights.mode == "terminal" else j
    return replace(nxt, objective=j), reward


def prepare_scenarios(bio: TumourBiology, cfg: PlanConfig) -> ScenarioSet:
    """Precompute the reference plan's course on ``bio`` (arrays [S])."""
    n = cfg.course.n_fractions
    gaps = treatment_gaps_days(n, cfg.course.fractions_per_week)
    ref = np.full(n, cfg.course.reference_dose_gy)
    s = bio.n_scenarios
    g = reference_continuation(ref, bio, gaps)
    # Reference pass: its own J_k compares it with itself (no shortfall, no OAR excess).
    state = TumourState.initial((s,))
    bed_t = np.zeros((s, n + 1))
    oar = np.zeros(n + 1)
    for k in range(n):
        bed_t[:, k + 1] = bed_t[:, k] + tumour_bed_increment_gy(state, ref[k], gaps[k], bio)
        oar[k + 1] = oar[k] + oar_bed_increment_gy(ref[k], gaps[k], cfg.oar)
        state = tumour_step(state, ref[k], gaps[k], bio)
    partial = ScenarioSet(bio=bio, oar=cfg.oar, gaps_days=gaps, reference_doses_gy=ref,
                          continuation=g, ref_bed_t=bed_t, ref_oar_bed=oar,
                          ref_rewards=np.zeros((s, n)), objective_0=np.zeros(s))
    j0 = objective(np.zeros(s), np.zeros(s), g[:, 0, 0], np.zeros(s), np.zeros(s), cfg.reward)
    partial = replace(partial, objective_0=j0)
    cs = course_start(partial)
    rewards = np.zeros((s, n))
    for k in range(n):
        cs, rewards[:, k] = course_step(cs, ref[k], partial, cfg.reward)
    return replace(partial, ref_rewards=rewards)


@dataclass(frozen=True)
class PlanOutcome:
    """A fixed plan scored on a scenario set (arrays ``[*P, S]``)."""

    returns: np.ndarray
    """Course return under reward (15)."""
    tumour_bed_gy: np.ndarray
    """Final cumulative tumour BED, Gy."""
    oar_bed_gy: np.ndarray
    """Final cumulative OAR BED, Gy."""
    surviving_fraction: np.ndarray
    """Final clonogenic surviving fraction (u + m)."""
    weekly_volume: np.ndarray
    """Tumour volume v/v0 at the start of each week and at the end, [*P, S, n_weeks + 1]."""


def plan_returns(doses_gy: np.ndarray, scen: ScenarioSet, cfg: PlanConfig) -> PlanOutcome:
    """Score fixed plans ``doses_gy`` ([N] or [P, N], Gy) on every scenario."""
    doses = np.asarray(doses_gy, dtype=np.float64)
    batch = doses.shape[:-1]
    cs = course_start(scen, batch)
    ret = np.zeros_like(cs.bed_t)
    fpw = cfg.course.fractions_per_week
    volumes = []
    for k in range(scen.n_fractions):
        if k % fpw == 0:
            volumes.append(cs.tumour.volume)
        cs, r = course_step(cs, doses[..., k, None], scen, cfg.reward)
        ret = ret + r
    volumes.append(cs.tumour.volume)
    return PlanOutcome(returns=ret, tumour_bed_gy=cs.bed_t, oar_bed_gy=cs.oar_bed,
                       surviving_fraction=cs.tumour.surviving_fraction,
                       weekly_volume=np.stack(volumes, -1))


def action_mask(dose_so_far_gy: np.ndarray, k: int, cfg: PlanConfig, block: int = 1
                ) -> np.ndarray:
    """Allowed actions for fractions ``k + 1 … k + block`` (one dose held for ``block``
    fractions): the total-dose bounds stay reachable afterwards.

    Returns a boolean array ``[*batch, A]``.
    """
    acts = np.asarray(cfg.course.actions_gy)
    lo, hi = cfg.course.total_dose_bounds_gy
    left = cfg.course.n_fractions - k - block
    total = np.asarray(dose_so_far_gy)[..., None] + block * acts
    eps = 1e-9
    return (total + left * acts[0] <= hi + eps) & (total + left * acts[-1] >= lo - eps)


def observe(cs: CourseState, scen: ScenarioSet, cfg: PlanConfig) -> np.ndarray:
    """Observation vectors ``[*batch, N_OBS]`` (float32) before fraction ``cs.k + 1``.

    Features: fraction progress k/N; weekday of the next fraction (0 Monday … 1 Friday); 1 when
    a weekend follows it; physical dose above the reference so far in units of one week at +Δ;
    OAR BED above the reference so far (Gy / 0.25, about one fraction at +Δ); tumour BED above
    the reference so far (Gy); log10 tumour volume / 4; log10 projected SF / 10.
    """
    c = cfg.course
    k, n = cs.k, scen.n_fractions
    shape = cs.bed_t.shape
    fpw = c.fractions_per_week
    gap_next = scen.gaps_days[k] if k < n else 0.0
    feats = [
        np.full(shape, k / n),
        np.full(shape, (k % fpw) / max(fpw - 1, 1)),
        np.full(shape, 1.0 if gap_next > 1.5 else 0.0),
        (cs.dose_gy - k * c.reference_dose_gy) / (fpw * c.step_gy),
        (cs.oar_bed - scen.ref_oar_bed[k]) / 0.25,
        (cs.bed_t - scen.ref_bed_t[:, k]),
        np.log10(np.maximum(cs.tumour.volume, 1e-12)) / 4.0,
        np.log10(np.maximum(_sf_projected(cs, scen), 1e-30)) / 10.0,
    ]
    return np.stack(feats, -1).astype(np.float32)


class FractionationEnv:
    """Vectorised environment: ``n_envs`` scenarios step through one course in lock-step.

    ``reset(bio)`` starts a course on the given biologies (sample them with
    :func:`sample_biology` for robust training: a new draw every episode), ``step(actions)``
    delivers the next ``cfg.course.fractions_per_decision`` fractions (one week, or one
    fraction) to each scenario at the chosen dose, actions being indices into
    ``cfg.course.actions_gy``; the step's rewards are summed over those fractions.
    Rewards returned by :meth:`step` are reward (15) (``raw``) and the same minus the reference
    plan's reward on the scenario (``relative``, what the agent learns from: it removes the
    scenario-to-scenario spread of BED that no action can change, without changing which plan
    is best).
    """

    def __init__(self, cfg: PlanConfig, group_size: int = 1) -> None:
        self.cfg = cfg
        self.group_size = int(group_size)
        self.actions_gy = np.asarray(cfg.course.actions_gy)
        self.scen: ScenarioSet | None = None
        self.state: CourseState | None = None

    @property
    def n_actions(self) -> int:
        return len(self.actions_gy)

    def reset(self, bio: TumourBiology) -> tuple[np.ndarray, np.ndarray]:
        """Start a course on ``bio`` ([E × group_size] scenarios, consecutive ones forming an
        environment); returns (observations [E, N_OBS], action masks [E, A])."""
        if bio.n_scenarios % self.group_size:
            raise ValueError(
                f"{bio.n_scenarios} scenarios do not split into groups of {self.group_size}"
            )
        self.scen = prepare_scenarios(bio, self.cfg)
        self.state = course_start(self.scen)
        return self._observe(), self.mask()

    def _observe(self) -> np.ndarray:
        assert self.state is not None and self.scen is not None
        return self._group_mean(observe(self.state, self.scen, self.cfg))

    def _group_mean(self, x: np.ndarray) -> np.ndarray:
        """Mean over each environment's scenarios (axis 0 grouped by ``group_size``)."""
        if self.group_size == 1:
            return x
        return x.reshape(-1, self.group_size, *x.shape[1:]).mean(axis=1).astype(x.dtype)

    @property
    def block(self) -> int:
        """Fractions per decision."""
        return self.cfg.course.fractions_per_decision

    def mask(self) -> np.ndarray:
        """Allowed actions of the next decision, bool [S, A] (all True once the course ends)."""
        assert self.state is not None
        # Every scenario of an environment got the same doses: take the first one's dose.
        dose = self.state.dose_gy[:: self.group_size]
        if self.state.k >= self.cfg.course.n_fractions:
            return np.ones((*dose.shape, self.n_actions), dtype=bool)
        return action_mask(dose, self.state.k, self.cfg, self.block)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool,
                                                  np.ndarray]:
        """Deliver the next decision's fractions.

        Args:
            actions: action indices, int [E]; must be allowed by the current mask.

        Returns:
            (next observations [E, N_OBS], raw rewards [E], relative rewards [E], done,
            next masks [E, A]); rewards are means over each environment's scenarios.
        """
        assert self.state is not None and self.scen is not None
        actions = np.asarray(actions)
        allowed = self.mask()[np.arange(actions.shape[0]), actions]
        if not allowed.all():
            raise ValueError("an action outside the mask (total-dose bounds) was chosen")
        dose = np.repeat(self.actions_gy[actions], self.group_size)
        raw = np.zeros(dose.shape[0])
        rel = np.zeros(dose.shape[0])
        for _ in range(self.block):
            k = self.state.k
            self.state, r = course_step(self.state, dose, self.scen, self.cfg.reward)
            raw += r
            rel += r - self.scen.ref_rewards[:, k]
        done = self.state.k >= self.cfg.course.n_fractions
        return (self._observe(), self._group_mean(raw), self._group_mean(rel), done,
                self.mask())
