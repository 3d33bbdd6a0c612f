"""Self-contained, interactive HTML report of a set of recommendations.

:func:`render_report` fills ``engine/platform/templates/report.html`` (Jinja2, autoescaping on) with
the summary per case (TCP and NTCP with their interval and its level, the predicted reward, the
best dose's interval, any caution, the decision maker's SEM and q-value labelled as what they
are), the physician's proposal compared with the recommendation, the outcome model (label,
version, ensemble size, interval), the inputs, the physician's notes and the three figures of
:mod:`engine.figures.outcome_space` and :mod:`engine.figures.population` (with interval bands and
ellipses when the model states an interval). The wording of the numbers comes from
:mod:`engine.figures.outcome_space`, as in the app and the command line. plotly.js is inlined
once from the installed plotly package, so the file opens offline and references no external URL;
it prints on A4 (print stylesheet in the template). Everything that comes from the user (ids,
notes) is escaped by the template. :func:`render_inputs` fills
``inputs.html``, the printable inputs page; both pages extend ``page.html`` (the HTML skeleton:
head, style block, ``<main>``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from engine import __version__
from engine.arclids.arte import goal_flags
from engine.arclids.odm_eval import track_record
from engine.arclids.recommend import Recommendation
from engine.core.protocols import Protocol
from engine.core.schema import PROPOSAL_COLUMN, case_labels
from engine.figures.dose_response import dose_response_figure
from engine.figures.dvh import dvh_figure
from engine.figures.outcome_space import (
    outcome_space_figure,
)
from engine.figures.population import population_figure
from engine.figures.style import PLOTLY_CONFIG, case_colour
from engine.figures.wording import (
    DOSE_INTERVAL_MEANING,
    PREDICTED_REWARD,
    SEM_MEANING,
    advice_text,
    dose_interval_text,
    interval_label,
    level_label,
    pct_text,
    plan_feature_text,
    recommendation_text,
    reward_text,
    track_record_text,
)

if TYPE_CHECKING:
    from engine.dvh import PlanImport

__all__ = ["DISCLAIMER", "render_inputs", "render_report", "report_filename"]

_TEMPLATES = Path(__file__).parent / "templates"

DISCLAIMER = (
    "The outcome curves and dose recommendations in this report come from models of a virtual "
    "trial (simulated patients whose ground truth is known): outcome estimators trained on it, "
    "or its reference model. They are not clinical evidence and must not be used on their own "
    "to decide a patient's treatment."
)
"""Shown at the top of every report (and in the app)."""


@dataclass(frozen=True)
class _Value:
    """A number as printed: the value, and its interval naming its level (None: no interval)."""

    main: str
    interval: str | None = None

    @classmethod
    def of(cls, text: str) -> _Value:
        """``"71.2 % (80 % interval 60.1–80.3 %)"`` → main ``71.2 %``, interval ``80 % …``."""
        main, _, rest = text.partition(" (")
        return cls(main, rest[:-1] if rest else None)


@dataclass(frozen=True)
class _SummaryRow:
    label: str
    colour: str
    dose_eval_gy: float
    recommended: str
    tcp: _Value
    ntcp: _Value
    reward: str
    dose_interval: str | None
    """The best dose's interval, e.g. ``"2.6–3.4 Gy/fx"`` (its level and meaning are in the
    column header); None without one."""
    goal: str
    input_hash: str
    audit_id: int | None
    model_version: str
    caution: str | None = None
    dose_sem_gy: float | None = None
    member_mean_dose_gy: float | None = None
    q_value: float | None = None
    exact_argmax_dose_gy: float | None = None
    goals_met: tuple[tuple[str, bool], ...] = ()


@dataclass(frozen=True)
class _ProposalBlock:
    """The physician's proposal beside the recommendation, for one case."""

    label: str
    colour: str
    rows: tuple[tuple[str, _Value, _Value], ...]
    """(what, at the proposal, at the recommendation): dose, TCP, NTCP, predicted reward."""
    p_recommended_better: float
    threshold: float
    advice: str
    advice_text: str
    advised_dose: str


@dataclass(frozen=True)
class _ModelRow:
    label: str
    version: str
    n_members: int
    interval: str | None


@dataclass(frozen=True)
class _InputRow:
    label: str
    unit: str
    accepted: str
    values: list[str]


@dataclass(frozen=True)
class _PlanBlock:
    """A case's imported plan: where its dosimetric features came from, its DVHs and the
    protocol's constraints checked on it."""

    label: str
    colour: str
    files: str
    """The plan's files, e.g. ``"RD.dcm (RTDOSE), RS.dcm (RTSTRUCT)"``."""
    fractions: str
    """How many fractions the dose covers and where that number comes from."""
    features: tuple[tuple[str, str, str], ...]
    """(feature label, value, how it was computed)."""
    figure: Markup
    constraints: tuple[dict[str, str], ...]
    """:meth:`engine.dvh.ConstraintResult.display` rows."""
    warnings: tuple[str, ...]


def _plan_block(i: int, label: str, plan: PlanImport, protocol: Protocol) -> _PlanBlock:
    labels = {f.name: f.label for f in protocol.features}
    features = [(labels.get(f.feature, f.feature), f"{f.value:.2f} {f.unit}",
                 plan_feature_text(f, plan)) for f in plan.feature_details]
    source = plan.fractions_source.replace("--plan-fractions", "entered by the user")
    return _PlanBlock(
        label=label, colour=case_colour(i),
        files=", ".join(f"{name} ({kind.upper()})" for kind, name in plan.files.items()),
        fractions=(f"The dose covers {plan.n_plan_fractions} fractions ({source}); the "
                   f"features are scaled to the protocol's {plan.n_eval_fractions} evaluation "
                   "fractions, the constraints checked on the plan's dose."),
        features=tuple(features),
        figure=_figure_html(dvh_figure(plan, height_px=460), f"artds-dvh-{i}"),
        constraints=tuple(c.display() for c in plan.constraints),
        warnings=plan.warnings,
    )


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda x: "–" if x is None or math.isnan(x) else f"{100 * x:.1f} %"
    env.filters["gy"] = lambda x: f"{x:g}"
    env.filters["lower_first"] = lambda s: s[:1].lower() + s[1:]
    env.filters["capitalize_first"] = lambda s: s[:1].upper() + s[1:]
    return env


@cache
def _plotly_js() -> str:
    return get_plotlyjs()


def _render_page(
    template: str,
    kind: str,
    protocol: Protocol,
    generated_at: datetime,
    user: str | None,
    **context: Any,
) -> str:
    """Fill ``template`` (a page extending ``page.html``) with what every page shows — title
    ``artds <kind> — <protocol>``, the protocol, the disclaimer, the time (UTC, to the minute),
    the user and the artds version — and the page's own ``context``."""
    return _environment().get_template(template).render(
        title=f"artds {kind} — {protocol.label}",
        protocol=protocol,
        disclaimer=DISCLAIMER,
        generated_at=generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        user=user,
        artds_version=__version__,
        **context,
    )


def report_filename(protocol: Protocol) -> str:
    """Download name of a report: no patient identifiers, only the protocol."""
    return f"artds-report-{protocol.name}.html"


def _figure_html(fig: go.Figure, div_id: str) -> Markup:
    html = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        config=PLOTLY_CONFIG,
        div_id=div_id,
        default_width="100%",
    )
    # Trusted: plotly writes the JSON with "<" escaped as \u003c, so user text cannot close the
    # script element, and the figure builders HTML-escape ids before plotly renders them.
    return Markup(html)


def _fmt_value(value: object, integer: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    x = float(value)
    if integer or abs(x) >= 1000:
        return f"{x:.0f}"
    return f"{x:.4g}"


def _input_rows(cases: pd.DataFrame, protocol: Protocol) -> list[_InputRow]:
    rows = [
        _InputRow(
            label="Evaluation-phase dose per fraction",
            unit="Gy",
            accepted=f"{protocol.dose_eval_min_gy:g} – {protocol.dose_eval_max_gy:g}",
            values=[_fmt_value(v, False) for v in cases.get("dose_eval_gy", [])],
        )
    ]
    for feat in protocol.features:
        values = cases[feat.name].tolist() if feat.name in cases.columns else [None] * len(cases)
        rows.append(
            _InputRow(
                label=feat.label,
                unit=feat.unit,
                accepted=f"{feat.min:g} – {feat.max:g}",
                values=[_fmt_value(v, feat.integer) for v in values],
            )
        )
    return rows


def _summary_row(i: int, rec: Recommendation, protocol: Protocol,
                 audit_id: int | None) -> _SummaryRow:
    label = interval_label(rec)
    return _SummaryRow(
        label=rec.label,
        colour=case_colour(i),
        dose_eval_gy=rec.dose_eval_gy,
        recommended=recommendation_text(rec).removesuffix(" Gy/fx"),
        tcp=_Value.of(pct_text(rec.recommended_tcp, rec.recommended_tcp_interval, label)),
        ntcp=_Value.of(pct_text(rec.recommended_ntcp, rec.recommended_ntcp_interval, label)),
        reward=f"{rec.recommended_reward:.2f}",
        dose_interval=_Value.of(dose_iv).main if (dose_iv := dose_interval_text(rec)) else None,
        goal=protocol.goal_met_label(rec.recommended_goal),
        input_hash=rec.input_hash,
        audit_id=audit_id,
        model_version=rec.model_version,
        caution=rec.caution,
        dose_sem_gy=rec.recommended_dose_sem_gy,
        member_mean_dose_gy=(rec.recommended_dose_gy if rec.member_mean_dose_gy is None
                             else rec.member_mean_dose_gy),
        q_value=rec.q_value,
        exact_argmax_dose_gy=rec.exact_argmax_dose_gy,
        goals_met=tuple(
            (g.name, bool(met)) for g, met in zip(
                protocol.goals,
                goal_flags(rec.recommended_tcp, rec.recommended_ntcp, protocol.goals),
                strict=True,
            )
        ),
    )


def _proposal_block(i: int, rec: Recommendation) -> _ProposalBlock:
    prop = rec.proposal
    assert prop is not None
    label = interval_label(rec)
    reward_level = level_label(rec.interval_level or 0.8) if label else None

    def reward_value(value: float, lo: float | None, hi: float | None) -> _Value:
        known = lo is not None and hi is not None
        return _Value.of(reward_text(value, (lo, hi), reward_level if known else None))

    rows = (
        ("Adaptive dose per fraction", _Value(f"{prop['dose_gy']:g} Gy/fx"),
         _Value(recommendation_text(rec))),
        ("TCP", _Value.of(pct_text(prop["tcp"], (prop["tcp_lo"], prop["tcp_hi"]), label)),
         _Value.of(pct_text(rec.recommended_tcp, rec.recommended_tcp_interval, label))),
        ("NTCP", _Value.of(pct_text(prop["ntcp"], (prop["ntcp_lo"], prop["ntcp_hi"]), label)),
         _Value.of(pct_text(rec.recommended_ntcp, rec.recommended_ntcp_interval, label))),
        (PREDICTED_REWARD[:1].upper() + PREDICTED_REWARD[1:],
         reward_value(prop["reward"], prop.get("reward_lo"), prop.get("reward_hi")),
         reward_value(prop["recommended_reward"], prop.get("recommended_reward_lo"),
                      prop.get("recommended_reward_hi"))),
    )
    return _ProposalBlock(
        label=rec.label, colour=case_colour(i), rows=rows,
        p_recommended_better=prop["p_recommended_better"], threshold=prop["threshold"],
        advice=prop["advice"], advice_text=advice_text(rec) or "",
        advised_dose=f"{round(prop['advised_dose_gy'], 2):g}",
    )


def render_report(
    recs: list[Recommendation],
    cases: pd.DataFrame,
    protocol: Protocol,
    *,
    population: pd.DataFrame | None,
    notes: dict[str, str] | None = None,
    generated_at: datetime | None = None,
    user: str | None = None,
    audit_ids: dict[str, int] | None = None,
    plans: Mapping[str, PlanImport] | None = None,
    odm_summary: dict[str, Any] | None = None,
    probability_quality: str | None = None,
) -> str:
    """Render the report as one self-contained HTML document.

    Args:
        recs: one recommendation per case, in display order.
        cases: the cases' inputs (id columns, features, ``dose_eval_gy``), same order as ``recs``.
        protocol: the protocol followed.
        population: virtual-trial population for the histograms; None leaves that section out.
        notes: physician notes keyed by case label (:attr:`Recommendation.label`); plain text,
            escaped in the output.
        generated_at: time stamp printed in the report (default: now, UTC).
        user: who generated it (the logged-in user), printed with the time.
        audit_ids: audit-trail id of each case's recommendation keyed by case label, printed
            next to its input hash and model version.
        plans: the imported plan (:func:`engine.dvh.import_plan`) whose dosimetric features a
            case holds, keyed by case label: its files, features, cumulative DVHs and
            constraint checks are printed for the cases of ``recs`` that have one.
        odm_summary: the protocol's saved decision-maker evaluation
            (:func:`engine.arclids.odm_eval.odm_summary`), for the recommendation's track record
            on a fresh virtual cohort beside the clinicians' rule and one dose for everyone;
            None loads the saved one (a report without it says so).
        probability_quality: how good the model's TCP and NTCP are on a fresh virtual cohort
            against the base rate (:func:`engine.figures.wording.probability_quality_text`),
            printed under the model; None leaves it out.

    Returns:
        The HTML text (UTF-8 when written), plotly.js inlined once, no external URLs.
    """
    notes = notes or {}
    generated_at = generated_at or datetime.now(UTC)
    if generated_at.tzinfo is None:
        generated_at = generated_at.replace(tzinfo=UTC)
    cases = cases.reset_index(drop=True)
    labels = case_labels(cases) if len(cases) else []

    summary = [_summary_row(i, rec, protocol, (audit_ids or {}).get(rec.label))
               for i, rec in enumerate(recs)]
    proposals = [_proposal_block(i, rec) for i, rec in enumerate(recs) if rec.proposal]
    recommenders = sorted({(r.recommender, r.odm_version or "", r.recommender_note or "")
                           for r in recs})
    models = [_ModelRow(label, version, n, interval) for label, version, n, interval in
              sorted({(rec.model, rec.model_version, rec.n_members, interval_label(rec) or "")
                      for rec in recs})]
    figures = []
    if recs:
        figures.append(("Outcome space", _figure_html(
            outcome_space_figure(recs, protocol), "artds-outcome-space")))
        figures.append(("Dose response", _figure_html(
            dose_response_figure(recs, protocol), "artds-dose-response")))
    if population is not None and len(cases):
        figures.append(("Population", _figure_html(
            population_figure(population, protocol, cases), "artds-population")))
    if odm_summary is None and recs:
        odm_summary = _saved_odm_summary(protocol.name)
    track_records = sorted({track_record_text(track_record(
        odm_summary, r.model_version, r.recommender, r.odm_version)) for r in recs})
    plan_blocks = [_plan_block(i, rec.label, (plans or {})[rec.label], protocol)
                   for i, rec in enumerate(recs) if rec.label in (plans or {})]

    return _render_page(
        "report.html",
        "report",
        protocol,
        generated_at,
        user,
        generated_iso=generated_at.astimezone(UTC).isoformat(timespec="seconds"),
        models=models,
        recommenders=recommenders,
        track_records=track_records,
        probability_quality=probability_quality,
        summary=summary,
        proposals=proposals,
        predicted_reward=PREDICTED_REWARD,
        sem_meaning=SEM_MEANING,
        dose_interval_meaning=DOSE_INTERVAL_MEANING,
        dose_interval_level=level_label(next((r.interval_level for r in recs
                                              if r.interval_level), 0.8)),
        case_labels=labels,
        input_rows=_input_rows(cases, protocol) if len(cases) else [],
        notes=[(label, notes[label]) for label in (r.label for r in recs)
               if notes.get(label, "").strip()],
        goals=protocol.goals,
        figures=figures,
        plans=plan_blocks,
        plotly_js=Markup(_plotly_js()),
        plotly_config=PLOTLY_CONFIG,
    )


def _saved_odm_summary(protocol_name: str) -> dict[str, Any] | None:
    """The saved decision-maker evaluation's summary, None when it does not load."""
    from engine.arclids.odm_eval import odm_summary
    from engine.arclids.serving import LOAD_ERRORS

    try:
        return odm_summary(protocol_name)
    except LOAD_ERRORS:
        return None


def render_inputs(
    cases: pd.DataFrame,
    protocol: Protocol,
    *,
    notes: dict[str, str] | None = None,
    user: str | None = None,
    versions: dict[str, int] | None = None,
    generated_at: datetime | None = None,
) -> str:
    """A printable page of the inputs of ``cases`` (one column per case), with ids, units,
    accepted ranges, the input hash and stored version of each case, and the notes (escaped).
    Self-contained, no script but a print button."""
    from engine.arclids.recommend import input_hash

    notes = notes or {}
    generated_at = (generated_at or datetime.now(UTC)).astimezone(UTC)
    cases = cases.reset_index(drop=True)
    labels = case_labels(cases) if len(cases) else []
    hashes = [input_hash(row, protocol) for _, row in cases.iterrows()]
    extra = []
    doses = ("dose_adapt_gy", PROPOSAL_COLUMN)
    for col, label in (("dose_adapt_gy", "Adaptive dose per fraction given"),
                       (PROPOSAL_COLUMN, "Proposed adaptive dose per fraction"),
                       (protocol.target.outcome, protocol.target.outcome_label),
                       (protocol.oar.outcome, protocol.oar.outcome_label)):
        if col in cases.columns and cases[col].notna().any():
            unit = "Gy" if col in doses else "0/1"
            extra.append(_InputRow(label, unit, "", [
                "unknown" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))
                else _fmt_value(v, col not in doses) for v in cases[col]]))
    return _render_page(
        "inputs.html",
        "inputs",
        protocol,
        generated_at,
        user,
        case_labels=labels,
        hashes=hashes,
        versions=[(versions or {}).get(lab) for lab in labels],
        input_rows=(_input_rows(cases, protocol) + extra) if len(cases) else [],
        notes=[(lab, notes[lab]) for lab in labels if notes.get(lab, "").strip()],
    )
