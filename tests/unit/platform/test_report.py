"""The self-contained HTML report (engine/platform/report.py +
engine/platform/templates/report.html)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape
from plotly.offline import get_plotlyjs

from engine.arclids.outcomes import OutcomeCurves
from engine.arclids.recommend import Recommendation, recommend
from engine.core.protocols import Protocol, load_protocol
from engine.platform.report import DISCLAIMER, render_report, report_filename

EVIL = "<script>alert(1)</script>"


class CurveModel:
    """Logistic TCP/NTCP curves over the dose grid, one ensemble member."""

    name = "curves"
    label = "hand-made curves"
    version = "test-7"

    def predict_curves(self, cases: pd.DataFrame, protocol: Protocol) -> OutcomeCurves:
        doses = protocol.dose_grid()
        g = np.linspace(0.0, 1.0, len(doses))[None, None, :]  # [1, 1, D]
        shift = np.arange(len(cases))[None, :, None] * 0.1  # [1, P, 1]
        tcp = 1.0 / (1.0 + np.exp(-(g - 0.3 - shift) / 0.15))
        ntcp = 1.0 / (1.0 + np.exp(-(g - 0.8 + shift / 2) / 0.12))
        return OutcomeCurves(doses_gy=doses, tcp=tcp, ntcp=ntcp)


def _cases(protocol: Protocol, ids: list[str]) -> pd.DataFrame:
    rows = []
    for i, pid in enumerate(ids):
        row: dict[str, object] = {"patient_id": pid}
        for feat in protocol.features:
            mid = (feat.min + feat.max) / 2
            row[feat.name] = round(mid) if feat.integer else mid * (1 + 0.05 * i)
        row["dose_eval_gy"] = 2.2 + 0.1 * i
        rows.append(row)
    return pd.DataFrame(rows)


class _Links(HTMLParser):
    """Collects src/href attributes of real elements (script bodies are data, not tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts_with_src: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "data", "action", "poster") and value:
                self.urls.append(value)
            if tag == "script" and name == "src":
                self.scripts_with_src.append(value or "")


@pytest.fixture(scope="module")
def protocol() -> Protocol:
    return load_protocol("nsclc")


@pytest.fixture(scope="module")
def cases(protocol: Protocol) -> pd.DataFrame:
    return _cases(protocol, ["P-001", EVIL])


@pytest.fixture(scope="module")
def recs(protocol: Protocol, cases: pd.DataFrame) -> list[Recommendation]:
    return recommend(cases, protocol, CurveModel())


@pytest.fixture(scope="module")
def population(protocol: Protocol) -> pd.DataFrame:
    return pd.concat([_cases(protocol, [f"POP-{i}"]) for i in range(30)], ignore_index=True)


@pytest.fixture(scope="module")
def html(recs, cases, protocol, population) -> str:
    return render_report(
        recs, cases, protocol,
        population=population,
        notes={"P-001": f"Discussed at tumour board.\n{EVIL}", EVIL: "note for the odd id"},
        generated_at=datetime(2024, 5, 6, 7, 8, tzinfo=UTC),
    )


def test_report_is_one_html_document(html):
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert html.count("<html") == 1 and html.rstrip().endswith("</html>")


def test_plotly_is_inlined_exactly_once(html):
    assert html.count(get_plotlyjs()) == 1
    assert html.count("plotly.js v") == 1
    assert html.count('class="plotly-graph-div"') == 3  # outcome space, dose response, population


def test_no_external_urls(html):
    parser = _Links()
    parser.feed(html)
    assert parser.scripts_with_src == []  # nothing loaded from a file or the web
    assert not [u for u in parser.urls if re.match(r"\s*(https?:)?//", u, flags=re.I)]
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""",
                         html.replace(get_plotlyjs(), ""), flags=re.I)
    # Outside the plotly.js library text there is no web address at all (no CDN, no fonts).
    outside = html.replace(get_plotlyjs(), "")
    assert "http://" not in outside and "https://" not in outside
    assert "@import" not in outside and "@font-face" not in outside


def test_report_contains_recommendation_summary(html, recs):
    for rec in recs:
        assert f'<td class="num dose">{rec.recommended_dose_gy:g}</td>' in html
        assert f"{100 * rec.recommended_tcp:.1f} %" in html
        assert f"{100 * rec.recommended_ntcp:.1f} %" in html
        assert rec.input_hash in html
    assert "Evaluation dose" in html and "Goal met" in html


def test_report_names_model_version_time_and_disclaimer(html):
    assert "hand-made curves" in html and "test-7" in html
    assert "2024-05-06 07:08 UTC" in html
    assert str(escape(DISCLAIMER)) in html
    assert "not clinical evidence" in html.lower()


def test_report_escapes_notes_and_patient_ids(html):
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Discussed at tumour board." in html
    # The only script elements are plotly's config, plotly.js and the figure calls.
    assert "alert(1)</script>" not in html


def test_report_lists_inputs_with_units(html, protocol, cases):
    for feat in protocol.features:
        assert feat.label in html
    assert "pg/mL" in html
    assert f"{cases.loc[0, 'il6_pre_pg_ml']:.4g}" in html


def test_report_has_print_stylesheet(html):
    assert "@media print" in html
    assert "@page" in html


def test_report_without_population_or_notes(recs, cases, protocol):
    html = render_report(recs, cases, protocol, population=None)
    assert html.count('class="plotly-graph-div"') == 2
    assert "No notes." in html
    assert html.count(get_plotlyjs()) == 1


def test_report_with_no_cases(protocol):
    html = render_report([], pd.DataFrame(), protocol, population=None)
    assert "No cases were selected." in html
    assert str(escape(DISCLAIMER)) in html


def test_report_filename_has_no_patient_ids(protocol):
    assert report_filename(protocol) == "artds-report-nsclc.html"


class EnsembleCurveModel(CurveModel):
    """Three members that disagree a little (an ensemble with spread)."""

    label = "hand-made ensemble"
    version = "test-ens-3"

    def predict_curves(self, cases: pd.DataFrame, protocol: Protocol) -> OutcomeCurves:
        one = super().predict_curves(cases, protocol)
        k = np.array([-1.0, 0.0, 1.0])[:, None, None]  # [M, 1, 1]
        return OutcomeCurves(
            doses_gy=one.doses_gy,
            tcp=np.clip(one.tcp + 0.03 * k, 0, 1),
            ntcp=np.clip(one.ntcp + 0.02 * k * (k > 0), 0, 1),
        )


def test_report_names_the_model_and_its_ensemble_size(html, protocol, cases):
    assert "a single model (no ensemble spread)" in html
    recs = recommend(cases, protocol, EnsembleCurveModel())
    assert recs[0].n_members == 3
    ensemble = render_report(recs, cases, protocol, population=None)
    assert "hand-made ensemble" in ensemble and "test-ens-3" in ensemble
    assert "ensemble of 3 members" in ensemble
    # an ensemble that states no level: its spread is named for what it is
    assert 'the <span class="interval-level">members&#39; min–max</span> of TCP and NTCP' in (
        ensemble)
    # The figures carry the interval ellipses and bands, still offline.
    assert '"meta":"ellipse"' in ensemble and '"meta":"band"' in ensemble
    assert '"meta":"ellipse"' not in html and '"meta":"band"' not in html
    assert ensemble.count(get_plotlyjs()) == 1


def test_report_shows_the_decision_maker_or_why_not(recs, cases, protocol):
    from dataclasses import replace

    odm_recs = [replace(r, recommender="odm", recommender_note=None, odm_version="odm-test-1",
                        recommended_dose_gy=2.37, recommended_dose_sem_gy=0.12, q_value=1.5,
                        member_doses_gy=[2.2, 2.4, 2.5]) for r in recs]
    html = render_report(odm_recs, cases, protocol, population=None)
    assert "Double-DQN decision maker" in html and "odm-test-1" in html
    assert ">2.37<" in html and ">0.12<" in html and ">1.50<" in html
    assert "Exact reward argmax" in html
    # the SEM and the q-value are labelled as what they are, never as a confidence
    assert ("SEM (Gy/fx): the decision maker&#39;s fitting noise, not the outcome models&#39; "
            "uncertainty") in html
    assert "q-value: the members' predicted reward (0–3, with goal bonuses)" in html
    assert "confiden" not in html.replace(get_plotlyjs(), "").lower()
    plain = render_report(recs, cases, protocol, population=None)
    assert "Double-DQN decision maker" not in plain
    assert "exact reward argmax" in plain and recs[0].recommender_note in plain


class CalibratedCurveModel(EnsembleCurveModel):
    """Three members with a stated 80 % interval (as a calibrated ensemble gives); the second
    case is toxic at its best dose."""

    label = "hand-made calibrated ensemble"
    version = "test-cal-3"

    def predict_curves(self, cases: pd.DataFrame, protocol: Protocol) -> OutcomeCurves:
        c = super().predict_curves(cases, protocol)
        tcp, ntcp = c.tcp.mean(axis=0), c.ntcp.mean(axis=0)
        return OutcomeCurves(doses_gy=c.doses_gy, tcp=c.tcp, ntcp=c.ntcp, interval_level=0.8,
                             tcp_lo=np.clip(tcp - 0.1, 0, 1), tcp_hi=np.clip(tcp + 0.1, 0, 1),
                             ntcp_lo=np.clip(ntcp - 0.05, 0, 1),
                             ntcp_hi=np.clip(ntcp + 0.05, 0, 1))


def test_report_prints_intervals_caution_and_the_proposal(protocol, cases):
    from dataclasses import replace

    proposed = cases.assign(proposed_dose_adapt_gy=[2.0, np.nan])
    recs = recommend(proposed, protocol, CalibratedCurveModel())
    recs[1] = replace(recs[1], caution="NTCP 60% at this dose exceeds the default goal's limit")
    html = render_report(recs, proposed, protocol, population=None)
    body = html.replace(get_plotlyjs(), "")
    rec, prop = recs[0], recs[0].proposal
    lo, hi = rec.recommended_tcp_interval
    assert (f'{100 * rec.recommended_tcp:.1f} %<span class="interval">80 % interval '
            f"{100 * lo:.1f}–{100 * hi:.1f} %</span>") in body
    assert "Best dose, 80 % interval (from the outcome models&#39; uncertainty)" in body
    d_lo, d_hi = rec.dose_interval_gy
    assert f"{round(d_lo, 2):g}–{round(d_hi, 2):g} Gy/fx" in body
    assert "Predicted reward (0–3, with goal bonuses)" in body
    assert f'<td class="num reward">{rec.recommended_reward:.2f}</td>' in body
    assert 'the <span class="interval-level">80 % interval</span> of TCP and NTCP' in body
    # the caution is visible, in its own row, with the case escaped
    assert '<tr class="caution">' in body
    assert "Caution (&lt;script&gt;alert(1)&lt;/script&gt;):" in body
    assert "exceeds the default goal&#39;s limit" in body
    # the proposal beside the recommendation, for the one case that has one
    assert body.count('<div class="proposal advice-') == 1
    assert "Your proposal compared with the recommendation" in body
    assert f"{100 * prop['tcp']:.1f} %" in body
    assert (f'80 % interval {prop["reward_lo"]:.2f}–{prop["reward_hi"]:.2f}</span>') in body
    assert f'<strong class="p-better">{prop["p_recommended_better"]:.2f}</strong>' in body
    assert f'<strong class="advice">{prop["advice"]}</strong>' in body
    assert f'{round(prop["advised_dose_gy"], 2):g} Gy/fx</strong>' in body
    assert "confiden" not in body.lower()
    # the proposal is listed with the inputs of the printable inputs page too
    from engine.platform.report import render_inputs

    inputs = render_inputs(proposed, protocol)
    assert "Proposed adaptive dose per fraction" in inputs and ">2.0<" not in inputs
    assert ">2<" in inputs and ">unknown<" in inputs


def test_report_without_a_proposal_has_no_comparison(html):
    assert "Your proposal compared" not in html and '<tr class="caution">' not in html


@pytest.fixture(scope="module")
def plan():
    """The thorax phantom's import, its heart renamed to markup (names come from the user's
    files and must be escaped)."""
    from engine.dvh import import_plan
    from tests.unit.dvh.helpers import edit, named, thorax_files

    files = named(thorax_files())

    def rename(ds):
        for roi in ds.StructureSetROISequence:
            if roi.ROIName == "Heart":
                roi.ROIName = "<b>Heart</b>"

    files["rtstruct"] = ("RS.dcm", edit(files["rtstruct"][1], rename))
    return import_plan("nsclc", **files, structures={"heart": "<b>Heart</b>"})


def test_report_carries_a_cases_plan_its_dvhs_and_constraints(recs, cases, protocol, plan):
    html = render_report(recs, cases, protocol, population=None, plans={"P-001": plan})
    section = html[html.index('<section id="plans">'):html.index('<section id="notes">')]
    assert "P-001: RD.dcm (RTDOSE), RS.dcm (RTSTRUCT), RP.dcm (RTPLAN)" in section
    assert "The dose covers 30 fractions (RP.dcm NumberOfFractionsPlanned)" in section
    assert 'id="artds-dvh-0"' in section and html.count('class="plotly-graph-div"') == 3
    for f in plan.feature_details:
        assert f"{f.value:.2f} {f.unit}" in section
    assert "gEUD (a = -10) of GTV × 20/30 fractions" in section
    for c in plan.constraints:
        row = c.display()
        assert str(escape(row["constraint"])) in section
        assert str(escape(row["source"])) in section
        assert f'<tr class="{row["status"].replace(" ", "-")}">' in section
    assert "<b>Heart</b>" not in html and "&lt;b&gt;Heart&lt;/b&gt;" in section
    # only cases that have a plan get one, and none without plans
    assert render_report(recs, cases, protocol, population=None,
                         plans={"someone else": plan}).count('id="plans"') == 0
    assert 'id="plans"' not in render_report(recs, cases, protocol, population=None)


def test_report_shows_the_fresh_cohort_track_record_or_that_none_is_known(recs, cases, protocol):
    """Beside the recommendation, how its policy did on a fresh virtual cohort against the
    clinicians' rule and one dose for everyone — or, for a model no saved evaluation measured
    (the hand-made curves here), that this is not known."""
    def row(loss: float) -> dict:
        return {"true_reward_loss": loss}

    summary = {"architectures": {"curves": {
        "rtoe_version": CurveModel.version, "odm_version": None, "stale": False,
        "fresh_cohort": {"n_cases": 2000, "regret": {
            "exact_argmax": row(0.31), "historic": row(0.27), "best_constant_dose": row(0.41),
            "served": row(0.36), "best_constant_dose_gy": 3.5}}}}}
    html = render_report(recs, cases, protocol, population=None, odm_summary=summary)
    record = re.search(r'class="meta track-record">(.*?)</p>', html, re.S).group(1)
    assert "2,000 simulated patients never trained on" in record
    assert "the recommendation 0.31" in record and "clinicians 0.27" in record
    assert "one dose for everyone (3.5 Gy/fx) 0.41" in record
    assert "<strong>The virtual trial&#39;s clinicians did best there" in record
    other = {"architectures": {"curves": summary["architectures"]["curves"]
                               | {"rtoe_version": "another"}}}
    html = render_report(recs, cases, protocol, population=None, odm_summary=other)
    assert "how its recommendations compare with the clinicians&#39; rule is not known" in html


def test_report_prints_how_good_the_models_probabilities_are(recs, cases, protocol):
    text = "Brier score on a fresh virtual cohort … TCP 0.244 vs 0.209 (worse) <b>"
    html = render_report(recs, cases, protocol, population=None, probability_quality=text)
    assert re.search(r'class="meta probability-quality">Brier score on a fresh virtual cohort '
                     r'… TCP 0.244 vs 0.209 \(worse\) &lt;b&gt;</p>', html)
    assert 'class="meta probability-quality"' not in render_report(
        recs, cases, protocol, population=None)
