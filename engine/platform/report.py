"""Self-contained, interactive HTML report of a set of recommendations.

:func:`render_report` fills ``engine/platform/templates/report.html`` (Jinja2, autoescaping on) with
the summary per case, the outcome model (label, version, ensemble size), the inputs, the physician's
notes and the three figures of :mod:`engine.figures.outcome_space` and
:mod:`engine.figures.population` (with ensemble bands and covariance ellipses when the model is an
ensemble). plotly.js is inlined once from the installed plotly package, so the file opens offline
and references no external URL; it prints on A4 (print stylesheet in the template). Everything that
comes from the user (ids, notes) is escaped by the template. :func:`render_inputs` fills
``inputs.html``, the printable inputs page; both pages extend ``page.html`` (the HTML skeleton:
head, style block, ``<main>``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from engine import __version__
from engine.arclids.arte import goal_flags
from engine.arclids.recommend import Recommendation
from engine.core.protocols import Protocol
from engine.core.schema import case_labels
from engine.figures.outcome_space import dose_response_figure, outcome_space_figure
from engine.figures.population import population_figure
from engine.figures.style import PLOTLY_CONFIG, case_colour

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
class _SummaryRow:
    label: str
    colour: str
    dose_eval_gy: float
    recommended_dose_gy: float
    tcp: float
    ntcp: float
    goal: str
    input_hash: str
    audit_id: int | None
    model_version: str
    dose_sem_gy: float | None = None
    q_value: float | None = None
    exact_argmax_dose_gy: float | None = None
    goals_met: tuple[tuple[str, bool], ...] = ()


@dataclass(frozen=True)
class _ModelRow:
    label: str
    version: str
    n_members: int


@dataclass(frozen=True)
class _InputRow:
    label: str
    unit: str
    accepted: str
    values: list[str]


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

    Returns:
        The HTML text (UTF-8 when written), plotly.js inlined once, no external URLs.
    """
    notes = notes or {}
    generated_at = generated_at or datetime.now(UTC)
    if generated_at.tzinfo is None:
        generated_at = generated_at.replace(tzinfo=UTC)
    cases = cases.reset_index(drop=True)
    labels = case_labels(cases) if len(cases) else []

    summary = [
        _SummaryRow(
            label=rec.label,
            colour=case_colour(i),
            dose_eval_gy=rec.dose_eval_gy,
            recommended_dose_gy=rec.recommended_dose_gy,
            tcp=rec.recommended_tcp,
            ntcp=rec.recommended_ntcp,
            goal=protocol.goal_met_label(rec.recommended_goal),
            input_hash=rec.input_hash,
            audit_id=(audit_ids or {}).get(rec.label),
            model_version=rec.model_version,
            dose_sem_gy=rec.recommended_dose_sem_gy,
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
        for i, rec in enumerate(recs)
    ]
    recommenders = sorted({(r.recommender, r.odm_version or "", r.recommender_note or "")
                           for r in recs})
    models = [_ModelRow(label, version, n) for label, version, n in
              sorted({(rec.model, rec.model_version, rec.n_members) for rec in recs})]
    figures = []
    if recs:
        figures.append(("Outcome space", _figure_html(
            outcome_space_figure(recs, protocol), "artds-outcome-space")))
        figures.append(("Dose response", _figure_html(
            dose_response_figure(recs, protocol), "artds-dose-response")))
    if population is not None and len(cases):
        figures.append(("Population", _figure_html(
            population_figure(population, protocol, cases), "artds-population")))

    return _render_page(
        "report.html",
        "report",
        protocol,
        generated_at,
        user,
        generated_iso=generated_at.astimezone(UTC).isoformat(timespec="seconds"),
        models=models,
        recommenders=recommenders,
        summary=summary,
        case_labels=labels,
        input_rows=_input_rows(cases, protocol) if len(cases) else [],
        notes=[(label, notes[label]) for label in (r.label for r in recs)
               if notes.get(label, "").strip()],
        goals=protocol.goals,
        figures=figures,
        plotly_js=Markup(_plotly_js()),
        plotly_config=PLOTLY_CONFIG,
    )


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
    for col, label in (("dose_adapt_gy", "Adaptive dose per fraction given"),
                       (protocol.target.outcome, protocol.target.outcome_label),
                       (protocol.oar.outcome, protocol.oar.outcome_label)):
        if col in cases.columns and cases[col].notna().any():
            unit = "Gy" if col == "dose_adapt_gy" else "0/1"
            extra.append(_InputRow(label, unit, "", [
                "unknown" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))
                else _fmt_value(v, col != "dose_adapt_gy") for v in cases[col]]))
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
