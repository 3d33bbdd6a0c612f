"""app.recommending: a changed proposal asks for a new recommendation (its comparison changes),
although the input hash (the curves' inputs) does not."""

from __future__ import annotations

import numpy as np

from app.recommending import _key
from engine.core.protocols import load_protocol
from engine.core.schema import read_cases
from engine.settings import EXAMPLES_DIR

NSCLC = load_protocol("nsclc")


class _Model:
    name, label, version = "m", "model", "v1"


def test_the_request_key_follows_the_proposal() -> None:
    cases = read_cases(EXAMPLES_DIR / "nsclc_patients.csv", NSCLC).iloc[:2]
    model = _Model()
    base = _key(cases, NSCLC, model)
    assert _key(cases.copy(), NSCLC, model) == base
    changed = cases.assign(proposed_dose_adapt_gy=[2.5, np.nan])
    assert _key(changed, NSCLC, model) != base
    without = cases.drop(columns="proposed_dose_adapt_gy")
    assert _key(without, NSCLC, model) != base  # EX-NSCLC-02 proposes 2.8 Gy/fx
    no_values = without.assign(proposed_dose_adapt_gy=[np.nan, np.nan])
    assert _key(no_values, NSCLC, model) == _key(without, NSCLC, model)
