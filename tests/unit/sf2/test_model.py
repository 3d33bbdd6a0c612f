"""The served ensemble: tiny training run, hash-checked loading, prediction, α, influence."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from engine.core.radiobiology import alpha_from_sf2
from engine.platform import registry
from engine.sf2.data import load_panel, read_expression_upload
from engine.sf2.features import FeatureConfig
from engine.sf2.influence import gene_gradients, influence_map
from engine.sf2.model import DEFAULT_ALPHA_BETA_GY, ServedConfig, load_served_sf2, train_sf2
from engine.sf2.reptile import MLP

ROOT = Path(__file__).resolve().parents[3]
TINY = ServedConfig(n_members=2, n_iterations=5, n_support_draws=2,
                    features=FeatureConfig(n_repeats=1))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    summary = train_sf2(root, TINY)
    assert summary["n_lines"] == 273 and len(summary["genes"]) == 20
    assert summary["files"] == ["sf2/member_0.pt", "sf2/member_1.pt", "sf2/model.json"]
    return root


def test_alpha_from_sf2():
    # α/β = 10: SF2 = exp(-2α - 0.4α) = exp(-2.4α).
    assert DEFAULT_ALPHA_BETA_GY == 10.0
    assert float(alpha_from_sf2(0.5, DEFAULT_ALPHA_BETA_GY)) == pytest.approx(-math.log(0.5) / 2.4)
    alpha = float(alpha_from_sf2(0.3, 3.0))
    beta = alpha / 3.0
    assert math.exp(-2 * alpha - 4 * beta) == pytest.approx(0.3)
    assert np.isnan(alpha_from_sf2([1.0, 1.2, 0.0], DEFAULT_ALPHA_BETA_GY)).all()


def test_load_and_predict_examples(tiny_dir):
    model = load_served_sf2(tiny_dir)
    assert len(model.members) == 2 and len(model.genes) == 20
    assert model.reference.shape[0] == 273
    panel = load_panel()
    up = read_expression_upload(ROOT / "assets/examples/sf2_full_profiles.csv",
                                required_genes=model.genes, panel_genes=panel.genes)
    preds = model.predict_upload(up)
    assert [p.sample_id for p in preds] == list(up.samples.index)
    for p in preds:
        assert 0 < p.sf2 < 1 and p.sf2_sd > 0
        assert p.alpha_per_gy == pytest.approx(float(alpha_from_sf2(p.sf2, p.alpha_beta_gy)))
        assert p.beta_per_gy2 == pytest.approx(p.alpha_per_gy / 10.0)
        assert p.adapted_on["subgroup"] == "tissue: autonomic_ganglia"
        assert p.rsi is not None and p.gard is not None and p.gard_regimen["n_fractions"] == 30
        d = p.to_dict(5)
        assert len(d["top_genes"]) == 5
        mags = [abs(g["influence_per_sd"]) for g in d["top_genes"]]
        assert mags == sorted(mags, reverse=True)
    # Deterministic: the same file gives the same numbers.
    again = model.predict_upload(up)
    assert [p.sf2 for p in again] == [p.sf2 for p in preds]


def test_panel_lines_never_adapt_on_their_own_label(tiny_dir):
    model = load_served_sf2(tiny_dir)
    ref = model.reference
    ids = list(ref.index[ref["lung_histology"] == "large_cell"][:2])
    preds = model.predict_lines(ids)
    for rid, p in zip(ids, preds, strict=True):
        assert ref.loc[rid, "cell_line"] not in p.adapted_on["cell_lines"]
        assert p.adapted_on["n_lines"] == 5  # 6 large-cell lines minus itself
        assert p.measured_sf2 == pytest.approx(ref.loc[rid, "sf2"])


def test_no_tissue_means_no_adaptation(tiny_dir):
    model = load_served_sf2(tiny_dir)
    z = pd.DataFrame(np.zeros((1, 20)), columns=model.genes, index=["anon"])
    samples = pd.DataFrame({"tissue": [""], "histology": [""]}, index=["anon"])
    (p,) = model.predict(z, samples)
    assert p.adapted_on == {"subgroup": "none", "n_lines": 0, "cell_lines": []}
    with torch.no_grad():
        inits = [float(m(model.scale(z.to_numpy()))[0]) for m in model.members]
    assert p.sf2 == pytest.approx(np.mean(inits), abs=1e-6)


def test_tampered_member_is_refused(tiny_dir, tmp_path):
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(tiny_dir, copy)
    (copy / "sf2" / "member_1.pt").write_bytes(b"not a model")
    with pytest.raises(registry.ArtifactError, match="sha256 mismatch"):
        load_served_sf2(copy)


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    net = MLP((4, 8, 1), "relu", "sigmoid")
    params = [p.detach().unsqueeze(0).repeat(2, *([1] * p.dim())) for p in net.parameters()]
    x = torch.rand(2, 4, dtype=torch.float32)
    scale = np.array([2.0, 1.0, 4.0, 0.5])
    g = gene_gradients(params, x, scale)
    eps = 1e-3
    with torch.no_grad():
        for j in range(4):
            up, down = x.clone(), x.clone()
            up[:, j] += eps
            down[:, j] -= eps
            fd = (net(up) - net(down)).numpy() / (2 * eps) / scale[j]
            np.testing.assert_allclose(g[:, j], fd, rtol=2e-2, atol=1e-4)
    z = np.array([[1.0, -2.0, 0.0, 3.0], [0.5, 0.5, 0.5, 0.5]])
    np.testing.assert_allclose(gene_gradients(params, x, scale, z, "gradient_x_input"), g * z)
    with pytest.raises(ValueError, match="method"):
        gene_gradients(params, x, scale, method="shap")


def test_influence_map_sorted_by_subgroup_then_prediction():
    lines = pd.DataFrame({"subgroup": ["b", "a", "a"], "cell_line": ["x", "y", "z"]})
    table = influence_map(np.eye(3), ["G1", "G2", "G3"], lines, np.array([0.2, 0.9, 0.1]))
    assert list(table["cell_line"]) == ["z", "y", "x"]
    assert list(table.columns[-3:]) == ["G1", "G2", "G3"]
