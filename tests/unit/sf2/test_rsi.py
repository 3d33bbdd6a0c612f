"""RSI and GARD against hand-computed values (Eschrich 2009; Scott 2017)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.sf2.data import RSI_GENES
from engine.sf2.rsi import RSI_COEFFICIENTS, gard, rsi, rsi_alpha_per_gy


def test_coefficients_are_the_published_ones_in_gene_order():
    assert tuple(RSI_COEFFICIENTS) == RSI_GENES == (
        "AR", "JUN", "STAT1", "PRKCB", "RELA", "ABL1", "SUMO1", "PAK2", "HDAC1", "IRF1")
    assert RSI_COEFFICIENTS["ABL1"] == 0.1070213
    assert RSI_COEFFICIENTS["IRF1"] == -0.0441683


def test_rsi_with_ranks_one_to_ten_in_coefficient_order():
    # Expression rising along the gene order gives AR rank 1 … IRF1 rank 10. By hand:
    # -0.0098009·1 + 0.0128283·2 + 0.0254552·3 - 0.0017589·4 - 0.0038171·5 + 0.1070213·6
    # - 0.0002509·7 - 0.0092431·8 - 0.0204469·9 - 0.0441683·10 = 0.0068218
    expr = pd.DataFrame([np.arange(1.0, 11.0)], columns=list(RSI_GENES))
    assert rsi(expr)[0] == pytest.approx(0.0068218, abs=1e-7)


def test_rsi_with_reversed_ranks():
    # AR rank 10 … IRF1 rank 1: sum of coef_i · (11 - i). By hand:
    # -0.098009 + 0.1154547 + 0.2036416 - 0.0123123 - 0.0229026 + 0.5351065 - 0.0010036
    # - 0.0277293 - 0.0408938 - 0.0441683 = 0.8542028 - 0.2470189 = 0.6071839
    expr = np.arange(10.0, 0.0, -1.0)[None, :]
    assert rsi(expr)[0] == pytest.approx(0.6071839, abs=1e-7)


def test_rsi_reads_genes_by_name_not_position_and_ignores_other_columns():
    values = dict(zip(RSI_GENES, np.arange(1.0, 11.0), strict=True))
    shuffled = pd.DataFrame([{"EXTRA": 99.0, **dict(reversed(list(values.items())))}])
    assert rsi(shuffled)[0] == pytest.approx(0.0068218, abs=1e-7)


def test_ties_get_average_ranks():
    # All equal: every gene has rank 5.5, RSI = 5.5 · sum(coef).
    expr = np.full((1, 10), 7.0)
    assert rsi(expr)[0] == pytest.approx(5.5 * sum(RSI_COEFFICIENTS.values()), abs=1e-12)


@given(st.lists(st.integers(-500, 1500), min_size=10, max_size=10, unique=True),
       st.floats(0.1, 3.0), st.floats(-2.0, 2.0))
def test_rsi_is_invariant_to_monotone_transforms(values, scale, shift):
    x = np.array(values, dtype=float)[None, :] / 100.0  # distinct by 0.01: no rounding ties
    assert rsi(x)[0] == pytest.approx(rsi(scale * x + shift)[0], abs=1e-12)
    assert rsi(x)[0] == pytest.approx(rsi(np.exp2(x))[0], abs=1e-12)


def test_missing_gene_and_bad_values_are_refused():
    expr = pd.DataFrame([np.arange(1.0, 10.0)], columns=list(RSI_GENES[:9]))
    with pytest.raises(ValueError, match="IRF1"):
        rsi(expr)
    with pytest.raises(ValueError, match="finite"):
        rsi(np.array([[np.nan, *range(9)]]))
    with pytest.raises(ValueError, match=r"\[n, 10\]"):
        rsi(np.ones((2, 9)))


def test_gard_by_hand():
    # RSI 0.3: α = -ln(0.3)/2 - 2·0.05 = 0.6019864 - 0.1 = 0.5019864 Gy⁻¹;
    # GARD(30 × 2 Gy) = 60 · (0.5019864 + 0.05·2) = 36.119184.
    assert float(rsi_alpha_per_gy(0.3)) == pytest.approx(0.5019864, abs=1e-7)
    assert float(gard(0.3)) == pytest.approx(36.119184, abs=1e-5)
    # 5 × 8 Gy: 40 · (0.5019864 + 0.4) = 36.079456.
    assert float(gard(0.3, 5, 8.0)) == pytest.approx(36.079456, abs=1e-5)


@given(st.floats(0.01, 0.99), st.integers(1, 40), st.floats(0.5, 20.0))
def test_rsi_read_as_sf2_gives_back_the_survival_at_2_gy(r, n, d):
    alpha = float(rsi_alpha_per_gy(r))
    assert math.exp(-2 * alpha - 4 * 0.05) == pytest.approx(r, rel=1e-9)
    # GARD is n·d·(α + βd): linear in n.
    assert float(gard(r, 2 * n, d)) == pytest.approx(2 * float(gard(r, n, d)), rel=1e-9)


def test_non_positive_rsi_has_no_alpha_or_gard():
    assert math.isnan(float(rsi_alpha_per_gy(0.0)))
    assert math.isnan(float(gard(-0.1)))
    with pytest.raises(ValueError, match="n_fractions"):
        gard(0.3, 0)
    with pytest.raises(ValueError, match="dose_per_fraction_gy"):
        gard(0.3, 30, 0.0)
