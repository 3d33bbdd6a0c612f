"""The wording of the numbers a recommendation carries, shared by the app, the HTML report and
the command line: each probability with its interval and the interval's level, the predicted
reward, the best dose's interval, the advice on the physician's proposal, and what the decision
maker's SEM and q-value are (labels that never say more than the numbers mean); and how an
imported plan's dosimetric feature was computed (app and report); and how the recommending
policy did on a fresh virtual cohort beside the simple policies (app and report).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engine.arclids.recommend import Recommendation
from engine.figures.style import fmt_dose

if TYPE_CHECKING:
    from engine.arclids.odm_eval import TrackRecord
    from engine.arclids.rtoe_eval import OutcomeQuality
    from engine.dvh import FeatureValue, PlanImport

__all__ = [
    "DOSE_INTERVAL_MEANING",
    "PREDICTED_REWARD",
    "PROBABILITY_QUALITY_UNKNOWN",
    "SEM_MEANING",
    "TRACK_RECORD_UNKNOWN",
    "advice_text",
    "dose_interval_text",
    "dose_text",
    "has_interval",
    "interval_label",
    "level_label",
    "pct_text",
    "plan_feature_text",
    "probability_quality_text",
    "recommendation_text",
    "reward_text",
    "track_record_caption",
    "track_record_rows",
    "track_record_text",
    "track_record_verdict",
]

PREDICTED_REWARD = "predicted reward (0–3, with goal bonuses)"
"""What a reward or q-value is: a prediction on the 0–3 scale tcp (1 − ntcp) + goal bonus (a
decision maker's q-value can exceed 3); never a confidence."""
SEM_MEANING = "the decision maker's fitting noise, not the outcome models' uncertainty"
"""What the standard error of the decision maker's members' mean dose is."""
DOSE_INTERVAL_MEANING = "from the outcome models' uncertainty"
"""Where the best dose's interval comes from (the spread of the best dose over plausible
outcome models, :func:`engine.arclids.recommend.dose_interval`)."""

_MIN_SPREAD = 1e-6
"""Interval width or sd below this (probability units) is treated as none (one model, or
identical members)."""


def has_interval(rec: Recommendation) -> bool:
    """The case's TCP or NTCP interval has a width somewhere (one model, or members that agree
    without a stated interval, have none)."""
    if rec.tcp_lo is None or rec.tcp_hi is None or rec.ntcp_lo is None or rec.ntcp_hi is None:
        return False
    width = np.concatenate([np.subtract(rec.tcp_hi, rec.tcp_lo),
                            np.subtract(rec.ntcp_hi, rec.ntcp_lo)])
    return bool(np.nanmax(width, initial=0.0) > _MIN_SPREAD)


def dose_text(dose_gy: float) -> str:
    """A dose that may lie between grid doses (an interval's end, a members' mean), to at most
    two decimals: 2.6333 → "2.63", 3.4 → "3.4"."""
    return f"{round(float(dose_gy), 2):g}"


def level_label(level: float) -> str:
    """``0.8`` → ``"80 % interval"``."""
    return f"{100 * level:g} % interval"


def interval_label(rec: Recommendation) -> str | None:
    """How the case's TCP/NTCP interval is named: ``"80 % interval"`` at the level the outcome
    model states, ``"members' min–max"`` for an ensemble that states none, None when there is no
    spread to show (a single model such as the reference truth, or members that agree)."""
    if not has_interval(rec):
        return None
    if rec.interval_level is not None:
        return level_label(rec.interval_level)
    return "members' min–max"


def pct_text(value: float, interval: Sequence[float] | None, label: str | None) -> str:
    """A probability with its interval: ``"71.2 % (80 % interval 60.1–80.3 %)"``, or
    ``"71.2 %"`` without a label or an interval."""
    if label is None or interval is None:
        return f"{100 * value:.1f} %"
    lo, hi = interval
    return f"{100 * value:.1f} % ({label} {100 * lo:.1f}–{100 * hi:.1f} %)"


def reward_text(value: float, interval: Sequence[float] | None, label: str | None) -> str:
    """A predicted reward with its interval: ``"2.60 (80 % interval 1.61–2.70)"``, or
    ``"2.60"`` without a label or an interval."""
    if label is None or interval is None:
        return f"{value:.2f}"
    lo, hi = interval
    return f"{value:.2f} ({label} {lo:.2f}–{hi:.2f})"


def dose_interval_text(rec: Recommendation) -> str | None:
    """The best dose's interval: ``"2.6–3.4 Gy/fx (80 % interval, from the outcome models'
    uncertainty)"``; None when the outcome model has no spread (its best dose is one dose)."""
    if rec.dose_interval_gy is None or interval_label(rec) is None:
        return None
    lo, hi = rec.dose_interval_gy
    level = level_label(rec.interval_level or 0.8)
    return f"{dose_text(lo)}–{dose_text(hi)} Gy/fx ({level}, {DOSE_INTERVAL_MEANING})"


def recommendation_text(rec: Recommendation) -> str:
    """The recommended dose: ``"3.12 Gy/fx"`` from a decision maker (its members' mean dose, or
    the grid dose it serves, to two decimals), ``"3.2 Gy/fx"`` for the exact argmax. The
    decision maker's SEM is not attached: it is its fitting noise (:data:`SEM_MEANING`), not
    the uncertainty of the dose (:func:`dose_interval_text`)."""
    if rec.recommended_dose_sem_gy is None:
        return f"{fmt_dose(rec.recommended_dose_gy)} Gy/fx"
    return f"{rec.recommended_dose_gy:.2f} Gy/fx"


def advice_text(rec: Recommendation) -> str | None:
    """What the comparison with the physician's proposal advises, in one sentence; None without
    a proposal."""
    prop = rec.proposal
    if prop is None:
        return None
    dose = f"{dose_text(prop['dose_gy'])} Gy/fx"
    share = f"{100 * prop['p_recommended_better']:.0f} %"
    needed = f"{100 * prop['threshold']:.0f} %"
    if prop["advice"] == "change":
        return (f"change to the recommendation ({dose_text(prop['advised_dose_gy'])} Gy/fx): the "
                f"probability that its reward is truly higher than at your proposal ({dose}) is "
                f"{share}, at least the {needed} needed to advise a change")
    if np.isclose(prop["dose_gy"], rec.recommended_dose_gy):
        return f"keep your proposal ({dose}): it is the recommended dose"
    return (f"keep your proposal ({dose}): the probability that the recommendation's reward is "
            f"truly higher is only {share}, below the {needed} needed to advise a change")


def plan_feature_text(feature: FeatureValue, plan: PlanImport) -> str:
    """How a plan's feature was computed: ``"gEUD (a = -10) of GTV × 20/30 fractions"``,
    ``"mean dose of Lungs-GTV"`` (no factor when the plan covers the phase), ``"volume of
    GTV"``."""
    if feature.quantity == "volume_cc":
        return f"volume of {feature.structure}"
    kind = "mean dose" if feature.geud_a == 1 else f"gEUD (a = {feature.geud_a:g})"
    scale = (f" × {plan.n_eval_fractions}/{plan.n_plan_fractions} fractions"
             if feature.phase == "evaluation" and feature.scale != 1 else "")
    return f"{kind} of {feature.structure}{scale}"


_TRACK_POLICY = {
    "recommendation": "following the recommendation",
    "advice": "following the advice",
    "clinicians": "the virtual trial's clinicians",
    "constant": "one dose for everyone",
}
"""Plain names of the policies a :class:`engine.arclids.odm_eval.TrackRecord` ranks."""
TRACK_RECORD_UNKNOWN = ("No fresh-cohort evaluation of this outcome model and decision maker is "
                        "saved: how its recommendations compare with the clinicians' rule is not "
                        "known.")
"""What is said where a recommender has no saved fresh-cohort evaluation."""


def track_record_caption(record: TrackRecord) -> str:
    """What the track record's numbers are (the heading of its rows)."""
    return (f"Track record on a fresh virtual cohort ({record.n_cases:,} simulated patients "
            f"never trained on): mean true reward lost against each patient's best dose "
            f"(0–3 scale, lower is better)")


def track_record_rows(record: TrackRecord) -> list[tuple[str, str, bool]]:
    """(policy, its loss to two decimals, whether it did best) per policy: the recommendation,
    the advice (when measured), the clinicians' rule and one dose for everyone, in that order."""
    best = record.ranking()[0][1]
    rows = [("the recommendation", record.recommendation_loss)]
    if record.advised_loss is not None and record.advice_threshold is not None:
        rows.append((f"the advice (change only where P(recommendation better) ≥ "
                     f"{100 * record.advice_threshold:.0f} %)", record.advised_loss))
    rows += [("the virtual trial's clinicians", record.clinicians_loss),
             (f"one dose for everyone ({fmt_dose(record.constant_dose_gy)} Gy/fx)",
              record.constant_loss)]
    return [(name, f"{loss:.2f}", bool(loss <= best)) for name, loss in rows]


def track_record_verdict(record: TrackRecord) -> str:
    """Which policy did best on the fresh cohort, and by how much the recommendation trailed."""
    best, best_loss = record.ranking()[0]
    rec_loss = record.recommendation_loss
    if best == "recommendation":
        return "Following the recommendation did best there."
    behind = ("" if np.isclose(rec_loss, best_loss, atol=5e-3) else
              f"; the recommendation lost {rec_loss - best_loss:.2f} more")
    name = _TRACK_POLICY[best]
    return f"{name[:1].upper()}{name[1:]} did best there{behind}."


def track_record_text(record: TrackRecord | None) -> tuple[str, str]:
    """(what was measured, which policy did best) as plain text (CLI and report); without a
    record, why none is shown and an empty verdict."""
    if record is None:
        return TRACK_RECORD_UNKNOWN, ""
    rows = "; ".join(f"{name} {loss}" for name, loss, _ in track_record_rows(record))
    return f"{track_record_caption(record)} — {rows}.", track_record_verdict(record)


PROBABILITY_QUALITY_UNKNOWN = ("How good these probabilities are on patients no model was trained "
                               "on has not been measured for this model version.")
"""What is said beside a model no saved evaluation measured (e.g. a Learning Mode version)."""


def probability_quality_text(quality: Sequence[OutcomeQuality] | None) -> str:
    """One paragraph on how good the served TCP and NTCP are on the fresh virtual cohort: each
    Brier score against always predicting the event rate (better or worse), and how often the
    stated interval held the true probability."""
    if quality is None:
        return PROBABILITY_QUALITY_UNKNOWN
    def fmt(v: float) -> str:  # three significant digits: rare events have small scores
        return f"{v:.3g}"

    parts = [f"{q.outcome_key.upper()} {fmt(q.brier)} vs {fmt(q.brier_base_rate)} "
             f"({q.against_base_rate()})" for q in quality]
    text = ("Brier score on a fresh virtual cohort (never trained on; lower is better) against "
            "always predicting the event rate: " + ", ".join(parts) + ".")
    held = [q for q in quality if q.interval_level and q.coverage_truth is not None]
    if held:
        level = level_label(held[0].interval_level)
        text += (f" The {level} held the true probability at "
                 + " and ".join(f"{100 * q.coverage_truth:.0f} % ({q.outcome_key.upper()})"
                                for q in held) + " of doses.")
    return text
