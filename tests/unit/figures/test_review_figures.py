"""The Model review's figures of issue #12 on small synthetic payloads: the regret of the
recommendation against the clinician, the regret learning curve, the reliability diagram and the
interval coverage; and that each tolerates an evaluation saved before its fields existed."""

from __future__ import annotations

import numpy as np
import pytest

from engine.arclids.odm_eval import REGRET_POLICIES, missing_regret_policies
from engine.arclids.outcomes import OutcomeCurves
from engine.core.protocols import Protocol, load_protocol
from engine.figures.model_review import (
    COVERAGE_TOLERANCE,
    architecture_contrast_figure,
    interval_coverage_figure,
    learning_curve_figure,
    reliability_figure,
    roc_figure,
)
from engine.figures.odm_review import (
    FRESH_COHORT_NOTE,
    LOSS_TITLE,
    regret_figure,
    regret_learning_curve_figure,
)
from engine.figures.style import ARCH_COLOURS, CASE_COLOURS
from tests.unit.figures.helpers import make_cases


def _row(loss: float, **extra: float) -> dict:
    return {"true_reward_loss": loss, "dose_abs_error_gy": 2 * loss, "true_reward_mean": 2 - loss,
            **extra}


def _regret(base: float, constant: float | None = 3.1) -> dict:
    reg = {"historic": _row(0.26), "served": _row(base), "exact_argmax": _row(base + 0.02),
           "advised": _row(0.24, change_share=0.3), "best_constant_dose": _row(0.25),
           "odm_mean_dose": _row(base), "n_cases": 10}
    if constant is not None:
        reg["best_constant_dose_gy"] = constant
    return reg


def _odm_summary() -> dict:
    """Two architectures; the trial flatters them (lower loss than on the fresh cohort)."""
    def arch(fresh_loss: float) -> dict:
        return {"n_cases": 67, "regret": _regret(fresh_loss - 0.1),
                "fresh_cohort": {"n_cases": 2000, "regret": _regret(fresh_loss)}}
    return {"protocol": "nsclc", "architectures": {"single": arch(0.35), "glogd": arch(0.31)}}


def _bars(fig) -> dict[tuple[str, str], float]:
    """(row label, x axis) → the bar's loss."""
    return {(t.y[0], t.xaxis): t.x[0] for t in fig.data if t.type == "bar"}


def test_regret_figure_puts_the_fresh_cohort_beside_the_trial():
    fig = regret_figure(_odm_summary())
    bars = _bars(fig)
    # left (x): the fresh cohort; right (x2): the training trial
    assert bars[("GLoGD-GNN: served recommendation", "x")] == 0.31
    assert bars[("GLoGD-GNN: served recommendation", "x2")] == pytest.approx(0.21)
    assert bars[("Single-GNN: served recommendation", "x")] == 0.35
    assert bars[("historic clinicians", "x")] == 0.26
    assert bars[("best constant dose (3.1 Gy/fx)", "x")] == 0.25
    assert bars[("GLoGD-GNN: advised dose", "x")] == 0.24
    assert bars[("GLoGD-GNN: exact argmax of the model", "x")] == pytest.approx(0.33)
    # the clinicians and the constant dose once per cohort, each model row once per cohort
    assert len(bars) == 2 * (2 + 2 * 3) and len(fig.data) == len(bars)
    assert {t.meta for t in fig.data} == set(REGRET_POLICIES)
    # rows top to bottom: the clinicians, the constant dose, then the served architecture first
    rows = list(fig.layout.yaxis.categoryarray)
    assert rows[:3] == ["historic clinicians", "best constant dose (3.1 Gy/fx)",
                        "GLoGD-GNN: served recommendation"]
    assert fig.layout.yaxis.autorange == "reversed"
    served = next(t for t in fig.data if t.y[0] == "GLoGD-GNN: served recommendation")
    assert served.marker.line.color == ARCH_COLOURS["glogd"]
    advised = next(t for t in fig.data if t.meta == "advised" and t.xaxis == "x")
    assert advised.marker.pattern.shape == "/" and "change: 30% of cases" in advised.hovertemplate
    # labels say what the numbers are, and where they were measured
    assert fig.layout.title.text == LOSS_TITLE == "True-reward loss vs oracle (lower is better)"
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0] == f"{FRESH_COHORT_NOTE}, 2,000 cases"
    assert titles[1] == "training trial (trained on), 67 cases"
    assert "p_recommended_better" in fig.layout.title.subtitle.text
    assert fig.layout.xaxis.range == fig.layout.xaxis2.range  # one scale for both cohorts


def test_regret_figure_of_an_evaluation_saved_before_the_new_rows():
    summary = _odm_summary()
    for m in summary["architectures"].values():
        for reg in (m["regret"], m["fresh_cohort"]["regret"]):
            for key in ("advised", "best_constant_dose", "best_constant_dose_gy"):
                del reg[key]
    assert missing_regret_policies(summary) == ["best_constant_dose", "advised"]
    assert missing_regret_policies(_odm_summary()) == []
    fig = regret_figure(summary)
    assert {t.meta for t in fig.data} == {"served", "historic", "exact_argmax"}
    assert len(fig.data) == 2 * (1 + 2 * 2)
    empty = regret_figure({"architectures": {}})
    assert not empty.data and any("No regret rows" in a.text for a in empty.layout.annotations)
    assert missing_regret_policies({"architectures": {}}) == []


def test_regret_learning_curve_figure():
    rows = [{"arch": "glogd", "n_train_patients": n, "n_members": 5,
             "best_constant_dose_gy": 3.0 + 0.1 * i,
             "learned_exact_argmax": _row(loss), "historic": _row(0.27),
             "best_constant_dose": _row(0.25)}
            for i, (n, loss) in enumerate(((1000, 0.2), (67, 0.33), (200, 0.28)))]
    fig = regret_learning_curve_figure(rows)
    lines = {t.meta: t for t in fig.data}
    assert set(lines) == {"learned_exact_argmax", "historic", "best_constant_dose"}
    learned = lines["learned_exact_argmax"]
    assert list(learned.x) == [67, 200, 1000] and list(learned.y) == [0.33, 0.28, 0.2]
    assert learned.line.color == ARCH_COLOURS["glogd"] and learned.name.startswith("GLoGD-GNN")
    assert list(lines["historic"].y) == [0.27] * 3
    assert list(lines["best_constant_dose"].customdata[0]) == [0.5, 3.1]  # 67 patients: 2nd row
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == [67, 200, 1000]
    assert "lower is better" in fig.layout.title.text
    assert FRESH_COHORT_NOTE in fig.layout.title.subtitle.text
    empty = regret_learning_curve_figure([])
    assert not empty.data and any("No regret learning curve" in a.text
                                  for a in empty.layout.annotations)


def _calibration(shift: float, coverage: float, level: float | None = 0.8) -> dict:
    bins = [{"bin_lo": b / 10, "bin_hi": (b + 1) / 10, "mean_predicted": b / 10 + 0.05,
             "observed_rate": b / 10 + 0.05 - shift + 0.01, "mean_true": b / 10 + 0.05 - shift,
             "n": 10 + b} for b in range(3, 7)]
    return {"citl": shift, "ece": abs(shift), "reliability": bins, "interval_level": level,
            "interval_coverage_truth": coverage, "interval_width_mean": 0.2}


def _rtoe_summary() -> dict:
    return {"architectures": {
        "single": {"tcp": {"calibration": _calibration(0.1, 0.5)},
                   "ntcp": {"calibration": _calibration(0.2, 0.4)}},
        "glogd": {"tcp": {"calibration": _calibration(0.01, 0.78),
                          "calibrator": {"method": "none"}},
                  "ntcp": {"calibration": _calibration(-0.02, 0.83),
                           "calibrator": {"method": "platt-reference-dose"}}},
        # an evaluation saved before calibration was measured: left out, not an error
        "logistic": {"tcp": {"calibration": None}, "ntcp": {}},
    }}


def test_reliability_figure_against_outcomes_and_truth(nsclc):
    fig = reliability_figure(_rtoe_summary(), nsclc)
    observed = [t for t in fig.data if t.meta == "observed"]
    true = [t for t in fig.data if t.meta == "true"]
    assert len(observed) == len(true) == 4  # 2 architectures × 2 outcomes
    glogd_tcp = next(t for t in observed if t.name.startswith("GLoGD") and t.xaxis == "x")
    assert list(glogd_tcp.x) == pytest.approx([0.35, 0.45, 0.55, 0.65])
    assert list(glogd_tcp.y) == pytest.approx([0.35, 0.45, 0.55, 0.65])
    assert list(glogd_tcp.customdata) == [13, 14, 15, 16]
    assert glogd_tcp.name == "GLoGD-GNN (as trained; calibration in the large +0.010)"
    glogd_ntcp = next(t for t in observed if t.name.startswith("GLoGD") and t.xaxis == "x2")
    assert glogd_ntcp.name.startswith("GLoGD-GNN (Platt at the reference dose; ")
    single_tcp = next(t for t in observed if t.name.startswith("Single") and t.xaxis == "x")
    assert single_tcp.name == "Single-GNN (calibration in the large +0.100)"  # map not recorded
    single_ntcp = next(t for t in true if t.name.startswith("Single") and t.xaxis == "x2")
    assert np.allclose(np.asarray(single_ntcp.x) - np.asarray(single_ntcp.y), 0.2)
    assert single_ntcp.line.dash == "dot"
    diagonals = [t for t in fig.data if t.name == "calibrated (diagonal)"]
    assert len(diagonals) == 2 and list(diagonals[0].x) == [0, 1] == list(diagonals[0].y)
    assert not any("Logistic" in (t.name or "") for t in fig.data)
    assert "fresh virtual cohort (never trained on)" in fig.layout.title.subtitle.text
    empty = reliability_figure({"architectures": {"glogd": {"tcp": {"calibration": None}}}},
                               nsclc)
    assert any("No calibration metrics" in a.text for a in empty.layout.annotations)


def test_interval_coverage_figure_states_the_level(nsclc):
    fig = interval_coverage_figure(_rtoe_summary(), nsclc)
    bars = {t.meta: t for t in fig.data}
    assert set(bars) == {"tcp", "ntcp"}
    assert list(bars["tcp"].x) == ["GLoGD-GNN", "Single-GNN"]
    assert list(bars["tcp"].y) == [0.78, 0.5] and list(bars["ntcp"].y) == [0.83, 0.4]
    assert list(bars["tcp"].text) == ["78%", "50%"]
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    bands = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(lines) == 1 and lines[0].y0 == lines[0].y1 == 0.8
    assert len(bands) == 1 and (bands[0].y0, bands[0].y1) == pytest.approx(
        (0.8 - COVERAGE_TOLERANCE, 0.8 + COVERAGE_TOLERANCE))
    assert "80%" in fig.layout.title.subtitle.text
    assert any("stated level 80%" in a.text for a in fig.layout.annotations)
    empty = interval_coverage_figure({"architectures": {}}, nsclc)
    assert not empty.data and not empty.layout.shapes
    assert any("No interval coverage" in a.text for a in empty.layout.annotations)


def _roc(points: list[tuple[float, float]]) -> dict[str, list[float]]:
    return {"fpr": [p[0] for p in points], "tpr": [p[1] for p in points]}


@pytest.fixture(scope="module")
def payload(nsclc: Protocol) -> dict:
    good = [_roc([(0, 0), (0, 0.5), (0.2, 0.8), (1, 1)]), _roc([(0, 0), (0.1, 0.6), (1, 1)])]
    chance = [_roc([(0, 0), (0.5, 0.5), (1, 1)])] * 2
    def result(roc, mean, sd, n_events=40):
        return {"roc": roc, "cv_auroc_mean": mean, "cv_auroc_sd": sd, "n_cases": 67,
                "n_events": n_events}
    return {"architectures": {
        "single": {nsclc.target.outcome: result(chance, 0.5, 0.0),
                   nsclc.oar.outcome: result(good, 0.81, 0.04, 16)},
        "glogd": {nsclc.target.outcome: result(good, 0.84, 0.05),
                  nsclc.oar.outcome: result([], None, None, 1)},
    }}


def test_roc_figure_splits_means_chance_and_auroc_legend(nsclc, payload):
    fig = roc_figure(payload, nsclc)
    means = [t for t in fig.data if t.meta == "mean"]
    splits = [t for t in fig.data if t.meta == "split"]
    assert len(means) == len(splits) == 3  # glogd has no ROC for the NTCP outcome
    names = [t.name for t in means]
    assert "GLoGD-GNN: AUROC 0.84 ± 0.05" in names
    assert "Single-GNN: AUROC 0.81 ± 0.04" in names
    assert all(t.showlegend is not False for t in means)
    assert all(t.showlegend is False for t in splits)
    # Mean curves on a common grid, from (0, 0) to (1, 1), never decreasing.
    for t in means:
        x, y = np.asarray(t.x), np.asarray(t.y)
        assert x[0] == 0.0 and x[-1] == 1.0 and y[0] == 0.0 and y[-1] == pytest.approx(1.0)
        assert np.all(np.diff(y) >= -1e-12)
    glogd_tcp = next(t for t in means if t.name.startswith("GLoGD") and t.xaxis == "x")
    assert np.interp(0.2, glogd_tcp.x, glogd_tcp.y) == pytest.approx((0.8 + 0.6 + 0.4 / 9) / 2)
    diagonals = [t for t in fig.data if t.name.startswith("chance")]
    assert len(diagonals) == 2 and list(diagonals[0].x) == [0, 1]
    assert {t.legend for t in means} == {"legend", "legend2"}  # one legend per outcome
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "No ROC curve" not in texts
    assert "not clinical evidence" in fig.layout.title.subtitle.text


def test_roc_figure_says_when_an_outcome_could_not_be_scored(nsclc, payload):
    only_glogd = {"architectures": {"glogd": payload["architectures"]["glogd"]}}
    fig = roc_figure(only_glogd, nsclc)
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "No ROC curve" in texts and "1 of 67" in texts
    assert any("No evaluation" in a.text for a in roc_figure({}, nsclc).layout.annotations)


def test_learning_curve_figure(nsclc):
    rows = [
        {"arch": arch, "outcome": outcome, "n_train_patients": n,
         "auroc_vs_truth": 0.6 + 0.01 * i, "auroc_bayes_ceiling": 0.78, "gap_to_ceiling": 0.1}
        for arch in ("glogd", "single")
        for outcome in (nsclc.target.outcome, nsclc.oar.outcome)
        for i, n in enumerate((67, 200, 1000))
    ]
    fig = learning_curve_figure(rows, nsclc)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(lines) == 4  # 2 architectures × 2 outcomes
    assert list(lines[0].x) == [67, 200, 1000]
    ceilings = [t for t in fig.data if t.name.startswith("Bayes ceiling")]
    assert len(ceilings) == 2 and all(t.line.dash == "dash" for t in ceilings)
    assert list(ceilings[0].y) == [0.78, 0.78, 0.78]
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("TCP") and titles[1].startswith("NTCP")
    assert fig.layout.xaxis.type == "log"
    empty = learning_curve_figure([])
    assert any("No learning curve" in a.text for a in empty.layout.annotations)


def test_architecture_contrast_marks_where_single_gnn_falls(nsclc):
    doses = nsclc.dose_grid()
    d = len(doses)
    rising = np.linspace(0.2, 0.8, d)[None, None, :].repeat(2, axis=1)  # [1, 2, D]
    wiggly = rising.copy()
    wiggly[0, 1, d // 2] = wiggly[0, 1, d // 2 - 1] - 0.1  # case 2 falls once
    curves = {
        "glogd": OutcomeCurves(doses_gy=doses, tcp=rising, ntcp=rising / 2),
        "single": OutcomeCurves(doses_gy=doses, tcp=wiggly, ntcp=rising / 2),
    }
    fig = architecture_contrast_figure(["P-1", "<b>P-2</b>"], curves, nsclc)
    glogd = [t for t in fig.data if t.meta == "glogd"]
    single = [t for t in fig.data if t.meta == "single"]
    assert len(glogd) == len(single) == 4  # 2 cases × TCP, NTCP
    assert {t.line.dash for t in glogd} != {t.line.dash for t in single}
    assert glogd[0].line.color == CASE_COLOURS[0] and glogd[1].line.color == CASE_COLOURS[1]
    (falls,) = [t for t in fig.data if t.meta == "falls"]
    assert falls.legendgroup == "falls-single" and falls.xaxis == "x"
    assert list(falls.x[:2]) == pytest.approx([doses[d // 2 - 1], doses[d // 2]])
    subtitle = fig.layout.title.subtitle.text
    assert "GLoGD-GNN 0/2 (TCP), 0/2 (NTCP)" in subtitle
    assert "Single-GNN 1/2 (TCP), 0/2 (NTCP)" in subtitle
    names = " ".join(t.name for t in fig.data)
    assert "<b>P-2</b>" not in names and "&lt;b&gt;P-2&lt;/b&gt;" in names


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
