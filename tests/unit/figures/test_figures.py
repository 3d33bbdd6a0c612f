"""The ARCliDS figures (engine/figures/) and the shared style, on hand-made outcome curves and
a small fake evaluation payload."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from engine.arclids.arte import reward
from engine.arclids.outcomes import OutcomeCurves
from engine.arclids.recommend import Recommendation, recommend
from engine.core.protocols import Protocol, load_protocol
from engine.figures.dose_response import dose_response_figure
from engine.figures.outcome_space import (
    covariance_ellipse,
    ellipse_dose_indices,
    interval_ellipse,
    outcome_space_figure,
    selected_dose_traces,
)
from engine.figures.style import CASE_COLOURS
from engine.figures.wording import (
    advice_text,
    dose_interval_text,
    interval_label,
    pct_text,
    recommendation_text,
    reward_text,
)


class CurveModel:
    """Logistic TCP/NTCP curves over the dose grid; ``members`` > 1 gives an ensemble."""

    name = "curves"
    label = "hand-made curves"
    version = "test-1"

    def __init__(self, members: int = 1, tcp_mid: float = 0.35, ntcp_mid: float = 0.8,
                 spread: float = 0.03, level: float | None = None) -> None:
        self.members = members
        self.tcp_mid = tcp_mid
        self.ntcp_mid = ntcp_mid
        self.spread = spread
        self.level = level
        """With a level the curves state an interval (mean ± 1.3 sd + 0.02, clipped to 0–1)
        at that level, as a calibrated ensemble does; without, the members' min–max is used."""

    def predict_curves(self, cases: pd.DataFrame, protocol: Protocol) -> OutcomeCurves:
        doses = protocol.dose_grid()
        g = np.linspace(0.0, 1.0, len(doses))[None, None, :]  # [1, 1, D]
        shift = np.arange(len(cases))[None, :, None] * 0.08  # [1, P, 1]
        k = np.arange(self.members)[:, None, None] - (self.members - 1) / 2  # [M, 1, 1]
        # TCP and NTCP members move partly independently, so the covariance is full rank.
        tcp = 1.0 / (1.0 + np.exp(-(g - self.tcp_mid - shift + self.spread * k) / 0.15))
        ntcp = 1.0 / (1.0 + np.exp(-(g - self.ntcp_mid + shift / 2
                                      + self.spread * (k % 2 - 0.4 * k)) / 0.12))
        if self.level is None:
            return OutcomeCurves(doses_gy=doses, tcp=tcp, ntcp=ntcp)  # [M, P, D] each
        ends = {}
        for name, v in (("tcp", tcp), ("ntcp", ntcp)):
            width = 1.3 * v.std(axis=0, ddof=1) + 0.02
            ends[f"{name}_lo"] = np.clip(v.mean(axis=0) - width, 0.0, 1.0)
            ends[f"{name}_hi"] = np.clip(v.mean(axis=0) + width, 0.0, 1.0)
        return OutcomeCurves(doses_gy=doses, tcp=tcp, ntcp=ntcp, interval_level=self.level,
                             **ends)


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
    """A calibrated-like ensemble: 5 members and an 80 % interval."""
    return recommend(cases, nsclc, CurveModel(members=5, level=0.8))


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


def _moved(fig: go.Figure, traces: list) -> list[dict]:
    """The figure's traces with those of the same uid replaced (what app/www/plots.js does)."""
    by_uid = {t.uid: t for t in traces}
    return [(by_uid.get(t.uid, t) if t.uid else t).to_plotly_json() for t in fig.data]


@pytest.mark.parametrize("which", ["recs", "ensemble_recs"])
@pytest.mark.parametrize(("dose_a", "dose_b"), [(1.5, 3.2), (2.5, 2.5), (4.0, 1.8), (2.04, 2.96)])
def test_moving_the_selected_dose_equals_redrawing_the_figure(nsclc, which, dose_a, dose_b,
                                                               request):
    """Replacing the uid traces of the figure drawn at dose a by selected_dose_traces(b) gives
    the figure drawn at dose b, trace for trace (the app moves the dose on the client so)."""
    recs = request.getfixturevalue(which)
    at_a = outcome_space_figure(recs, nsclc, selected_dose_gy={r.label: dose_a for r in recs})
    at_b = outcome_space_figure(recs, nsclc, selected_dose_gy={r.label: dose_b for r in recs})
    moved = selected_dose_traces(recs, {r.label: dose_b for r in recs})
    uids = [t.uid for t in moved]
    assert len(set(uids)) == len(uids) and set(uids) <= {t.uid for t in at_a.data}
    expected = 2 * len(recs) if which == "ensemble_recs" else len(recs)
    assert len(moved) == expected  # the bold ellipses and the circle; the circle only
    got, want = _moved(at_a, moved), [t.to_plotly_json() for t in at_b.data]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for key in g:
            np.testing.assert_equal(np.asarray(g[key], dtype=object),
                                    np.asarray(w[key], dtype=object))
    assert at_a.layout.to_plotly_json() == at_b.layout.to_plotly_json()
    # Cases without a selected dose move nothing.
    assert selected_dose_traces(recs, {}) == []


def _ellipses(fig: go.Figure) -> list:
    return [t for t in fig.data if t.meta == "ellipse"]


def _rings(trace) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split a None-separated ellipse trace into its closed rings."""
    rings, xs, ys = [], [], []
    for x, y in zip(trace.x, trace.y, strict=True):
        if x is None:
            rings.append((np.array(xs, dtype=float), np.array(ys, dtype=float)))
            xs, ys = [], []
        else:
            xs.append(x)
            ys.append(y)
    return rings


def test_outcome_space_ellipses_only_for_ensembles(nsclc, recs, ensemble_recs):
    assert _ellipses(outcome_space_figure(recs, nsclc)) == []
    rec = ensemble_recs[0]
    fig = outcome_space_figure(ensemble_recs, nsclc, selected_dose_gy={rec.label: 2.5})
    curves = _case_curves(fig)
    for curve, r in zip(curves, ensemble_recs, strict=True):
        mine = [t for t in _ellipses(fig) if t.legendgroup == curve.legendgroup]
        assert len(mine) == 2  # faint rings along the curve, bold rings at the marked doses
        faint, bold = mine
        assert bold.line.width > faint.line.width and bold.line.width < curve.line.width
        for t in mine:
            assert t.showlegend is False and t.hoverinfo == "skip"
            assert "rgba" in t.line.color  # semi-transparent
            assert "80 % interval ellipses" in t.name
        doses = np.asarray(r.doses_gy)
        recommended = int(np.argmin(np.abs(doses - r.recommended_dose_gy)))
        marked = {recommended}
        if r.label == rec.label:
            marked.add(int(np.argmin(np.abs(doses - 2.5))))
        every = ellipse_dose_indices(len(doses))
        assert len(every) < len(doses)
        # Faint rings: every fourth dose and the last, not the recommended one (the selected
        # dose's bold ring is drawn over its faint ring, so the faint rings never move).
        order = [j for j in every if j != recommended] + sorted(marked)
        assert len(_rings(bold)) == len(marked)
        for (x, y), j in zip(_rings(faint) + _rings(bold), order, strict=True):
            assert x[0] == pytest.approx(x[-1]) and y[0] == pytest.approx(y[-1])  # closed
            # The ellipse spans exactly the stated interval of TCP and of NTCP.
            assert x.min() == pytest.approx(r.tcp_lo[j], abs=2e-3)
            assert x.max() == pytest.approx(r.tcp_hi[j], abs=2e-3)
            assert y.min() == pytest.approx(r.ntcp_lo[j], abs=2e-3)
            assert y.max() == pytest.approx(r.ntcp_hi[j], abs=2e-3)
    subtitle = fig.layout.title.subtitle.text
    assert "ellipses: 80 % interval of TCP and of NTCP" in subtitle
    assert "±1 sd" not in subtitle


def test_interval_ellipse_spans_the_intervals_and_tilts_with_the_correlation():
    for rho in (-0.7, 0.0, 0.7, 1.0):
        x, y = interval_ellipse((0.5, 0.7), (0.1, 0.2), rho, n_points=2001)
        assert (x.min(), x.max()) == pytest.approx((0.5, 0.7), abs=1e-5)
        assert (y.min(), y.max()) == pytest.approx((0.1, 0.2), abs=1e-5)
        assert not np.isnan(x).any() and not np.isnan(y).any()
        # where TCP is highest, NTCP lies above its centre for a positive correlation
        at_right = y[int(np.argmax(x))] - 0.15
        assert np.sign(round(at_right, 6)) == np.sign(rho)
    x, y = interval_ellipse((0.5, 0.7), (0.1, 0.2), float("nan"))  # no spread: untilted
    assert not np.isnan(x).any()


def test_outcome_space_no_ellipses_when_members_agree(nsclc, cases):
    same = recommend(cases, nsclc, CurveModel(members=5, spread=0.0))
    assert same[0].n_members == 5
    fig = outcome_space_figure(same, nsclc)
    assert _ellipses(fig) == []
    assert "interval" not in _case_curves(fig)[0].hovertemplate
    assert not any(t.meta == "dose-interval" for t in fig.data)


def test_outcome_space_hover_gives_the_interval_for_ensembles(nsclc, recs, ensemble_recs):
    assert "interval" not in _case_curves(outcome_space_figure(recs, nsclc))[0].hovertemplate
    curve = _case_curves(outcome_space_figure(ensemble_recs, nsclc))[0]
    assert "TCP %{x:.1%} (80 % interval %{customdata[2]:.1%}–%{customdata[3]:.1%})" in (
        curve.hovertemplate)
    data = np.asarray(curve.customdata[:, 2:6], dtype=float)
    rec = ensemble_recs[0]
    assert np.allclose(data, np.column_stack([rec.tcp_lo, rec.tcp_hi, rec.ntcp_lo,
                                              rec.ntcp_hi]))
    assert "predicted reward (0–3, with goal bonuses)" in curve.hovertemplate


def test_uncalibrated_ensembles_name_their_spread_the_members_min_max(nsclc, cases):
    recs = recommend(cases, nsclc, CurveModel(members=5))  # states no interval level
    assert interval_label(recs[0]) == "members' min–max"
    assert "members' min–max" in outcome_space_figure(recs, nsclc).layout.title.subtitle.text
    assert "members' min–max" in dose_response_figure(recs, nsclc).layout.title.subtitle.text


def test_ellipse_dose_indices_every_fourth_plus_marked():
    assert ellipse_dose_indices(10) == [0, 4, 8, 9]
    assert ellipse_dose_indices(10, extra=[5, 5, 42, -1]) == [0, 4, 5, 8, 9]
    assert ellipse_dose_indices(0) == []


def test_covariance_ellipse_axis_aligned_semi_axes():
    x, y = covariance_ellipse(0.5, 0.2, 0.04, 0.01, 0.0, n_points=401)
    assert x.shape == y.shape == (401,)
    assert (x[0], y[0]) == (x[-1], y[-1])
    assert x.max() - 0.5 == pytest.approx(0.2) and 0.5 - x.min() == pytest.approx(0.2)
    assert y.max() - 0.2 == pytest.approx(0.1, rel=1e-4)
    # Every point lies on the ellipse (x/a)² + (y/b)² = 1.
    assert np.allclose(((x - 0.5) / 0.2) ** 2 + ((y - 0.2) / 0.1) ** 2, 1.0)
    x2, _ = covariance_ellipse(0.5, 0.2, 0.04, 0.01, 0.0, n_points=401, n_sd=2.0)
    assert x2.max() - 0.5 == pytest.approx(0.4)


def test_covariance_ellipse_rotated_follows_eigenvectors():
    # Eigenvalues 0.08 along (1, 1) and 0.02 along (1, -1).
    cov = np.array([[0.05, 0.03], [0.03, 0.05]])
    x, y = covariance_ellipse(0.0, 0.0, cov[0, 0], cov[1, 1], cov[0, 1], n_points=2001)
    r = np.hypot(x, y)
    far = np.argmax(r)
    assert r[far] == pytest.approx(np.sqrt(0.08), rel=1e-4)  # major semi-axis
    assert r.min() == pytest.approx(np.sqrt(0.02), rel=1e-4)  # minor semi-axis
    direction = np.array([x[far], y[far]]) / r[far]
    assert abs(direction @ np.array([1.0, 1.0]) / np.sqrt(2)) == pytest.approx(1.0, abs=1e-4)
    # Points satisfy vᵀ Σ⁻¹ v = 1 (the 1-sd contour).
    points = np.stack([x, y])
    assert np.allclose(np.einsum("in,ij,jn->n", points, np.linalg.inv(cov), points), 1.0)


def test_covariance_ellipse_degenerate_has_no_nan():
    x, y = covariance_ellipse(0.3, 0.7, 0.0, 0.0, 0.0)
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(y))
    assert np.allclose(x, 0.3) and np.allclose(y, 0.7)  # a point
    # Perfectly correlated (rank one, slightly non-PSD by rounding): a segment, still finite.
    x, y = covariance_ellipse(0.0, 0.0, 0.01, 0.04, 0.02 + 1e-12)
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(y))
    assert np.allclose(y, 2 * x, atol=1e-5)
    x, y = covariance_ellipse(0.0, 0.0, float("nan"), 0.01, 0.0)
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(y))


def test_outcome_space_names_model_and_axes(nsclc, recs):
    fig = outcome_space_figure(recs, nsclc, zoom=False)
    assert "hand-made curves" in fig.layout.title.text
    assert "not clinical evidence" in fig.layout.title.subtitle.text
    assert "version test-1" in fig.layout.title.subtitle.text
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
    assert [t for t in fig.data if t.meta == "band"] == []  # no band for a single model
    assert "version test-1" in fig.layout.title.subtitle.text


def test_dose_response_bands_for_ensembles(nsclc, ensemble_recs):
    fig = dose_response_figure(ensemble_recs, nsclc)
    bands = [t for t in fig.data if t.meta == "band"]
    assert len(bands) == 2 * len(ensemble_recs)  # TCP and NTCP per case
    rec = ensemble_recs[0]
    n = len(rec.doses_gy)
    for what, lo, hi in (("TCP", rec.tcp_lo, rec.tcp_hi), ("NTCP", rec.ntcp_lo, rec.ntcp_hi)):
        band = next(b for b in bands if b.name == f"{rec.label}: {what} 80 % interval")
        assert band.fill == "toself" and "rgba" in band.fillcolor
        assert band.hoverinfo == "skip" and band.showlegend is False
        y = np.asarray(band.y, dtype=float)
        assert np.allclose(y[:n], hi) and np.allclose(y[n:][::-1], lo)
        line = next(t for t in fig.data if t.name == f"{rec.label}: {what}")
        assert band.legendgroup == line.legendgroup
        assert "80 % interval" in line.hovertemplate
    subtitle = fig.layout.title.subtitle.text
    assert "shaded: 80 % interval of TCP and NTCP" in subtitle
    assert "ensemble of 5 members" in subtitle
    assert "±1 sd" not in subtitle


def test_best_dose_interval_is_drawn_and_labelled_as_the_outcome_models(nsclc, ensemble_recs):
    wide = [r for r in ensemble_recs if r.dose_interval_gy[1] > r.dose_interval_gy[0]]
    assert wide, "the fixture's curves must move the best dose"
    os_fig = outcome_space_figure(ensemble_recs, nsclc)
    assert sum(t.meta == "dose-interval" for t in os_fig.data) == len(wide)
    assert ("thick band: best dose, 80 % interval (from the outcome models' uncertainty)"
            in os_fig.layout.title.subtitle.text)
    dr = dose_response_figure(ensemble_recs, nsclc)
    lines = [t for t in dr.data if t.meta == "dose-interval"]
    assert [tuple(t.x) for t in lines] == [tuple(r.dose_interval_gy) for r in wide]
    assert [t.y[0] for t in lines] == [r.recommended_reward for r in wide]  # at its reward
    assert all("from the outcome models' uncertainty" in t.hovertemplate for t in lines)
    assert ("thick line on the reward: best dose, 80 % interval (from the outcome models' "
            "uncertainty)") in dr.layout.title.subtitle.text


def _with_proposal(recs: list[Recommendation], protocol: Protocol, cases: pd.DataFrame,
                   model, doses: list[float]) -> list[Recommendation]:
    return recommend(cases.assign(proposed_dose_adapt_gy=doses), protocol, model)


def test_proposal_is_marked_with_its_comparison(nsclc, cases, ensemble_recs):
    model = CurveModel(members=5, level=0.8)
    recs = _with_proposal(ensemble_recs, nsclc, cases, model, [2.0, float("nan"), 3.5])
    assert recs[1].proposal is None
    os_fig = outcome_space_figure(recs, nsclc)
    marks = [t for t in os_fig.data if t.meta == "proposal"]
    assert len(marks) == 2
    for mark, rec in zip(marks, (recs[0], recs[2]), strict=True):
        prop = rec.proposal
        assert (mark.x[0], mark.y[0]) == pytest.approx((prop["tcp"], prop["ntcp"]))
        assert mark.name == f"proposal: {prop['dose_gy']:g} Gy/fx (advice: {prop['advice']})"
        for text in ("your proposal", "80 % interval", "P(recommendation better)",
                     f"{prop['p_recommended_better']:.2f}", "advice: "):
            assert text in mark.hovertemplate
    assert "□ your proposal" in os_fig.layout.title.subtitle.text
    dr = dose_response_figure(recs, nsclc)
    assert sum(t.meta == "proposal" for t in dr.data) == 2
    dotted = [s for s in dr.layout.shapes if s.type == "line" and s.line.dash == "dot"]
    assert sorted({s.x0 for s in dotted}) == [2.0, 3.5]
    assert "dotted: your proposal" in dr.layout.title.subtitle.text


def test_text_helpers_state_levels_and_meanings(recs, ensemble_recs):
    from dataclasses import replace

    assert interval_label(recs[0]) is None  # one model: no spread to state
    assert interval_label(ensemble_recs[0]) == "80 % interval"
    assert pct_text(0.7123, [0.6, 0.8], "80 % interval") == "71.2 % (80 % interval 60.0–80.0 %)"
    assert pct_text(0.7123, None, None) == "71.2 %"
    assert reward_text(2.6, [1.61, 2.7], "80 % interval") == "2.60 (80 % interval 1.61–2.70)"
    assert dose_interval_text(recs[0]) is None
    rec = replace(ensemble_recs[0], dose_interval_gy=[2.6333, 3.4])
    assert dose_interval_text(rec) == (
        "2.63–3.4 Gy/fx (80 % interval, from the outcome models' uncertainty)")
    assert advice_text(rec) is None
    prop = {"dose_gy": 2.8, "p_recommended_better": 0.62, "threshold": 0.8, "advice": "keep",
            "advised_dose_gy": 2.8}
    keep = advice_text(replace(rec, proposal=prop, recommended_dose_gy=3.1))
    assert keep.startswith("keep your proposal (2.8 Gy/fx)") and "62 %" in keep
    change = advice_text(replace(rec, recommended_dose_gy=3.1, proposal=prop | {
        "advice": "change", "advised_dose_gy": 3.1, "p_recommended_better": 0.91}))
    assert change.startswith("change to the recommendation (3.1 Gy/fx)") and "91 %" in change
    same = advice_text(replace(rec, recommended_dose_gy=2.8, proposal=prop | {
        "p_recommended_better": 0.0}))
    assert same == "keep your proposal (2.8 Gy/fx): it is the recommended dose"


def test_no_figure_calls_a_number_a_confidence(nsclc, cases, ensemble_recs):
    recs = _with_proposal(ensemble_recs, nsclc, cases, CurveModel(members=5, level=0.8),
                          [2.0, 2.5, 3.0])
    for fig in (outcome_space_figure(recs, nsclc), dose_response_figure(recs, nsclc)):
        assert "confiden" not in fig.to_json().lower()


# --------------------------------------------------------------------------------------------
# Model review figures, on a small fake evaluation payload


class _ConstantQ:
    """A Q-network stand-in whose greedy dose is grid index ``best`` for every case."""

    def __init__(self, n_doses: int, best: int) -> None:
        import torch

        self.q = torch.zeros(n_doses)
        self.q[best] = 1.5

    def eval(self):
        return self

    def __call__(self, x):
        return self.q.expand(x.shape[0], -1)


def _odm_recs(protocol: Protocol, cases: pd.DataFrame, model) -> list[Recommendation]:
    from engine.arclids.gan import TabularTransform
    from engine.arclids.odm import ODMEnsemble

    d = len(protocol.dose_grid_gy)
    members = [_ConstantQ(d, j) for j in (5, 7, 9)]
    encoder = TabularTransform(protocol).fit(pd.concat([cases] * 2, ignore_index=True))
    odm = ODMEnsemble(protocol, encoder, members, version="odm-t", rtoe_version=model.version,
                      arch="glogd")
    return recommend(cases, protocol, model, odm)


def test_outcome_space_marks_the_odm_dose_and_the_exact_argmax_without_sem_band():
    nsclc = load_protocol("nsclc")
    cases = make_cases(nsclc, ["A", "B"])
    model = CurveModel(members=3, level=0.8)
    recs = _odm_recs(nsclc, cases, model)
    doses = nsclc.dose_grid()
    assert recs[0].recommended_dose_gy == pytest.approx(doses[[5, 7, 9]].mean())
    fig = outcome_space_figure(recs, nsclc)
    metas = [t.meta for t in fig.data]
    assert "sem" not in metas and metas.count("exact-argmax") == 2
    star = next(t for t in fig.data if t.name and t.name.startswith("recommended:"))
    # the SEM is the decision maker's fitting noise: not attached to the dose
    assert star.name == f"recommended: {recs[0].recommended_dose_gy:.2f} Gy/fx"
    assert "predicted reward (0–3, with goal bonuses)" in star.hovertemplate
    assert f"{recs[0].q_value:.2f}" in star.hovertemplate
    # the star sits on the curve at the (off-grid) mean dose
    assert star.x[0] == pytest.approx(np.interp(recs[0].recommended_dose_gy, doses,
                                                recs[0].tcp))
    dr = dose_response_figure(recs, nsclc)
    assert any(t.meta == "exact-argmax" for t in dr.data)
    # without a decision maker: no exact-argmax marker
    plain = outcome_space_figure(recommend(cases, nsclc, model), nsclc)
    assert not any(t.meta == "exact-argmax" for t in plain.data)


def _odm_payload() -> dict:
    group = {"mean": 0.7, "sem": 0.05}
    shares = {"good": 0.5, "bad": 0.25, "not_sure": 0.25, "n": 4}
    patients = {
        "label": ["P1", "P2", "P3", "P4"], "clinical_dose_gy": [2.0, 3.0, 2.5, 3.5],
        "tumour_controlled": [1, 0, 1, 0], "toxicity": [0, 0, 1, 1],
        "recommended_dose_gy": [2.1, 3.3, 2.2, 3.0], "recommended_dose_sem_gy": [0.1] * 4,
        "q_value": [2.1, 0.4, 1.0, 0.2], "exact_argmax_dose_gy": [2.0, 3.4, 2.2, 3.0],
        "self_evaluation": ["good", "good", "good", "good"],
    }
    trial = {"rmsd_gy": dict.fromkeys(("overall", "positive", "negative"), group),
             "self_evaluation": dict.fromkeys(("overall", "positive", "negative"), shares),
             "patients": patients}
    return {"protocol": "nsclc",
            "architectures": {"glogd": {"trial": trial}, "single": {"trial": trial}}}


def test_odm_review_figures():
    from engine.figures.odm_review import (
        odm_decisions_figure,
        odm_rmsd_figure,
        odm_self_evaluation_figure,
    )

    payload = _odm_payload()
    rmsd = odm_rmsd_figure(payload)
    assert [t.name for t in rmsd.data] == ["GLoGD-GNN + DDQN", "Single-GNN + DDQN"]
    assert list(rmsd.data[0].error_y.array) == [0.05] * 3
    se = odm_self_evaluation_figure(payload)
    assert [t.name for t in se.data] == ["Good", "Bad", "Not sure"]
    assert se.layout.barmode == "stack"
    dec = odm_decisions_figure(payload, load_protocol("nsclc"))
    recs = [t for t in dec.data if t.legendgroup == "rec"]
    # cases sorted by the clinical dose (P1 2.0, P3 2.5, P2 3.0, P4 3.5), coloured by q
    assert len(recs) == 2 and list(recs[0].marker.color) == [2.1, 1.0, 0.4, 0.2]
    assert list(recs[0].y) == [2.1, 2.2, 3.3, 3.0]
    labels = [t.text for t in dec.data if t.legendgroup and "clinical" in t.legendgroup]
    assert any("P1" in list(x) for x in labels)


def test_gan_overlay_keeps_protocol_feature_order():
    from engine.arclids.gan import feature_histograms, gan_columns
    from engine.figures.odm_review import gan_overlay_figure

    nsclc = load_protocol("nsclc")
    cases = make_cases(nsclc, ["A", "B", "C"])
    hist = feature_histograms(nsclc, {"training": cases, "synthetic": cases})
    checks = {"histograms": dict(sorted(hist.items())), "jsd_vs_training": dict.fromkeys(hist, 0.0)}
    fig = gan_overlay_figure(checks, nsclc)
    titles = [a.text for a in fig.layout.annotations]
    first = nsclc.feature(gan_columns(nsclc)[0]).label
    assert titles[0].startswith(first[:20])
    assert sum(1 for t in fig.data if t.name == "training trial") == len(gan_columns(nsclc))


def test_recommendation_text_is_the_served_dose_without_the_sem(recs):
    """The decision maker's dose to two decimals (its members' mean, or the grid dose it serves);
    the SEM and the q-value are not attached (they are labelled where they are shown)."""
    from dataclasses import replace

    base = replace(recs[0], recommender="odm", recommended_dose_gy=3.2,
                   recommended_dose_sem_gy=0.05, q_value=2.71, member_mean_dose_gy=3.12)
    paper = replace(base, odm_serving_rule="mean-dose", recommended_dose_gy=3.12)
    assert recommendation_text(paper) == "3.12 Gy/fx"
    assert recommendation_text(replace(base, odm_serving_rule="mean-q")) == "3.20 Gy/fx"
    assert recommendation_text(recs[0]) == f"{recs[0].recommended_dose_gy:g} Gy/fx"


# --------------------------------------------------------------------------------------------
# The shared style (engine/figures/style.py), used by the ARCliDS, planner and SF2 figures


def test_figures_package_only_maps_its_modules():
    """engine.figures re-exports nothing: every figure is imported from its submodule."""
    import types

    import engine.figures

    public = {n: v for n, v in vars(engine.figures).items() if not n.startswith("_")}
    assert all(isinstance(v, types.ModuleType) for v in public.values()), sorted(public)
    assert "outcome_space" in engine.figures.__doc__ and "style" in engine.figures.__doc__


def test_style_has_a_colour_and_a_dash_per_architecture():
    from engine.arclids.architectures import ARCH_KEYS, REFERENCE
    from engine.figures.style import ARCH_COLOURS, ARCH_DASHES, arch_colour, arch_dash, arch_order

    assert set(ARCH_COLOURS) == set(ARCH_DASHES) == {*ARCH_KEYS, REFERENCE}
    assert len(set(ARCH_COLOURS.values())) == len(ARCH_COLOURS)  # told apart by colour
    assert len(set(ARCH_DASHES.values())) == len(ARCH_DASHES)  # and in greyscale by dash
    assert arch_colour("unknown", 0) in CASE_COLOURS and arch_dash("unknown") == "solid"
    assert arch_order(["x", REFERENCE, *reversed(ARCH_KEYS)]) == [*ARCH_KEYS, REFERENCE, "x"]


def test_style_escapes_user_text_and_builds_rgba():
    from engine.figures.style import case_colour, fmt_dose, rgba, safe

    assert safe("<b>P&1</b>") == "&lt;b&gt;P&amp;1&lt;/b&gt;"
    assert safe('say "hi"') == 'say "hi"'  # quotes are fine inside plotly labels
    assert rgba("#0072B2", 0.5) == "rgba(0,114,178,0.5)"
    assert fmt_dose(3.0) == "3" and fmt_dose(2.75) == "2.75"
    assert case_colour(len(CASE_COLOURS)) == case_colour(0)


def test_base_layout_defaults_and_overrides():
    from engine.figures.style import FONT, base_layout

    fig = go.Figure()
    base_layout(fig, "Title", 420, "rev", subtitle_text="second line",
                margin_px=dict(t=96), legend_y=-0.2)
    layout = fig.layout
    assert layout.height == 420 and layout.uirevision == "rev"
    assert layout.font.family == FONT["family"] and layout.title.text == "Title"
    assert layout.title.subtitle.text == "second line"
    assert (layout.margin.l, layout.margin.r, layout.margin.t, layout.margin.b) == (70, 30, 96, 60)
    assert layout.legend.y == -0.2 and layout.legend.orientation == "h"


def test_sf2_figures_escape_sample_ids_in_the_shared_style():
    from engine.figures.style import FONT
    from engine.sf2.figures import (
        gene_influence_figure,
        influence_heatmap_figure,
        sf2_population_figure,
    )

    reference = pd.DataFrame({"sf2": np.linspace(0.2, 0.9, 30)},
                             index=[f"L{i}" for i in range(30)])
    sid = "<img src=x>"
    pop = sf2_population_figure(reference, sample_id=sid, sf2=0.5, sf2_sd=0.05,
                                subgroup_ids=["L1", "L2", "missing"], subgroup_label="tissue: <i>",
                                measured_sf2=0.45)
    texts = [pop.layout.title.text, *(t.name for t in pop.data)]
    assert not any("<img" in t or "<i>" in t for t in texts)
    assert any("&lt;img src=x&gt;" in t for t in texts)
    assert pop.layout.font.family == FONT["family"] and pop.layout.legend.y == -0.3
    top = [{"gene": "G1", "influence_per_sd": 0.01, "z": 1.0},
           {"gene": "G2", "influence_per_sd": -0.02, "z": -0.5}]
    inf = gene_influence_figure(top, sid)
    assert "<img" not in inf.layout.title.text and list(inf.data[0].y) == ["G2", "G1"]
    table = pd.DataFrame({"cell_line": [sid], "subgroup": ["lung"], "predicted_sf2": [0.4],
                          "G1": [0.01]})
    heat = influence_heatmap_figure(table, ["G1"])
    assert heat.data[0].y[0].startswith("&lt;img")
