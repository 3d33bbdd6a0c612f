"""The protocols' [plan] sections (engine/core/protocols/plan.py): roles, feature definitions,
constraints with sources, the DVH metric language, and a clear refusal for each bad entry."""

from __future__ import annotations

import copy
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.core.protocols import PROTOCOL_NAMES, PROTOCOLS_DIR, load_protocol, protocol_from_dict
from engine.core.protocols.plan import parse_metric


def raw(name: str) -> dict:
    return tomllib.loads((PROTOCOLS_DIR / f"{name}.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_every_dosimetric_feature_is_defined_as_the_outcome_model_uses_it(name):
    p = load_protocol(name)
    spec = p.plan
    assert spec is not None
    dosimetric = {f.name for f in p.features if f.role == "dosimetric"}
    assert {f.feature for f in spec.features if f.quantity == "geud"} == dosimetric
    for structure in (p.target, p.oar):
        entry = next(f for f in spec.features if f.feature == structure.geud_feature)
        assert entry.geud_a == structure.geud_a and entry.phase == "evaluation"
        assert spec.role(entry.role).alpha_beta_gy == structure.alpha_beta_gy
    assert spec.required_roles == tuple(f.role for f in spec.features if f.quantity == "geud")
    for c in spec.constraints:
        assert c.role in spec.role_names and c.source.strip()
        assert "2010" in c.source  # QUANTEC and TG-101 were published in 2010


def test_nsclc_features_and_constraints():
    spec = load_protocol("nsclc").plan
    tumour = spec.role("tumour")
    lung = spec.role("lung")
    assert tumour.names[0] == "GTV" and lung.names[0] == "Lungs-GTV"
    assert lung.derive_from[-1] == ("Lung_L", "Lung_R") and lung.derive_minus == ("tumour",)
    v20 = next(c for c in spec.constraints if c.name == "lung_v20")
    assert (v20.metric.text, v20.comparison, v20.limit, v20.unit) == ("V20Gy", "<=", 35.0, "%")
    mld = next(c for c in spec.constraints if c.name == "lung_mean")
    assert (mld.metric.kind, mld.limit) == ("mean", 20.0) and "Marks" in mld.source


def test_hcc_liver_sbrt_constraints_apply_to_their_fractions():
    spec = load_protocol("hcc").plan
    by_name = {c.name: c for c in spec.constraints}
    assert (by_name["liver_mean_3fx"].limit, by_name["liver_mean_3fx"].plan_fractions) == (
        13.0, (3,))
    assert (by_name["liver_mean_6fx"].limit, by_name["liver_mean_6fx"].plan_fractions) == (
        18.0, (6,))
    spared = by_name["liver_spared_700cc"]
    assert (spared.metric.kind, spared.comparison, spared.limit) == ("spared_cc", ">=", 700.0)
    assert all("Pan et al. 2010" in by_name[n].source for n in by_name if n.startswith("liver"))


@pytest.mark.parametrize(("text", "kind", "x", "unit"), [
    ("mean", "mean", None, "Gy"), ("max", "max", None, "Gy"), ("D98%", "dose_at_percent", 98,
                                                                 "Gy"),
    ("D0.03cc", "dose_at_cc", 0.03, "Gy"), ("V20Gy", "volume_percent", 20, "%"),
    ("V5.5Gy_cc", "volume_cc", 5.5, "cm³"), ("CV15Gy", "spared_cc", 15, "cm³"),
])
def test_metric_language(text, kind, x, unit):
    m = parse_metric(text)
    assert (m.kind, m.x, m.unit) == (kind, x, unit)


@given(st.text(max_size=12))
def test_any_other_metric_text_is_refused_with_the_accepted_forms(text):
    try:
        parse_metric(text)
    except ValueError as err:
        assert "accepted" in str(err) or "(0, 100]" in str(err)


@pytest.mark.parametrize("text", ["V20", "D", "Dmean", "V20Gy%", "D101%", "mean dose"])
def test_bad_metrics(text):
    with pytest.raises(ValueError, match="metric"):
        parse_metric(text)


def _refused(name: str, change, match: str) -> None:
    data = copy.deepcopy(raw(name))
    change(data["plan"])
    with pytest.raises(ValueError, match=match):
        protocol_from_dict(data)


def _feature(plan: dict, feature: str) -> dict:
    return next(f for f in plan["features"] if f["feature"] == feature)


def _constraint(plan: dict, name: str) -> dict:
    return next(c for c in plan["constraints"] if c["name"] == name)


def _role(plan: dict, name: str) -> dict:
    return next(r for r in plan["roles"] if r["name"] == name)


@pytest.mark.parametrize(("change", "match"), [
    (lambda p: _feature(p, "tumour_geud_gy").update(geud_a=-5.0),
     r"plan.features\[tumour_geud_gy\].geud_a = -5 differs from tumour.geud_a = -10"),
    (lambda p: _role(p, "lung").update(alpha_beta_gy=3.0),
     r"plan.roles\[lung\].alpha_beta_gy = 3 differs from lung.alpha_beta_gy = 4"),
    (lambda p: p["features"].pop(),
     r"dosimetric feature\(s\) lung_geud_gy of protocol nsclc have no entry"),
    (lambda p: p["features"].append({"feature": "mtv_rd", "role": "tumour", "geud_a": 1.0,
                                     "phase": "plan"}),
     r"plan.features\[mtv_rd\]: not a dosimetric feature"),
    (lambda p: _feature(p, "lung_geud_gy").update(phase="adaptive"),
     r"plan.features\[lung_geud_gy\].phase = 'adaptive'; accepted evaluation, plan"),
    (lambda p: _feature(p, "lung_geud_gy").update(geud_a=0),
     r"geud_a = 0 is undefined"),
    (lambda p: _constraint(p, "lung_v20").update(role="lungs"),
     r"plan.constraints\[lung_v20\].role = 'lungs' is not a role; roles: tumour, lung"),
    (lambda p: _constraint(p, "lung_v20").update(metric="V20"),
     r"plan.constraints\[lung_v20\].metric: metric 'V20' is not understood"),
    (lambda p: _constraint(p, "lung_v20").update(comparison="<"),
     r"plan.constraints\[lung_v20\].comparison = '<'; accepted <=, >="),
    (lambda p: _constraint(p, "lung_v20").update(limit=135.0),
     r"plan.constraints\[lung_v20\].limit = 135.0 is out of range; accepted \[0, 100\]"),
    (lambda p: _constraint(p, "lung_v20").update(dose="bed"),
     r"plan.constraints\[lung_v20\].dose = 'bed'; accepted physical, eqd2"),
    (lambda p: _constraint(p, "lung_v20").update(plan_fractions=[0]),
     r"plan.constraints\[lung_v20\].plan_fractions = 0 is out of range"),
    (lambda p: _constraint(p, "lung_v20").update(source=""),
     r"plan.constraints\[lung_v20\].source = ''; expected non-empty text"),
    (lambda p: _constraint(p, "lung_v20").update(limits=3),
     r"plan.constraints\[0\]: unknown key\(s\) limits"),
    (lambda p: p["constraints"].append(dict(_constraint(p, "lung_v20"))),
     r"plan.constraints: lung_v20 appear\(s\) more than once"),
    (lambda p: _role(p, "tumour").update(alpha_beta_gy=0),
     r"plan.roles\[tumour\].alpha_beta_gy = 0 is out of range"),
    (lambda p: _role(p, "tumour").update(names="GTV"),
     r"plan.roles\[tumour\].names = 'GTV'; expected a list of structure names"),
    (lambda p: _role(p, "lung").update(derive_minus=["heart"]),
     r"plan.roles\[lung\].derive_minus = 'heart': a role may subtract only roles listed"),
    (lambda p: _role(p, "lung").update(derive_minus=["gtv"]),
     r"plan.roles\[lung\].derive_minus names unknown role 'gtv'"),
    (lambda p: p.update(default_alpha_beta_gy=-1),
     r"plan.default_alpha_beta_gy = -1 is out of range"),
    (lambda p: p.update(v_doses_gy=[20, "x"]), r"plan.v_doses_gy = 'x' is out of range"),
    (lambda p: _feature(p, "lung_geud_gy").update(quantity="area"),
     r"plan.features\[lung_geud_gy\].quantity = 'area'; accepted geud, volume_cc"),
    (lambda p: p["features"].append({"feature": "mtv_rd", "role": "tumour",
                                     "quantity": "volume_cc"}),
     r"plan.features\[mtv_rd\]: quantity volume_cc fills a feature in cm³ of protocol nsclc"),
])
def test_a_bad_plan_section_is_refused_naming_the_entry(change, match):
    _refused("nsclc", change, match)


def test_a_protocol_without_plan_section_loads_without_plan():
    data = raw("hcc")
    del data["plan"]
    assert protocol_from_dict(data).plan is None


def test_hcc_fills_the_tumour_volume_from_the_plan():
    spec = load_protocol("hcc").plan
    volume = next(f for f in spec.features if f.feature == "tumour_volume_cc")
    assert (volume.role, volume.quantity, volume.geud_a, volume.phase) == (
        "gtv", "volume_cc", None, None)
    data = copy.deepcopy(raw("hcc"))
    next(f for f in data["plan"]["features"] if f["feature"] == "tumour_volume_cc")[
        "phase"] = "plan"
    with pytest.raises(ValueError, match=r"plan.features\[tumour_volume_cc\]: phase apply to "
                                         r"a gEUD, not to quantity volume_cc"):
        protocol_from_dict(data)
