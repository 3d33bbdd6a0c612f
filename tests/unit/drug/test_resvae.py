"""Res-VAE transfer learning: tiny-budget pre-train + fine-tune, determinism, the frozen encoder
really frozen and the VAE never changed, integrated gradients' completeness, artifacts."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from engine.drug.resvae import (
    ResVAE,
    ResVAEClassifier,
    ResVAEConfig,
    _class_weights,
    _kl_per_line,
    _recon_per_line,
    _stratified_split,
)
from engine.drug.resvae_explain import integrated_gradients
from engine.drug.resvae_state import (
    classifier_from_state,
    classifier_to_state,
    vae_from_state,
    vae_to_state,
)
from engine.platform import registry

N_CONT, N_BIN, N_CN = 12, 6, 6
N_FEATURES = N_CONT + N_BIN + N_CN


def _lines(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic lines ``[n, 24]``: 12 expression-like z-scores driven by two factors, 6 binary
    mutation calls, 6 copy numbers around 1; resistance = factor 1 > 0 (with 10 % flipped)."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, 2))
    loadings = rng.normal(size=(2, N_CONT))
    expr = factors @ loadings + 0.3 * rng.normal(size=(n, N_CONT))
    mut = (rng.random((n, N_BIN)) < 0.2).astype(float)
    mut[:, 0] = 1.0  # a column that is 1 everywhere is still binary
    cn = 1.0 + 0.2 * rng.normal(size=(n, N_CN))
    x = np.hstack([expr, mut, cn]).astype(np.float32)
    y = (factors[:, 0] > 0).astype(int)
    flip = rng.random(n) < 0.1
    y[flip] = 1 - y[flip]
    return x, y


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return _lines(120, 0)


@pytest.fixture(scope="module")
def vae(data) -> ResVAE:
    return ResVAE(ResVAEConfig.tiny(), seed=3).fit(data[0])


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- config -------------------------------------------------------------------------------------


def test_config_refuses_bad_fields_by_name_and_round_trips():
    with pytest.raises(ValueError, match=r"ResVAEConfig\.latent_dim = 0"):
        ResVAEConfig(latent_dim=0)
    with pytest.raises(ValueError, match=r"ResVAEConfig\.norm = 'group'"):
        ResVAEConfig(norm="group")
    with pytest.raises(ValueError, match=r"ResVAEConfig\.val_fraction"):
        ResVAEConfig(val_fraction=0.0)
    with pytest.raises(ValueError, match=r"ResVAEConfig\.class_weighting"):
        ResVAEConfig(class_weighting=1)
    tiny = ResVAEConfig.tiny()
    assert ResVAEConfig.from_dict(json.loads(json.dumps(tiny.to_dict()))) == tiny
    with pytest.raises(ValueError, match="unknown ResVAEConfig field"):
        ResVAEConfig.from_dict({**tiny.to_dict(), "epochs": 3})


# --- pre-training -------------------------------------------------------------------------------


def test_pretraining_shapes_standardisation_and_binary_columns(data, vae):
    x, _ = data
    c = ResVAEConfig.tiny()
    assert vae.encode(x).shape == (len(x), c.latent_dim)
    assert vae.reconstruct(x[:5]).shape == (5, N_FEATURES)
    assert len(vae.history_) == c.pretrain_epochs
    expected_binary = np.r_[np.zeros(N_CONT), np.ones(N_BIN), np.zeros(N_CN)].astype(bool)
    np.testing.assert_array_equal(vae.binary_.numpy(), expected_binary)
    # binary columns pass through as 0/1; the others are standardised on the training lines
    np.testing.assert_array_equal(vae.mean_.numpy()[expected_binary], 0.0)
    np.testing.assert_array_equal(vae.scale_.numpy()[expected_binary], 1.0)
    np.testing.assert_allclose(vae.mean_.numpy()[~expected_binary], x.mean(0)[~expected_binary],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vae.scale_.numpy()[~expected_binary], x.std(0)[~expected_binary],
                               rtol=1e-5)
    np.testing.assert_allclose(vae.baseline_.numpy(), x.mean(0), rtol=1e-5, atol=1e-6)
    recon = vae.reconstruct(x)
    assert ((recon[:, expected_binary] >= 0) & (recon[:, expected_binary] <= 1)).all()
    # "mse" reconstructs every column as Gaussian
    mse = ResVAE(dataclasses.replace(ResVAEConfig.tiny(), reconstruction="mse"), 0).fit(x)
    assert not mse.binary_.any()


def test_pretraining_learns_to_reconstruct_held_out_lines():
    x, _ = _lines(200, 1)
    config = dataclasses.replace(ResVAEConfig.tiny(), pretrain_epochs=40, hidden_dim=32)
    vae = ResVAE(config, 0).fit(x[:150])
    untrained = ResVAE(dataclasses.replace(config, pretrain_epochs=1, pretrain_lr=1e-9), 0)
    untrained.fit(x[:150])
    assert vae.history_[-1]["recon"] < 0.7 * vae.history_[0]["recon"]
    assert vae.reconstruction_loss(x[150:]) < 0.8 * untrained.reconstruction_loss(x[150:])
    # KL warm-up: the weight rises to beta over the first quarter and stays there
    weights = [h["kl_weight"] for h in vae.history_]
    assert weights[0] < weights[5] < weights[9] == config.beta == weights[-1]


def test_batchnorm_variant_and_a_last_minibatch_of_one_line(data):
    x, y = data
    config = dataclasses.replace(ResVAEConfig.tiny(), norm="batch", pretrain_batch_size=17)
    vae = ResVAE(config, 0).fit(x[:103])  # 103 = 6 × 17 + 1
    clf = ResVAEClassifier(vae, False, config, 0).fit(x[:103], y[:103])
    p = clf.predict_proba(x[103:])
    assert p.shape == (17,) and np.isfinite(p).all()
    # eval-mode BatchNorm: a line scores the same alone as in a batch
    np.testing.assert_allclose(clf.predict_proba(x[103:104]), p[:1], rtol=1e-5)


def test_pretraining_refuses_bad_input(data):
    x, _ = data
    bad = x.copy()
    bad[4, 7] = np.nan
    with pytest.raises(ValueError, match=r"x\[4, 7\] = nan"):
        ResVAE(ResVAEConfig.tiny(), 0).fit(bad)
    with pytest.raises(ValueError, match="2-D array"):
        ResVAE(ResVAEConfig.tiny(), 0).fit(x[0])
    with pytest.raises(ValueError, match="binary_columns names columns"):
        ResVAE(ResVAEConfig.tiny(), 0).fit(x, binary_columns=np.ones(N_FEATURES, bool))
    with pytest.raises(ValueError, match="ResVAE seed"):
        ResVAE(ResVAEConfig.tiny(), -1)


# --- fine-tuning --------------------------------------------------------------------------------


@pytest.mark.parametrize("freeze", [True, False])
def test_fine_tuning_shapes_and_probabilities(data, vae, freeze):
    x, y = data
    clf = ResVAEClassifier(vae, freeze, ResVAEConfig.tiny(), 0).fit(x[:100], y[:100])
    p = clf.predict_proba(x[100:])
    assert p.shape == (20,) and p.dtype == np.float64
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-clf.decision_function(x[100:]))))
    assert 1 <= clf.best_epoch_ <= clf.n_epochs_ <= ResVAEConfig.tiny().head_max_epochs
    assert clf.early_stopped_ and len(clf.history_) == clf.n_epochs_
    with pytest.raises(ValueError, match="has 23 features; the model was fitted on 24"):
        clf.predict_proba(x[:, :-1])


def test_frozen_encoder_is_really_frozen_and_the_vae_is_never_changed(data, vae):
    x, y = data
    before = _state(vae.encoder_)
    frozen = ResVAEClassifier(vae, True, ResVAEConfig.tiny(), 0).fit(x, y)
    unfrozen = ResVAEClassifier(vae, False, ResVAEConfig.tiny(), 0).fit(x, y)
    assert _same(_state(vae.encoder_), before)
    assert not any(p.requires_grad for p in vae.encoder_.parameters())
    assert _same(_state(frozen.encoder_), before)
    assert frozen.encoder_ is not vae.encoder_ and unfrozen.encoder_ is not vae.encoder_
    assert not _same(_state(unfrozen.encoder_), before)
    # the frozen head sees exactly the VAE's latent means
    with torch.no_grad():
        logits = frozen.head_(torch.from_numpy(vae.encode(x))).numpy()
    np.testing.assert_allclose(frozen.decision_function(x), logits, rtol=1e-5, atol=1e-6)


def test_same_seed_same_predictions_other_seed_other_predictions(data):
    x, y = data
    c = ResVAEConfig.tiny()
    rng_state = torch.get_rng_state()
    a = ResVAE(c, 5).fit(x[:100])
    b = ResVAE(c, 5).fit(x[:100])
    # the caller's global torch RNG is left alone
    assert torch.equal(torch.get_rng_state(), rng_state)
    np.testing.assert_array_equal(a.encode(x), b.encode(x))
    assert not np.array_equal(ResVAE(c, 6).fit(x[:100]).encode(x), a.encode(x))
    for freeze in (True, False):
        p1 = ResVAEClassifier(a, freeze, c, 1).fit(x[:100], y[:100]).predict_proba(x[100:])
        p2 = ResVAEClassifier(b, freeze, c, 1).fit(x[:100], y[:100]).predict_proba(x[100:])
        p3 = ResVAEClassifier(a, freeze, c, 2).fit(x[:100], y[:100]).predict_proba(x[100:])
        np.testing.assert_array_equal(p1, p2)
        assert not np.array_equal(p1, p3)


@pytest.mark.parametrize("freeze", [True, False])
def test_transfer_learns_resistance_carried_by_a_latent_factor(freeze):
    x, y = _lines(300, 2)
    config = dataclasses.replace(ResVAEConfig.tiny(), hidden_dim=32, latent_dim=4,
                                 pretrain_epochs=40, head_max_epochs=200, head_patience=30,
                                 head_lr=1e-2)
    vae = ResVAE(config, 0).fit(x[:200])
    clf = ResVAEClassifier(vae, freeze, config, 0).fit(x[:200], y[:200])
    assert roc_auc_score(y[200:], clf.predict_proba(x[200:])) > 0.8


def test_class_weighting_raises_the_minority_class_probability():
    x, y = _lines(200, 3)
    minority = np.flatnonzero(y == 1)[:15]
    keep = np.sort(np.r_[np.flatnonzero(y == 0), minority])  # ~15 % resistant
    x, y = x[keep], y[keep]
    base = dataclasses.replace(ResVAEConfig.tiny(), head_max_epochs=100, head_patience=100)
    vae = ResVAE(base, 0).fit(x)
    means = {}
    for weighting in (True, False):
        config = dataclasses.replace(base, class_weighting=weighting)
        means[weighting] = ResVAEClassifier(vae, True, config, 0).fit(x, y).predict_proba(x).mean()
    assert means[True] > means[False] + 0.1


def test_a_class_with_one_line_fits_without_early_stopping(data, vae):
    x, y = data
    y1 = np.zeros_like(y)
    y1[3] = 1
    clf = ResVAEClassifier(vae, True, ResVAEConfig.tiny(), 0).fit(x, y1)
    assert not clf.early_stopped_ and clf.n_epochs_ == ResVAEConfig.tiny().head_max_epochs
    assert clf.best_val_loss_ is None


def test_fine_tuning_refuses_bad_input(data, vae):
    x, y = data
    c = ResVAEConfig.tiny()
    with pytest.raises(ValueError, match="must be fitted"):
        ResVAEClassifier(ResVAE(c, 0), True, c, 0).fit(x, y)
    with pytest.raises(ValueError, match="needs both classes"):
        ResVAEClassifier(vae, True, c, 0).fit(x, np.ones_like(y))
    with pytest.raises(ValueError, match=r"0 \(sensitive\) or 1 \(resistant\) only"):
        ResVAEClassifier(vae, True, c, 0).fit(x, y * 2)
    with pytest.raises(ValueError, match=r"y must have shape \(120,\)"):
        ResVAEClassifier(vae, True, c, 0).fit(x, y[:-1])
    with pytest.raises(ValueError, match="freeze_encoder"):
        ResVAEClassifier(vae, "yes", c, 0)  # type: ignore[arg-type]


# --- maths --------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=4, max_size=4),
       st.lists(st.floats(-3, 3), min_size=4, max_size=4))
def test_kl_is_non_negative_and_zero_only_at_the_prior(mu, logvar):
    kl = _kl_per_line(torch.tensor([mu]), torch.tensor([logvar]))
    assert kl.shape == (1,) and float(kl) >= -1e-6
    assert float(_kl_per_line(torch.zeros(1, 4), torch.zeros(1, 4))) == 0.0
    # one dimension by hand: ½ (μ² + σ² − 1 − ln σ²)
    expected = 0.5 * sum(m * m + np.exp(v) - 1 - v for m, v in zip(mu, logvar, strict=True))
    assert float(kl) == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_reconstruction_loss_by_hand():
    x = torch.tensor([[1.0, 0.0, 2.0]])
    x_hat = torch.tensor([[0.0, 0.0, 1.0]])
    binary = torch.tensor([False, True, False])
    # ½·1² + BCE(logit 0, target 0) = ln 2 + ½·1²
    expected = 0.5 + np.log(2.0) + 0.5
    assert float(_recon_per_line(x_hat, x, binary)) == pytest.approx(expected, rel=1e-6)
    assert float(_recon_per_line(x_hat, x, torch.zeros(3, dtype=torch.bool))) == 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=2, max_size=60), st.floats(0.05, 0.5),
       st.integers(0, 2**31))
def test_stratified_split_partitions_and_holds_out_each_class(labels, fraction, seed):
    y = np.array(labels)
    split = _stratified_split(y, fraction, np.random.default_rng(seed))
    counts = np.bincount(y, minlength=2)
    if counts.min() < 2:
        assert split is None
        return
    tr, va = split
    np.testing.assert_array_equal(np.sort(np.r_[tr, va]), np.arange(len(y)))
    for cls in (0, 1):  # every class on both sides, about `fraction` of it held out
        held = int((y[va] == cls).sum())
        assert 1 <= held <= counts[cls] - 1
        assert abs(held - fraction * counts[cls]) <= 1


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40))
def test_balanced_class_weights_give_each_class_half_the_total(n0, n1):
    y = np.r_[np.zeros(n0, int), np.ones(n1, int)]
    w = _class_weights(y, True).numpy()
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum(), rel=1e-5)
    assert w.sum() == pytest.approx(len(y), rel=1e-5)
    np.testing.assert_array_equal(_class_weights(y, False).numpy(), np.ones(len(y)))


# --- interpretation -----------------------------------------------------------------------------


@pytest.mark.parametrize("freeze", [True, False])
def test_integrated_gradients_are_complete_and_signed_toward_resistance(data, vae, freeze):
    x, y = data
    clf = ResVAEClassifier(vae, freeze, ResVAEConfig.tiny(), 0).fit(x, y)
    attr = integrated_gradients(clf, x[:6], n_steps=64)
    assert attr.shape == (6, N_FEATURES) and np.isfinite(attr).all()
    base_logit = clf.decision_function(clf.baseline_.numpy()[None, :])
    gap = clf.decision_function(x[:6]) - base_logit  # > 0: more resistant than the baseline
    np.testing.assert_allclose(attr.sum(1), gap, rtol=0.02, atol=2e-3)
    # explaining the baseline itself attributes nothing
    np.testing.assert_allclose(integrated_gradients(clf, clf.baseline_.numpy()[None, :]), 0.0,
                               atol=1e-7)
    # an explicit baseline (one row or one per line) moves the reference point
    other = x[10]
    attr_b = integrated_gradients(clf, x[:6], baseline=other, n_steps=64)
    np.testing.assert_allclose(attr_b.sum(1),
                               clf.decision_function(x[:6]) - clf.decision_function(other[None]),
                               rtol=0.02, atol=2e-3)
    with pytest.raises(ValueError, match="baseline must have 1 or 6 rows"):
        integrated_gradients(clf, x[:6], baseline=x[:2])


# --- artifacts ----------------------------------------------------------------------------------


def _through_bytes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_vae_state_round_trips_through_weights_only_load(data, vae):
    x, _ = data
    state, meta = vae_to_state(vae)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    loaded = vae_from_state(_through_bytes(state), json.loads(json.dumps(meta)))
    np.testing.assert_array_equal(loaded.encode(x), vae.encode(x))
    np.testing.assert_array_equal(loaded.binary_.numpy(), vae.binary_.numpy())
    # a reloaded VAE serves as a pre-training for new heads, identically
    c = ResVAEConfig.tiny()
    p1 = ResVAEClassifier(vae, False, c, 0).fit(x, y := data[1]).predict_proba(x)
    p2 = ResVAEClassifier(loaded, False, c, 0).fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(p1, p2)
    with pytest.raises(ValueError, match="expected 'resvae'"):
        vae_from_state(state, {**meta, "kind": "resvae_classifier"})


@pytest.mark.parametrize("freeze", [True, False])
def test_classifier_saved_in_the_registry_predicts_identically(tmp_path, data, vae, freeze):
    x, y = data
    clf = ResVAEClassifier(vae, freeze, ResVAEConfig.tiny(), 4).fit(x, y)
    state, meta = classifier_to_state(clf)
    registry.save_artifact(tmp_path, "drug", "resvae_test", state, seed=clf.seed, config=meta,
                           data_hash="0" * 64, cohort_version="test", metrics={})
    loaded_state, entry = registry.load_artifact(tmp_path, "drug", "resvae_test")
    loaded = classifier_from_state(loaded_state, entry.config)
    assert loaded.freeze_encoder is freeze and loaded.vae is None
    np.testing.assert_array_equal(loaded.predict_proba(x), clf.predict_proba(x))
    np.testing.assert_allclose(integrated_gradients(loaded, x[:3]),
                               integrated_gradients(clf, x[:3]), rtol=1e-6, atol=1e-9)
