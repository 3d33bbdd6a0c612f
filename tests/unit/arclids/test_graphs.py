from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from engine.arclids.cohort import generate_cohort
from engine.arclids.graphs import SD_FLOOR, FeatureEncoder, feature_graph
from engine.core.protocols import PROTOCOL_NAMES, load_protocol


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_feature_graph_matches_protocol_dag(name):
    protocol = load_protocol(name)
    graph = feature_graph(protocol)
    n = len(protocol.features)
    assert graph.node_names == protocol.feature_names
    assert graph.n_nodes == n == 13
    assert graph.edge_index.dtype == torch.long
    assert graph.edge_index.shape == (2, 2 * len(protocol.feature_edges()))
    src, dst = graph.edge_index.tolist()
    pairs = set(zip(src, dst, strict=True))
    assert all(a != b for a, b in pairs)  # no self loops
    assert pairs == {(b, a) for a, b in pairs}  # both directions
    index = {f: i for i, f in enumerate(protocol.feature_names)}
    dag = {(index[a], index[b]) for a, b in protocol.feature_edges()}
    assert pairs == dag | {(b, a) for a, b in dag}
    adj = graph.adjacency
    assert adj.shape == (n, n) and adj.dtype == torch.float32
    assert torch.equal(adj, adj.t())
    assert set(adj.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(adj.diagonal() == 0)
    assert {tuple(e) for e in adj.nonzero().tolist()} == pairs


def test_feature_graph_is_cached():
    protocol = load_protocol("nsclc")
    assert feature_graph(protocol) is feature_graph(protocol)
    assert feature_graph(load_protocol("hcc")) is not feature_graph(protocol)


def test_outcome_nodes_are_not_graph_nodes():
    protocol = load_protocol("nsclc")
    graph = feature_graph(protocol)
    assert not set(protocol.outcome_names) & set(graph.node_names)


@pytest.fixture(scope="module")
def nsclc_cases() -> pd.DataFrame:
    return generate_cohort("nsclc", seed=3, n_patients=60).table


def test_encoder_log_transform_and_standardisation(nsclc_cases):
    protocol = load_protocol("nsclc")
    enc = FeatureEncoder(protocol).fit(nsclc_cases)
    assert enc.mean_.shape == enc.sd_.shape == (13,)
    for j, feat in enumerate(protocol.features):
        raw = nsclc_cases[feat.name].to_numpy(dtype=np.float64)
        expected = np.log1p(raw) if feat.scale == "log" else raw
        assert enc.mean_[j] == pytest.approx(expected.mean())
        assert enc.sd_[j] == pytest.approx(expected.std())
    z = enc.transform(nsclc_cases)
    assert z.shape == (60, 13) and z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-4)
    log_features = [f.name for f in protocol.features if f.scale == "log"]
    assert log_features  # the protocol has cytokines on the log scale
    j = protocol.feature_names.index(log_features[0])
    value = nsclc_cases[log_features[0]].to_numpy()[:5]
    np.testing.assert_allclose(
        enc.standardise(log_features[0], value), z[:5, j], rtol=1e-5, atol=1e-5
    )


def test_encoder_linear_override_and_sd_floor(nsclc_cases):
    protocol = load_protocol("nsclc")
    log_name = next(f.name for f in protocol.features if f.scale == "log")
    cases = nsclc_cases.assign(mtv_rd=0.25)  # constant column
    enc = FeatureEncoder(protocol, linear_features=(log_name,)).fit(cases)
    j = protocol.feature_names.index(log_name)
    assert enc.mean_[j] == pytest.approx(cases[log_name].mean())
    k = protocol.feature_names.index("mtv_rd")
    assert enc.sd_[k] == SD_FLOOR
    assert np.all(np.isfinite(enc.transform(cases)))


def test_encoder_state_round_trip(nsclc_cases):
    protocol = load_protocol("nsclc")
    enc = FeatureEncoder(protocol).fit(nsclc_cases)
    state = enc.state()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    again = FeatureEncoder.from_state(protocol, state)
    np.testing.assert_array_equal(again.transform(nsclc_cases), enc.transform(nsclc_cases))
    with pytest.raises(ValueError, match="13 features"):
        FeatureEncoder.from_state(protocol, {"mean": torch.zeros(3), "sd": torch.ones(3)})


def test_encoder_rejects_missing_values_naming_the_column(nsclc_cases):
    protocol = load_protocol("nsclc")
    enc = FeatureEncoder(protocol).fit(nsclc_cases)
    bad = nsclc_cases.copy()
    bad.loc[bad.index[0], "il6_pre_pg_ml"] = np.nan
    with pytest.raises(ValueError, match="il6_pre_pg_ml"):
        enc.transform(bad)
    with pytest.raises(KeyError, match="hgf_pre_pg_ml"):
        enc.transform(nsclc_cases.drop(columns="hgf_pre_pg_ml"))
