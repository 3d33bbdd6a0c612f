"""How good the served probabilities are, shown beside them
(engine/arclids/rtoe_eval.py :func:`probability_quality`, engine/figures/wording.py
:func:`probability_quality_text`)."""

from __future__ import annotations

import pytest

from engine.arclids.rtoe_eval import load_rtoe_review, probability_quality
from engine.core.protocols import PROTOCOL_NAMES
from engine.figures.wording import PROBABILITY_QUALITY_UNKNOWN, probability_quality_text


def _summary(tcp: tuple[float, float], ntcp: tuple[float, float], coverage=(0.81, 0.79)) -> dict:
    def cal(brier, base, cov):
        return {"calibration": {"brier": brier, "brier_base_rate": base, "interval_level": 0.8,
                                "interval_coverage_truth": cov}}

    return {"architectures": {"glogd": {"tcp": cal(*tcp, coverage[0]),
                                        "ntcp": cal(*ntcp, coverage[1])}}}


def test_each_outcome_against_the_base_rate_with_a_margin():
    quality = probability_quality(_summary((0.244, 0.209), (0.168, 0.181)), "glogd")
    assert [q.outcome_key for q in quality] == ["tcp", "ntcp"]
    assert [q.against_base_rate() for q in quality] == ["worse", "better"]
    same = probability_quality(_summary((0.208, 0.209), (0.099, 0.098)), "glogd")
    assert [q.against_base_rate() for q in same] == ["about the same", "about the same"]
    assert probability_quality(_summary((0.2, 0.2), (0.1, 0.1)), "single") is None
    assert probability_quality(None, "glogd") is None


def test_the_text_says_worse_where_the_base_rate_wins_and_states_the_interval_level():
    text = probability_quality_text(probability_quality(
        _summary((0.244, 0.209), (0.0153, 0.0145)), "glogd"))
    assert "TCP 0.244 vs 0.209 (worse)" in text
    assert "NTCP 0.0153 vs 0.0145 (worse)" in text  # small scores keep 3 significant digits
    assert "fresh virtual cohort (never trained on; lower is better)" in text
    assert "The 80 % interval held the true probability at 81 % (TCP) and 79 % (NTCP)" in text
    assert probability_quality_text(None) == PROBABILITY_QUALITY_UNKNOWN


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_every_shipped_model_has_its_quality_saved(name):
    review, error = load_rtoe_review(name)
    assert error is None
    for arch in ("glogd", "single", "logistic"):
        quality = probability_quality(review.summary, arch)
        assert quality is not None and all(0 < q.brier_base_rate < 0.3 for q in quality)
