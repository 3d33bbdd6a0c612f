"""Figures shared by the app and the report (engine/figures.py), on hand-made outcome curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from engine.arte import OutcomeCurves, reward
from engine.figures import (
    CASE_COLOURS,
    dose_response_figure,
    outcome_space_figure,
    population_figure,
)
from engine.protocols import Protocol, load_protocol
from engine.recommend import Recommendation, recommend


class CurveModel:
    """Logistic TCP/NTCP curves over the dose grid; ``members`` > 1 gives an ensemble."""

    name = "curves"
    label = "hand-made curves"
    version = "test-1"

    def __init__(self, members: int = 1, tcp_mid: float = 0.35, ntcp_mid: float = 0.8) -> None:
        self.members = members
        self.tcp_mid = tcp_mid
        self.ntcp_mid = ntcp_mid

    def predict_curves(self, cases: pd.DataFrame, protocol: Protocol) -> OutcomeCurves:
        doses = protocol.dose_grid()
        g = np.linspace(0.0, 1.0, len(doses))[None, None, :]  # [1, 1, D]
        shift = np.arange(len(cases))[None, :, None] * 0.08  # [1, P, 1]
        member = (np.arange(self.members)[:, None, None] - (self.members - 1) / 2) * 0.03
        tcp = 1.0 / (1.0 + np.exp(-(g - self.tcp_mid - shift + member) / 0.15))  # [M, P, D]
        ntcp = 1.0 / (1.0 + np.exp(-(g - self.ntcp_mid + shift / 2 + member) / 0.12))
        return OutcomeCurves(doses_gy=doses, tcp=tcp, ntcp=ntcp)


def make_cases(protocol: Protocol, ids: list[str]) -> pd.DataFrame:
    rows = []
    for i, pid in enumerate(ids):
        row: dict[str, object] = {"patient_id": pid}
        if "site_id" in protocol.id_columns:
            row["site_id"] = 1
        for feat in protocol.features:
            mid = (feat.min + feat.max) / 2
            row[feat.name] = round(mid) + i if feat.integer else mid * (1 + 0.1 * i)
        row["dose_eval_gy"] = protocol.dose_eval_min_gy + 0.2
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def nsclc() -> Protocol:
    return load_protocol("nsclc")


@pytest.fixture(scope="module")
def cases(nsclc: Protocol) -> pd.DataFrame:
    return make_cases(nsclc, ["P-001", "P-002", "P-003"])


@pytest.fixture(scope="module")
def recs(nsclc: Protocol, cases: pd.DataFrame) -> list[Recommendation]:
    return recommend(cases, nsclc, CurveModel(members=1))


@pytest.fixture(scope="module")
def ensemble_recs(nsclc: Protocol, cases: pd.DataFrame) -> list[Recommendation]:
    return recommend(cases, nsclc, CurveModel(members=5))


def _traces(fig: go.Figure, kind: str) -> list:
    return [t for t in fig.data if t.type == kind]


def _case_curves(fig: go.Figure) -> list:
    return [t for t in fig.data if t.type == "scatter" and t.mode == "lines+markers"]


def test_outcome_space_draws_reward_landscape_with_goal_steps(nsclc, recs):
    fig = outcome_space_figure(recs, nsclc)
    (contour,) = _traces(fig, "contour")
    z = np.asarray(contour.z, dtype=float)
    x, y = np.asarray(contour.x), np.asarray(contour.y)
    assert z.shape == (len(y), len(x))
    # The landscape is the protocol reward, bonuses included (steps of +1 and +2).
    tcp, ntcp = np.meshgrid(x, y)
    assert np.allclose(z, reward(tcp, ntcp, nsclc.goals), atol=1e-5)
    assert z.max() == pytest.approx(1.0 + max(g.bonus for g in nsclc.goals), abs=1e-3)
    assert contour.hoverinfo == "skip"


def test_outcome_space_outlines_and_labels_each_goal(nsclc, recs):
    fig = outcome_space_figure(recs, nsclc)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == len(nsclc.goals)
    for goal in nsclc.goals:
        assert any(r.x0 == goal.tcp_min and r.y1 == goal.ntcp_max and r.x1 == 1.0 and r.y0 == 0
                   for r in rects)
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "population goal" in texts and "default goal" in texts


def test_outcome_space_one_curve_per_case_with_hover(nsclc, recs):
    fig = outcome_space_figure(recs, nsclc)
    curves = _case_curves(fig)
    assert len(curves) == len(recs)
    for curve, rec in zip(curves, recs, strict=True):
        assert np.allclose(curve.x, rec.tcp) and np.allclose(curve.y, rec.ntcp)
        assert rec.label in curve.name
        for word in ("dose", "Gy/fx", "TCP", "NTCP", "reward"):
            assert word in curve.hovertemplate
    colours = [c.line.color for c in curves]
    assert len(set(colours)) == len(recs)
    assert set(colours) <= set(CASE_COLOURS)


def test_outcome_space_marks_recommended_dose_with_star_and_legend(nsclc, recs):
    fig = outcome_space_figure(recs, nsclc)
    stars = [t for t in fig.data if t.type == "scatter" and t.marker.symbol == "star"]
    assert len(stars) == len(recs)
    for star, rec in zip(stars, recs, strict=True):
        assert f"recommended: {rec.recommended_dose_gy:g} Gy/fx" in star.name
        assert star.x[0] == pytest.approx(rec.recommended_tcp)
        assert star.y[0] == pytest.approx(rec.recommended_ntcp)
        assert star.showlegend is not False


def test_outcome_space_marks_selected_dose_at_nearest_grid_point(nsclc, recs):
    rec = recs[0]
    fig = outcome_space_figure(recs, nsclc, selected_dose_gy={rec.label: 2.52})
    circles = [t for t in fig.data if t.type == "scatter" and t.marker.symbol == "circle-open"]
    assert len(circles) == 1  # only the case that has a selected dose
    j = int(np.argmin(np.abs(np.asarray(rec.doses_gy) - 2.52)))
    assert rec.doses_gy[j] == pytest.approx(2.5)
    assert circles[0].x[0] == pytest.approx(rec.tcp[j])
    assert circles[0].y[0] == pytest.approx(rec.ntcp[j])


def test_outcome_space_error_bars_only_for_ensembles(nsclc, recs, ensemble_recs):
    single = _case_curves(outcome_space_figure(recs, nsclc))
    assert all(not c.error_x.visible and not c.error_y.visible for c in single)
    ensemble = _case_curves(outcome_space_figure(ensemble_recs, nsclc))
    for curve, rec in zip(ensemble, ensemble_recs, strict=True):
        assert curve.error_x.visible and curve.error_y.visible
        assert np.allclose(curve.error_x.array, rec.tcp_sd)
        assert np.allclose(curve.error_y.array, rec.ntcp_sd)
        assert max(rec.tcp_sd) > 0


def test_outcome_space_names_model_and_axes(nsclc, recs):
    fig = outcome_space_figure(recs, nsclc, zoom=False)
    assert "hand-made curves" in fig.layout.title.text
    assert "not clinical evidence" in fig.layout.title.subtitle.text
    assert "TCP" in fig.layout.xaxis.title.text
    assert "NTCP" in fig.layout.yaxis.title.text
    assert tuple(fig.layout.xaxis.range) == (0.0, 1.0)
    assert tuple(fig.layout.yaxis.range) == (0.0, 1.0)


def test_outcome_space_zooms_when_curves_sit_in_a_corner(nsclc, cases):
    corner = recommend(cases, nsclc, CurveModel(tcp_mid=-0.6, ntcp_mid=1.4))
    fig = outcome_space_figure(corner, nsclc)
    x0, x1 = fig.layout.xaxis.range
    y0, y1 = fig.layout.yaxis.range
    assert (x1 - x0) * (y1 - y0) < 0.1
    all_tcp = np.concatenate([r.tcp for r in corner])
    all_ntcp = np.concatenate([r.ntcp for r in corner])
    assert x0 <= all_tcp.min() and all_tcp.max() <= x1
    assert y0 <= all_ntcp.min() and all_ntcp.max() <= y1
    # Buttons switch back to the whole outcome space.
    (menu,) = fig.layout.updatemenus
    assert menu.buttons[0].args[0]["xaxis.range"] == [0.0, 1.0]


def test_outcome_space_escapes_user_text(nsclc):
    evil = "<script>alert(1)</script>"
    recs = recommend(make_cases(nsclc, [evil]), nsclc, CurveModel())
    fig = outcome_space_figure(recs, nsclc, selected_dose_gy={evil: 2.0})
    text = fig.to_json()
    assert "<script>" not in text and "\\u003cscript" not in text
    assert "&lt;script&gt;" in text


def test_outcome_space_without_cases_still_renders(nsclc):
    fig = outcome_space_figure([], nsclc)
    assert len(_traces(fig, "contour")) == 1
    assert any("No cases" in a.text for a in fig.layout.annotations)


def test_dose_response_traces_and_recommended_lines(nsclc, recs):
    fig = dose_response_figure(recs, nsclc)
    lines = [t for t in fig.data if t.type == "scatter"]
    assert len(lines) == 3 * len(recs)  # TCP, NTCP and reward per case
    names = " ".join(t.name for t in lines)
    for rec in recs:
        for what in ("TCP", "NTCP", "reward"):
            assert f"{rec.label}: {what}" in names
    vlines = [s for s in fig.layout.shapes if s.type == "line" and s.x0 == s.x1]
    for i, rec in enumerate(recs):
        mine = [s for s in vlines if s.line.color == CASE_COLOURS[i]]
        assert len(mine) == 2  # one per row
        assert all(s.x0 == pytest.approx(rec.recommended_dose_gy) for s in mine)
    assert "Gy/fx" in fig.layout.xaxis2.title.text
    tcp_trace = next(t for t in lines if t.name == f"{recs[0].label}: TCP")
    assert np.allclose(tcp_trace.x, recs[0].doses_gy)


@pytest.fixture(scope="module")
def population(nsclc: Protocol) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    data = {}
    for feat in nsclc.features:
        if feat.integer:
            data[feat.name] = rng.integers(int(feat.min), int(feat.max) + 1, 80).astype(float)
        else:
            data[feat.name] = rng.uniform(feat.min, feat.min + 0.8 * (feat.max - feat.min), 80)
    return pd.DataFrame(data)


def test_population_one_histogram_per_feature_with_units(nsclc, population, cases):
    fig = population_figure(population, nsclc, cases)
    bars = _traces(fig, "bar")
    assert len(bars) == len(nsclc.features)
    assert bars[0].name == "virtual trial population"
    titles = [a.text for a in fig.layout.annotations]
    for feat in nsclc.features:
        assert any(feat.label.split(" (")[0][:20] in t.replace("<br>", " ") for t in titles)
    assert any("(pg/mL)" in t for t in titles)
    assert all(sum(b.y) == len(population) for b in bars)


def test_population_marks_each_case_value(nsclc, population, cases):
    fig = population_figure(population, nsclc, cases)
    marks = [t for t in fig.data if t.type == "scatter"]
    continuous = [f for f in nsclc.features if not f.integer]
    assert len(marks) == len(cases) * len(nsclc.features)
    feat = continuous[0]
    first = [m for m in marks if feat.label in m.hovertemplate]
    assert [m.x[0] for m in first] == pytest.approx(cases[feat.name].tolist())
    assert {m.name for m in marks} == set(cases["patient_id"])
    assert sum(bool(m.showlegend) for m in marks) == len(cases)  # one legend entry per case


def test_population_skips_missing_values_and_uses_log_axis_for_skewed(nsclc, population):
    hcc = load_protocol("hcc")
    rng = np.random.default_rng(1)
    pop = pd.DataFrame({
        f.name: (rng.integers(int(f.min), int(f.max) + 1, 60).astype(float) if f.integer
                 else rng.uniform(f.min + 0.1, f.max / 2, 60))
        for f in hcc.features
    })
    pop["afp_pre_ng_ml"] = 10 ** rng.uniform(0, 4.5, 60)  # four decades
    case = make_cases(hcc, ["H-1"])
    case.loc[0, "hgf_pre_pg_ml"] = np.nan
    fig = population_figure(pop, hcc, case)
    marks = [t for t in fig.data if t.type == "scatter"]
    assert len(marks) == len(hcc.features) - 1
    assert all(m.name == "H-1 site 1" for m in marks)
    afp = next(i for i, f in enumerate(hcc.features) if f.name == "afp_pre_ng_ml")
    axis = fig.layout[f"xaxis{afp + 1}"]
    assert axis.title.text == "log scale"
    assert "10000" in list(axis.ticktext)
