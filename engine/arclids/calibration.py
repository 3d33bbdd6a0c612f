"""Calibrated probabilities and intervals that state their level, for the outcome ensembles.

Two steps, each fitted without touching the fresh evaluation cohort
(:data:`engine.arclids.rtoe_eval.EVAL_COHORT_SEED`):

1. **Recalibration of the probability** (:func:`fit_platt`, :func:`choose_recalibration`). The
   members are trained as the paper trains them (the minority class oversampled to 50/50, GLoGD,
   ensembles), so their raw probabilities may estimate the *balanced* event rate: NSCLC RP2 came
   out at 0.50 against a true 0.24. Three maps are candidates (:data:`RECALIBRATION_METHODS`):
   ``"none"`` (the members as trained); ``"platt"``, a logistic recalibration
   p = σ(a + b·logit(p_raw)) (Platt scaling); and ``"platt-reference-dose"``, the same fitted to
   the patient's level at a reference dose with the member's own dose response kept
   (:meth:`OutcomeCalibration.apply`). Both Platt maps are fitted on the members' **out-of-bag**
   predictions: every member is trained on a bootstrap resample of the patients, so each
   training case has predictions from members that never saw it; the fit uses only the training
   trial's observed outcomes. The slope is kept ≥ :data:`MIN_SLOPE` > 0, so a monotone member
   (GLoGD) stays monotone in dose under every candidate. Because each patient's outcome is seen
   at one dose, chosen by clinicians who escalate for poor responders, out-of-bag outcomes cannot
   tell which map is right across the dose grid: a Platt fit that finds no out-of-bag patient
   signal flattens the level and can leave the curves further from the truth than the raw
   members (NSCLC GLoGD TCP: mean squared error against the truth over the grid 0.061 after it,
   0.022 raw, 0.058 for a constant). So the map is **chosen** by its mean squared error against
   the true probabilities over every (patient, dose) point of the calibration cohort below —
   never the evaluation cohort — and the scores of all three are recorded with the choice.
   Without a calibration cohort the reference-dose map is used (the earlier default).
2. **An interval with a stated level** (:func:`fit_conformal`). The members' spread measures
   only what resampling 67 patients changes; it covered the truth at 2–36 % of (patient, dose)
   points where 80 % was meant. The interval is a normalised split-conformal interval
   (``crepes``, a maintained conformal library): mean ± q̂·(sd + :data:`SIGMA_FLOOR`), with q̂ the
   level-quantile of |p_true − mean| / (sd + floor) on a *calibration* virtual cohort
   (:data:`CALIBRATION_COHORT_SEED`, its own seed) whose true probabilities the virtual trial
   knows. Its coverage on any further cohort drawn from the same trial holds by exchangeability;
   for a clinic's real patients it holds only as far as the virtual trial resembles them, which
   the model card says.

For the decisions that compare two doses (the physician's proposal against the recommendation,
:func:`interval_draws`), the calibrated members are widened to the interval: draws
mean + (interval half-width / z)·ε with one ε per draw shared along the dose grid (a curve that
is wrong is wrong at neighbouring doses too) and independent between TCP and NTCP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from crepes import ConformalRegressor
from scipy.optimize import minimize
from scipy.special import expit, logit
from scipy.stats import norm

from engine.core.config import DictConfig, check_choice, check_range

__all__ = [
    "CALIBRATION_COHORT_SEED",
    "CALIBRATION_COHORT_SIZE",
    "CALIBRATION_RECIPE",
    "DEFAULT_INTERVAL_LEVEL",
    "IDENTITY",
    "MIN_SLOPE",
    "RECALIBRATION_METHODS",
    "SIGMA_FLOOR",
    "AdviceCalibration",
    "OutcomeCalibration",
    "choose_recalibration",
    "fit_advice_calibration",
    "fit_calibration",
    "fit_conformal",
    "fit_platt",
    "interval_draws",
    "recalibration_words",
    "reference_index",
]

CALIBRATION_COHORT_SEED = 80_001
"""Seed of the virtual cohort the intervals are calibrated on (neither trained nor evaluated on)."""
CALIBRATION_COHORT_SIZE = 1_000
"""Patients in the calibration cohort."""
DEFAULT_INTERVAL_LEVEL = 0.8
"""Level of the interval shown with every probability (80 %)."""
MIN_SLOPE = 0.01
"""Smallest recalibration slope b: keeps every recalibrated member strictly increasing in its raw
probability (and so GLoGD monotone in dose)."""
SIGMA_FLOOR = 0.01
"""Added to the members' sd before normalising (probability units): members that agree exactly
still get an interval."""
_EPS = 1e-7
CALIBRATION_RECIPE = "map-chosen-on-calibration-cohort+conformal"
"""Recorded in a calibration artifact's config: how its maps and intervals were fitted."""
RECALIBRATION_METHODS = ("platt-reference-dose", "platt", "none")
"""Candidate maps from the members' raw probabilities to the served ones, in the order that
breaks ties (the first is the default without a calibration cohort)."""


def _logit(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS))


@dataclass(frozen=True)
class OutcomeCalibration(DictConfig):
    """The fitted recalibration and interval of one outcome of an ensemble."""

    intercept: float = 0.0
    """Platt intercept a (logit units)."""
    slope: float = 1.0
    """Platt slope b ≥ MIN_SLOPE (dimensionless); 1 and intercept 0 leave probabilities as they
    are."""
    interval_level: float | None = None
    """Level of the interval in (0, 1), e.g. 0.8; None: no calibrated interval (the members'
    min–max is shown, labelled as such)."""
    conformal_quantile: float | None = None
    """q̂: the interval is mean ± q̂·(sd + sigma_floor); None without an interval."""
    sigma_floor: float = SIGMA_FLOOR
    """Probability units added to the members' sd before scaling."""
    n_oob_pairs: int = 0
    """(member, case) out-of-bag pairs the Platt fit used (0: not fitted)."""
    n_calibration_points: int = 0
    """(patient, dose) points of the calibration cohort behind q̂."""
    reference_dose_gy: float | None = None
    """Adaptive dose per fraction (Gy, a grid dose) at which the patient effect is recalibrated;
    the member's own change of logit from there to any other dose is kept as trained
    (:meth:`apply`). None: the whole logit is rescaled (plain Platt)."""
    method: str = ""
    """Which of :data:`RECALIBRATION_METHODS` the intercept, slope and reference dose implement;
    "" for calibrations saved before the choice existed (they are read by their numbers)."""
    candidate_mse: dict[str, float] | None = None
    """Mean squared error against the truth over the calibration cohort's (patient, dose) points
    of each candidate map (probability² units), by method; None when no cohort chose."""

    def __post_init__(self) -> None:
        check_range("OutcomeCalibration.slope", self.slope, MIN_SLOPE)
        if self.interval_level is not None:
            check_range("OutcomeCalibration.interval_level", self.interval_level, 0.0, 1.0,
                        lo_open=True, hi_open=True)
        if self.conformal_quantile is not None:
            check_range("OutcomeCalibration.conformal_quantile", self.conformal_quantile, 0.0)
        check_range("OutcomeCalibration.sigma_floor", self.sigma_floor, 0.0)
        if self.method:
            check_choice("OutcomeCalibration.method", self.method, RECALIBRATION_METHODS)

    @property
    def is_identity(self) -> bool:
        """True when :meth:`apply` leaves the members' probabilities as trained."""
        return self.intercept == 0.0 and self.slope == 1.0

    def apply(self, p_raw: np.ndarray, p_ref: np.ndarray | None = None) -> np.ndarray:
        """Recalibrated probabilities, same shape as ``p_raw`` (float64, increasing in p_raw).

        With a reference dose, ``p_ref`` holds the raw probability of the same member and case at
        ``reference_dose_gy`` (broadcastable to ``p_raw``, e.g. [..., 1] against [..., D]):
        p = σ(a + b·ℓ_ref + (ℓ − ℓ_ref)), ℓ = logit p_raw. Only the patient's level is shrunk;
        the dose response (ℓ − ℓ_ref) is the member's, which the out-of-bag outcomes — observed
        at each patient's one received dose — cannot recalibrate. Monotone in dose wherever the
        member is (GLoGD).
        """
        if self.is_identity:
            return np.asarray(p_raw, dtype=np.float64)
        z = _logit(p_raw)
        if self.reference_dose_gy is None:
            return expit(self.intercept + self.slope * z)
        if p_ref is None:
            raise ValueError("this calibration needs the raw probability at its reference dose "
                             f"{self.reference_dose_gy:g} Gy (p_ref)")
        z_ref = _logit(p_ref)
        return expit(self.intercept + self.slope * z_ref + (z - z_ref))

    def interval(self, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), each [P, D], of recalibrated member probabilities ``members`` [M, P, D].

        The conformal interval clipped to [0, 1] when fitted, else the members' min and max.
        """
        members = np.asarray(members, dtype=np.float64)
        if self.conformal_quantile is None:
            return members.min(axis=0), members.max(axis=0)
        mean = members.mean(axis=0)
        half = self.conformal_quantile * (_sd(members) + self.sigma_floor)
        return np.clip(mean - half, 0.0, 1.0), np.clip(mean + half, 0.0, 1.0)


@dataclass(frozen=True)
class AdviceCalibration(DictConfig):
    """Maps the raw share of plausible models in which a recommendation beats a proposal to the
    probability that it truly does (isotonic, fitted on the calibration cohort's truth)."""

    raw: tuple[float, ...]
    """Knots of the raw share, increasing, in [0, 1]."""
    calibrated: tuple[float, ...]
    """Calibrated probability at each knot, non-decreasing, in [0, 1]."""
    n_pairs: int = 0
    """(patient, proposal ≠ recommendation) pairs behind the fit."""

    def __post_init__(self) -> None:
        if len(self.raw) != len(self.calibrated) or not self.raw:
            raise ValueError("AdviceCalibration.raw and .calibrated need the same positive "
                             f"length, got {len(self.raw)} and {len(self.calibrated)}")

    def apply(self, p_raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, same shape as ``p_raw`` (linear between knots)."""
        return np.interp(np.asarray(p_raw, dtype=np.float64), self.raw, self.calibrated)


def recalibration_words(tcp: OutcomeCalibration, ntcp: OutcomeCalibration) -> str:
    """What a model label says of its recalibration: "recalibrated", "TCP recalibrated",
    "NTCP recalibrated" or "as trained" — never more than the maps do."""
    changed = [key for key, cal in (("TCP", tcp), ("NTCP", ntcp)) if not cal.is_identity]
    if len(changed) == 2:
        return "recalibrated"
    return f"{changed[0]} recalibrated" if changed else "as trained"


def fit_advice_calibration(p_raw: np.ndarray, truly_better: np.ndarray) -> AdviceCalibration:
    """Isotonic regression (scikit-learn) of "the recommendation truly is better" (0/1, [N]) on
    the raw share of plausible models saying so ([N]), as knots for :class:`AdviceCalibration`."""
    from sklearn.isotonic import IsotonicRegression

    p_raw = np.asarray(p_raw, dtype=np.float64)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(p_raw, np.asarray(truly_better, dtype=np.float64))
    return AdviceCalibration(raw=tuple(float(v) for v in iso.X_thresholds_),
                             calibrated=tuple(float(v) for v in iso.y_thresholds_),
                             n_pairs=int(p_raw.size))


IDENTITY = OutcomeCalibration()
"""No recalibration and no calibrated interval (models saved before calibration existed)."""


def _sd(members: np.ndarray) -> np.ndarray:
    if members.shape[0] < 2:
        return np.zeros(members.shape[1:])
    return members.std(axis=0, ddof=1)


def fit_platt(raw: np.ndarray, oob: np.ndarray, y: np.ndarray,
              raw_ref: np.ndarray | None = None) -> tuple[float, float, int]:
    """Platt (a, b) on out-of-bag predictions by maximum likelihood, b ≥ MIN_SLOPE.

    Args:
        raw: raw member probabilities at each training case's received dose, [M, P].
        oob: True where member m did not train on case p, [M, P].
        y: observed outcomes 0/1 of the training cases, [P].
        raw_ref: the same members' raw probabilities at the reference dose, [M, P], or None for
            plain Platt: with it the model is σ(a + b·ℓ_ref + (ℓ − ℓ_ref)), the dose term an
            offset (see :meth:`OutcomeCalibration.apply`).

    Returns:
        (a, b, n_pairs). With no out-of-bag pair, or one class among them, (0, 1, n) — there is
        nothing to fit and the members stay as trained.
    """
    raw, oob = np.asarray(raw, dtype=np.float64), np.asarray(oob, dtype=bool)
    y = np.asarray(y, dtype=np.float64)
    z_all = _logit(raw)
    z_ref = z_all if raw_ref is None else _logit(raw_ref)
    z = z_ref[oob]
    offset = (z_all - z_ref)[oob]
    t = np.broadcast_to(y, raw.shape)[oob]
    if t.size == 0 or t.min() == t.max():
        return 0.0, 1.0, int(t.size)

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        s = theta[0] + theta[1] * z + offset
        resid = expit(s) - t
        return float(np.sum(np.logaddexp(0.0, s) - t * s)), np.array(
            [resid.sum(), (resid * z).sum()])

    result = minimize(nll, np.array([0.0, 1.0]), jac=True, method="L-BFGS-B",
                      bounds=[(None, None), (MIN_SLOPE, None)])
    return float(result.x[0]), float(result.x[1]), int(t.size)


def fit_conformal(members: np.ndarray, truth: np.ndarray, level: float,
                  sigma_floor: float = SIGMA_FLOOR) -> float:
    """q̂ of the normalised split-conformal interval (crepes), from a calibration cohort.

    Args:
        members: recalibrated member probabilities on the calibration cohort, [M, P, D].
        truth: the true probabilities there, [P, D].
        level: interval level in (0, 1).
        sigma_floor: probability units added to the members' sd.

    Returns:
        q̂ ≥ 0 such that mean ± q̂·(sd + floor) holds ``level`` of the calibration points (the
        conformal finite-sample quantile).
    """
    members = np.asarray(members, dtype=np.float64)
    mean = members.mean(axis=0).ravel()
    sigma = (_sd(members) + sigma_floor).ravel()
    residuals = np.asarray(truth, dtype=np.float64).ravel() - mean
    regressor = ConformalRegressor().fit(residuals=residuals, sigmas=sigma)
    # crepes gives mean ± q̂·σ; reading q̂ back from a unit interval keeps its quantile rule.
    lo_hi = regressor.predict_int(np.zeros(1), sigmas=np.ones(1), confidence=level)
    return float(lo_hi[0, 1])


def _reference_slice(calibration: OutcomeCalibration, raw: np.ndarray,
                     index: int | None) -> np.ndarray | None:
    """The raw probabilities at the reference dose, [..., 1], when ``calibration`` needs them."""
    if calibration.reference_dose_gy is None:
        return None
    return raw[..., index : index + 1]


def choose_recalibration(
    candidates: dict[str, OutcomeCalibration],
    raw_calibration: np.ndarray,
    truth_calibration: np.ndarray,
    reference_index: int | None = None,
) -> tuple[str, dict[str, float]]:
    """The candidate map whose ensemble mean is nearest the truth on the calibration cohort.

    Args:
        candidates: maps by method (keys from :data:`RECALIBRATION_METHODS`).
        raw_calibration: raw member probabilities on the calibration cohort's dose grid,
            [M, Pc, D].
        truth_calibration: true probabilities there, [Pc, D].
        reference_index: index of the reference dose in the grid (needed by a reference-dose
            map).

    Returns:
        (chosen method, mean squared error of every candidate in probability² units). Ties go
        to the earlier method of :data:`RECALIBRATION_METHODS`.
    """
    truth = np.asarray(truth_calibration, dtype=np.float64)
    mse = {}
    for method, cal in candidates.items():
        mean = cal.apply(raw_calibration, _reference_slice(cal, raw_calibration,
                                                           reference_index)).mean(axis=0)
        mse[method] = float(np.mean((mean - truth) ** 2))
    # min keeps the first of equal scores, so the order of RECALIBRATION_METHODS breaks ties
    return min((m for m in RECALIBRATION_METHODS if m in mse), key=mse.__getitem__), mse


def fit_calibration(
    raw_train: np.ndarray,
    oob: np.ndarray,
    y: np.ndarray,
    raw_calibration: np.ndarray | None,
    truth_calibration: np.ndarray | None,
    level: float = DEFAULT_INTERVAL_LEVEL,
    *,
    raw_train_ref: np.ndarray | None = None,
    reference_dose_gy: float | None = None,
    reference_index: int | None = None,
    interval: bool = True,
) -> OutcomeCalibration:
    """Both steps for one outcome: the recalibration map, then the conformal q̂.

    The Platt maps are fitted on out-of-bag predictions; with a calibration cohort the map
    (none, Platt, reference-dose Platt) is chosen by :func:`choose_recalibration` and the
    interval fitted for it, without one the reference-dose map (plain Platt without
    ``raw_train_ref``) is returned with no interval.

    Args:
        raw_train: raw member probabilities at the training cases' received doses, [M, P].
        oob: out-of-bag mask, [M, P].
        y: training outcomes, [P].
        raw_calibration: raw member probabilities on the calibration cohort's dose grid
            [M, Pc, D], or None to skip the choice and the interval.
        truth_calibration: true probabilities there, [Pc, D] (None with ``raw_calibration``).
        level: interval level.
        raw_train_ref: raw member probabilities of the training cases at the reference dose,
            [M, P]; None: no reference-dose candidate.
        reference_dose_gy: that dose (Gy), recorded with the calibration.
        reference_index: its index in the dose grid of ``raw_calibration``.
        interval: fit the conformal interval for the chosen map (False: the choice only).
    """
    a, b, n_pairs = fit_platt(raw_train, oob, y)
    candidates = {"platt": OutcomeCalibration(intercept=a, slope=b, n_oob_pairs=n_pairs,
                                              method="platt")}
    if raw_train_ref is not None:
        a, b, n_pairs = fit_platt(raw_train, oob, y, raw_train_ref)
        candidates["platt-reference-dose"] = OutcomeCalibration(
            intercept=a, slope=b, n_oob_pairs=n_pairs, reference_dose_gy=reference_dose_gy,
            method="platt-reference-dose")
    if raw_calibration is None or truth_calibration is None:
        return candidates.get("platt-reference-dose", candidates["platt"])
    candidates["none"] = OutcomeCalibration(method="none")
    chosen, mse = choose_recalibration(candidates, raw_calibration, truth_calibration,
                                       reference_index)
    cal = candidates[chosen]
    if not interval:
        return OutcomeCalibration.from_dict({**cal.to_dict(), "candidate_mse": mse})
    ref = _reference_slice(cal, raw_calibration, reference_index)
    q = fit_conformal(cal.apply(raw_calibration, ref), truth_calibration, level)
    return OutcomeCalibration.from_dict({
        **cal.to_dict(), "interval_level": level, "conformal_quantile": q,
        "n_calibration_points": int(np.asarray(truth_calibration).size), "candidate_mse": mse})


def reference_index(doses_gy: np.ndarray, reference_dose_gy: float) -> int:
    """Index of the reference dose in a dose grid (it must be a grid dose)."""
    hits = np.flatnonzero(np.isclose(np.asarray(doses_gy), reference_dose_gy))
    if not len(hits):
        raise ValueError(f"reference dose {reference_dose_gy:g} Gy is not on the dose grid "
                         f"{np.asarray(doses_gy).min():g}–{np.asarray(doses_gy).max():g} Gy")
    return int(hits[0])


def interval_draws(
    members: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: float | None,
    n_draws: int = 400, seed: int = 0,
) -> np.ndarray:
    """Draws of one outcome's curves whose spread matches the stated interval, [S, P, D].

    mean + ((hi − lo) / 2z)·ε, z the normal quantile of the level, ε ~ N(0, 1) one per draw,
    shared along the dose grid and by every case; clipped to [0, 1]. Sharing ε across cases
    keeps each case's draws (and so its dose interval and P(recommendation better)) the same
    whichever other cases are computed with it; only per-case summaries are taken from them.
    Without a level the members themselves are returned (their spread is all there is).
    """
    members = np.asarray(members, dtype=np.float64)
    if level is None:
        return members
    z = float(norm.ppf(0.5 + level / 2.0))
    mean = members.mean(axis=0)  # [P, D]
    sd = (np.asarray(hi) - np.asarray(lo)) / (2.0 * z)  # [P, D]
    eps = np.random.default_rng(seed).standard_normal((n_draws, 1, 1))
    return np.clip(mean[None] + sd[None] * eps, 0.0, 1.0)
