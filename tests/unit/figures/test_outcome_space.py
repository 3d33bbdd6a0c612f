"""The outcome space (engine/figures/outcome_space.py) on hand-made outcome curves: the reward
landscape, one curve per case, the recommended and selected doses, the interval ellipses, and
the decision maker's dose."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from engine.arclids.arte import reward
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
    interval_label,
)
from tests.unit.figures.helpers import CurveModel, make_cases, traces


def _case_curves(fig: go.Figure) -> list:
    return [t for t in fig.data if t.type == "scatter" and t.mode == "lines+markers"]


def test_outcome_space_draws_reward_landscape_with_goal_steps(nsclc, recs):
    fig = outcome_space_figure(recs, nsclc)
    (contour,) = traces(fig, "contour")
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
    assert len(traces(fig, "contour")) == 1
    assert any("No cases" in a.text for a in fig.layout.annotations)


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
