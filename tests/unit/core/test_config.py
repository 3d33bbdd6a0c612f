"""The shared config checks (engine.core.config) and every config refusing a bad field."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from engine.arclids.gan import GANConfig
from engine.arclids.learning import Budget, LearningConfig
from engine.arclids.odm import ODMConfig
from engine.arclids.rtoe import RTOEConfig
from engine.core.config import (
    check_bool,
    check_choice,
    check_interval,
    check_range,
    json_ready,
    strict_from_dict,
)
from engine.planner.beamlet import BeamletConfig
from engine.planner.config import (
    BiologyRanges,
    CourseConfig,
    DQNConfig,
    PlanConfig,
    RewardWeights,
)
from engine.sf2.baselines import MLPConfig
from engine.sf2.evaluate import EvaluationConfig
from engine.sf2.features import FeatureConfig
from engine.sf2.model import ServedConfig
from engine.sf2.reptile import ReptileConfig


def _message(check, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        check(*args, **kwargs)
    return str(info.value)


def test_check_range_messages_name_field_value_and_range():
    assert _message(check_range, "rho", 1.5, 0.0, 1.0) == (
        "rho = 1.5 is out of range; accepted [0, 1]")
    assert _message(check_range, "oar.sparing_gamma", 0.0, 0.0, 1.0, lo_open=True) == (
        "oar.sparing_gamma = 0.0 is out of range; accepted (0, 1]")
    assert _message(check_range, "beta1", 1.0, 0.0, 1.0, hi_open=True) == (
        "beta1 = 1.0 is out of range; accepted [0, 1)")
    assert _message(check_range, "n", 0, 1, 7, integer=True) == (
        "n = 0 is out of range; accepted an integer in [1, 7]")
    assert _message(check_range, "hidden", 2.0, 1, integer=True) == (
        "hidden = 2.0 is out of range; accepted an integer ≥ 1")
    assert _message(check_range, "lr", 0.0, 0.0, lo_open=True) == (
        "lr = 0.0 is out of range; accepted > 0")
    assert _message(check_range, "x", 2.0, hi=1.0) == "x = 2.0 is out of range; accepted ≤ 1"
    for bad in (math.nan, math.inf, "1", None, True):
        with pytest.raises(ValueError, match="out of range"):
            check_range("x", bad)
    check_range("seed", np.int64(3), 0, integer=True)
    check_range("lr", np.float32(0.5), 0.0, 1.0)
    check_range("n", 7, 1, 7, integer=True)


def test_check_interval_choice_bool():
    check_interval("alpha_per_gy", (0.2, 0.3), 0.01, 1.0)
    assert _message(check_interval, "alpha_per_gy", (-0.1, 0.3), 0.01, 1.0) == (
        "alpha_per_gy low = -0.1 is out of range; accepted [0.01, 1]")
    assert "low must not exceed high" in _message(check_interval, "a", (0.5, 0.3), 0.0, 1.0)
    assert "(low, high) pair" in _message(check_interval, "a", (0.5,), 0.0, 1.0)
    assert _message(check_choice, "mode", "x", ("terminal", "cumulative")) == (
        "mode = 'x'; accepted terminal, cumulative")
    check_choice("mode", "terminal", ("terminal", "cumulative"))
    assert _message(check_bool, "flag", 1) == "flag = 1; accepted True or False"
    check_bool("flag", False)


def test_strict_from_dict():
    @dataclass(frozen=True)
    class Small:
        a: int = 1

    assert strict_from_dict(Small, {"a": 2}) == Small(2)
    assert _message(strict_from_dict, Small, {"a": 2, "b": 3, "c": 4}) == (
        "unknown Small field(s): b, c")


def test_json_ready_nests_configs_and_lists_tuples():
    @dataclass(frozen=True)
    class Inner:
        widths: tuple[int, ...] = (3, 1)

    @dataclass(frozen=True)
    class Outer:
        names: tuple[str, ...] = ("a", "b")
        inner: Inner = Inner()
        pairs: tuple[tuple[int, int], ...] = ((1, 2),)

    assert json_ready(Outer()) == {"names": ["a", "b"], "inner": {"widths": [3, 1]},
                                   "pairs": [[1, 2]]}
    assert json_ready(MLPConfig())["layer_sizes"] == [20, 64, 32, 1]


def test_dict_configs_round_trip_and_refuse_unknown_keys():
    for cfg in (GANConfig(epochs=3), ODMConfig(epochs=3), RTOEConfig(arch="glogd", lr_t=5e-4)):
        assert type(cfg).from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown ODMConfig field"):
        ODMConfig.from_dict({"width": 3})


@pytest.mark.parametrize(("build", "field"), [
    (lambda: BiologyRanges(oer=0.5), "oer"),
    (lambda: CourseConfig(n_fractions=33), "n_fractions"),
    (lambda: CourseConfig(fractions_per_week=2.5), "fractions_per_week"),
    (lambda: RewardWeights(mode="sometimes"), "mode"),
    (lambda: DQNConfig(hidden=2), "hidden"),
    (lambda: PlanConfig(seed=-1), "seed"),
    (lambda: PlanConfig(priority="both"), "priority"),
    (lambda: BeamletConfig(grid=8), "grid"),
    (lambda: BeamletConfig(min_target_volume_ratio=0.0), "min_target_volume_ratio"),
    (lambda: GANConfig(batch_size=1), "GANConfig.batch_size"),
    (lambda: ODMConfig(planning_resample=1), "ODMConfig.planning_resample"),
    (lambda: ODMConfig(hidden=0), "ODMConfig.hidden"),
    (lambda: RTOEConfig(arch="glogd", lr_t=0.0), "RTOEConfig.lr_t"),
    (lambda: RTOEConfig(arch="mlp"), "RTOEConfig.arch"),
    (lambda: LearningConfig("nsclc", budget="huge"), "LearningConfig.budget"),
    (lambda: LearningConfig("nsclc", seed=-1), "LearningConfig.seed"),
    (lambda: Budget(epochs=None, hidden=0, n_splits=2, n_members=5), "Budget.hidden"),
    (lambda: ReptileConfig(activation="gelu"), "ReptileConfig.activation"),
    (lambda: ReptileConfig(layer_sizes=(20, 64, 2)), "ReptileConfig.layer_sizes[-1]"),
    (lambda: ReptileConfig(meta_batch=0), "ReptileConfig.meta_batch"),
    (lambda: MLPConfig(loss="huber"), "MLPConfig.loss"),
    (lambda: FeatureConfig(n_folds=1), "FeatureConfig.n_folds"),
    (lambda: ServedConfig(setting="brain"), "ServedConfig.setting"),
    (lambda: ServedConfig(alpha_beta_gy=0.0), "ServedConfig.alpha_beta_gy"),
    (lambda: EvaluationConfig(settings=("lung", "brain")), "EvaluationConfig.settings"),
    (lambda: EvaluationConfig(settings=()), "EvaluationConfig.settings"),
])
def test_every_config_refuses_a_bad_field_when_built(build, field):
    message = _message(build)
    assert message.startswith(field), message


def test_default_configs_are_valid():
    for cls in (BiologyRanges, CourseConfig, RewardWeights, DQNConfig, PlanConfig,
                BeamletConfig, GANConfig, ODMConfig, ReptileConfig, MLPConfig, FeatureConfig,
                ServedConfig, EvaluationConfig):
        cls()
    RTOEConfig(arch="logistic")
    LearningConfig("hcc")
