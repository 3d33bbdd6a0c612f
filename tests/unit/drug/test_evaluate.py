"""The evaluation harness: every model on the same leak-free splits, the Res-VAE through its
contract (pre-trained once per split on that split's training lines), the saved result."""

from __future__ import annotations

import types
from typing import ClassVar

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from engine.drug import evaluate as ev
from engine.drug.data import load_drug_data
from engine.drug.splits import make_splits


class _FakeConfig:
    def __init__(self, **fields):
        self.fields = fields

    @classmethod
    def tiny(cls):
        return cls(budget="tiny")

    def to_dict(self):
        return dict(self.fields)


class _FakeVAE:
    """Records the lines it is pre-trained on."""

    fitted: ClassVar[list[_FakeVAE]] = []

    def __init__(self, config, seed):
        self.config, self.seed = config, seed

    def fit(self, x):
        self.rows_ = {r.tobytes() for r in np.asarray(x)}
        self.x_ = np.array(x)
        _FakeVAE.fitted.append(self)
        return self


class _FakeClassifier:
    """A logistic regression on 20 features that checks what it is given."""

    fits: ClassVar[list[dict]] = []

    def __init__(self, vae, freeze_encoder, config, seed):
        self.vae, self.freeze_encoder = vae, freeze_encoder

    def fit(self, x, y):
        rows = {r.tobytes() for r in x}
        assert rows <= self.vae.rows_, "a head saw a line its encoder was not pre-trained on"
        assert set(np.unique(y)) <= {0, 1}
        self.rows_ = rows
        self.model_ = LogisticRegression(max_iter=200).fit(x[:, :20], y)
        _FakeClassifier.fits.append({"frozen": self.freeze_encoder, "n": len(y)})
        return self

    def predict_proba(self, x):
        assert not ({r.tobytes() for r in x} & self.rows_), "scored a line it was fitted on"
        return self.model_.predict_proba(x[:, :20])[:, 1]


@pytest.fixture
def fake_resvae(monkeypatch):
    fake = types.SimpleNamespace(ResVAEConfig=_FakeConfig, ResVAE=_FakeVAE,
                                 ResVAEClassifier=_FakeClassifier)
    monkeypatch.setattr(ev, "_resvae_module", lambda: (fake, None))
    _FakeVAE.fitted.clear()
    _FakeClassifier.fits.clear()
    return fake


def test_resvae_variants_run_through_the_contract_on_leak_free_splits(fake_resvae):
    config = ev.EvaluationConfig.tiny(
        drugs=("Gefitinib",), models=("naive_mean_effects", "resvae_frozen", "resvae_unfrozen"))
    result = ev.evaluate(config)
    data = load_drug_data()
    splits = [sp for s in ev.SETTINGS for sp in make_splits(s, data.lineages, data.y)]
    # one pre-training per split, on exactly that split's training lines (labelled or not)
    assert len(_FakeVAE.fitted) == len(splits) == 10
    for vae, sp in zip(_FakeVAE.fitted, splits, strict=True):
        np.testing.assert_array_equal(vae.x_, data.x[sp.train])
    # per split: each variant's head once, plus threshold_folds refits for its F1 threshold
    per_variant = len(splits) * (1 + config.threshold_folds)
    assert sum(f["frozen"] for f in _FakeClassifier.fits) == per_variant
    assert sum(not f["frozen"] for f in _FakeClassifier.fits) == per_variant
    assert result["resvae"]["available"] and "training lines only" in result["resvae"][
        "pretraining"]
    assert result["resvae"]["config"] == {"budget": "tiny"}
    for setting in ev.SETTINGS:
        got = result["settings"][setting]["per_drug"]["resvae_frozen"]["Gefitinib"]
        assert got["auroc"] is not None and got["n_lines"] > 0
        assert "resvae_unfrozen" in result["settings"][setting]["comparisons"][
            "vs_naive_mean_effects"]


class _FakeClassifierWithOOF(_FakeClassifier):
    """The fake head with its own out-of-sample scores: every third training line, scored by a
    model fitted on the others (or, with ``val_classes=1``, only resistant lines scored)."""

    val_classes = 2

    def fit(self, x, y):
        super().fit(x, y)
        val = np.arange(len(y)) % 3 == 0
        if self.val_classes == 1:
            val &= y == 1
        inner = LogisticRegression(max_iter=200).fit(x[~val, :20], y[~val])
        self.oof_ = np.full(len(y), np.nan)
        self.oof_[val] = inner.predict_proba(x[val, :20])[:, 1]
        return self


@pytest.mark.parametrize("val_classes", [2, 1])
def test_the_resvae_threshold_comes_from_its_own_validation_lines_without_refits(
        fake_resvae, monkeypatch, val_classes):
    monkeypatch.setattr(fake_resvae, "ResVAEClassifier", _FakeClassifierWithOOF)
    monkeypatch.setattr(_FakeClassifierWithOOF, "val_classes", val_classes)
    config = ev.EvaluationConfig.tiny(drugs=("Gefitinib",), settings=("leave_tissue_out",),
                                      models=("resvae_frozen",))
    result = ev.evaluate(config)
    n_splits = len(result["settings"]["leave_tissue_out"]["splits"])
    tuning = result["settings"]["leave_tissue_out"]["tuning"]["resvae_frozen"]
    if val_classes == 2:  # one fit per split, its validation scores give the threshold
        assert len(_FakeClassifier.fits) == n_splits
        assert tuning == {"F1 threshold from validation": n_splits}
    else:  # no sensitive validation line: no threshold from them, the refits are used
        assert len(_FakeClassifier.fits) == n_splits * (1 + config.threshold_folds)
        assert tuning == {"F1 threshold from refits": n_splits}
    _FakeClassifier.fits.clear()
    ev.evaluate(ev.EvaluationConfig.tiny(drugs=("Gefitinib",), settings=("leave_tissue_out",),
                                         models=("resvae_frozen",), resvae_threshold="refits"))
    assert len(_FakeClassifier.fits) == n_splits * (1 + config.threshold_folds)


def test_the_result_records_the_machine_load():
    result = ev.evaluate(ev.EvaluationConfig.tiny(drugs=("Gefitinib",),
                                                  settings=("leave_tissue_out",),
                                                  models=("drug_rate",)))
    machine = result["machine"]
    assert machine["workers"] == 1 and machine["cpu_count"] >= 1
    assert len(machine["load_average_start"]) == 3 and len(machine["load_average_end"]) == 3


def test_without_the_resvae_module_the_variants_are_left_out_with_a_reason(monkeypatch):
    monkeypatch.setattr(ev, "_resvae_module", lambda: (None, "engine.drug.resvae is missing"))
    result = ev.evaluate(ev.EvaluationConfig.tiny(
        drugs=("Gefitinib",), settings=("leave_tissue_out",),
        models=("drug_rate", "resvae_frozen")))
    assert result["resvae"] == {"available": False, "note": "engine.drug.resvae is missing",
                                "models_dropped": ["resvae_frozen"],
                                "pretraining": result["resvae"]["pretraining"]}
    assert list(result["models"]) == ["drug_rate"]


@pytest.fixture(scope="module")
def tree_result():
    return ev.evaluate(ev.EvaluationConfig.tiny(
        drugs=("Gefitinib", "Trametinib", "JQ1"), settings=("leave_cell_line_out",),
        models=("naive_mean_effects", "drug_rate", "random_forest", "xgboost")))


def test_every_labelled_line_is_scored_once_by_every_model(tree_result):
    data = load_drug_data()
    per_drug = tree_result["settings"]["leave_cell_line_out"]["per_drug"]
    for model, drugs in per_drug.items():
        assert set(drugs) == {"Gefitinib", "Trametinib"}, model
        for drug, got in drugs.items():
            info = data.drug_info.loc[drug]
            assert (got["n_lines"], got["n_sensitive"]) == (info["n_lines"],
                                                            info["n_sensitive"]), (model, drug)
            assert 0.0 <= got["auroc"] <= 1.0
    assert "JQ1" in tree_result["data"]["not_evaluated"]  # 4 sensitive lines
    # a constant score per held-out set ranks at chance
    assert per_drug["drug_rate"]["Gefitinib"]["auroc"] == 0.5


def test_summary_and_comparisons(tree_result):
    info = tree_result["settings"]["leave_cell_line_out"]
    assert info["best_tree"] in ("random_forest", "xgboost")
    for model, summ in info["summary"].items():
        assert summ["auroc"]["n"] == 2, model
    naive = info["comparisons"]["vs_naive_mean_effects"]
    assert set(naive) == {"drug_rate", "random_forest", "xgboost"}
    rf = info["per_drug"]["random_forest"]
    nm = info["per_drug"]["naive_mean_effects"]
    expected = np.mean([rf[d]["auroc"] - nm[d]["auroc"] for d in rf])
    assert naive["random_forest"]["mean"] == pytest.approx(expected)
    assert naive["random_forest"]["level"] == 0.95
    assert set(info["tuning"]) == {"random_forest", "xgboost"}
    assert sum(info["tuning"]["xgboost"].values()) == 2 * 5  # drugs x folds
    assert "AUROC" in ev.text_table(tree_result)


def test_saved_evaluation_round_trips_through_the_manifest(tree_result, tmp_path):
    meta = ev.save_evaluation(tree_result, tmp_path)
    assert meta.file == "drug/evaluation.json" and meta.seed == 0
    assert meta.data_hash == load_drug_data().data_hash
    assert meta.metrics["leave_cell_line_out.random_forest.auroc_mean"] == pytest.approx(
        tree_result["settings"]["leave_cell_line_out"]["summary"]["random_forest"]["auroc"][
            "mean"])
    payload, loaded = ev.load_evaluation(tmp_path)
    assert loaded.sha256 == meta.sha256
    assert payload["data"]["evaluated"] == ["Gefitinib", "Trametinib"]


def test_config_and_drug_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"EvaluationConfig.models"):
        ev.EvaluationConfig(models=("svm",))
    with pytest.raises(ValueError, match=r"EvaluationConfig.n_folds"):
        ev.EvaluationConfig(n_folds=1)
    with pytest.raises(ValueError, match=r"Carboplatin.*no column"):
        ev.evaluate(ev.EvaluationConfig.tiny(drugs=("Carboplatin",)))
    with pytest.raises(ValueError, match="no drug to evaluate: JQ1"):
        ev.evaluate(ev.EvaluationConfig.tiny(drugs=("JQ1",), models=("drug_rate",)))
