"""app.recommending: a changed proposal asks for a new recommendation (its comparison changes),
although the input hash (the curves' inputs) does not; recommendations are shared by sessions
through a cache keyed by inputs and model version, and computed in worker processes as the app
computes them."""

from __future__ import annotations

import threading
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
from shiny import reactive

from app import runtime
from app.recommending import (
    ModelRef,
    WorkerCannotServe,
    _key,
    cache_key,
    recommend_in_worker,
    shown_recommendations,
)
from app.runtime import LruCache
from engine.arclids.architectures import REFERENCE
from engine.arclids.cohort import ReferenceModel
from engine.arclids.recommend import recommend
from engine.arclids.serving import decision_maker
from engine.core.protocols import load_protocol
from engine.core.schema import read_cases
from engine.settings import EXAMPLES_DIR
from tests.unit.app import run_async

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


def test_the_cache_key_follows_inputs_proposal_and_model_version() -> None:
    cases = read_cases(EXAMPLES_DIR / "nsclc_patients.csv", NSCLC).iloc[:2]
    model = _Model()
    base = cache_key(cases, NSCLC, model)
    assert cache_key(cases.copy(), NSCLC, model) == base
    other_weights = _Model()
    other_weights.version = "v2"  # a learned ensemble's version hashes its artifacts
    assert cache_key(cases, NSCLC, other_weights) != base
    assert cache_key(cases.assign(proposed_dose_adapt_gy=[2.5, np.nan]), NSCLC, model) != base
    assert cache_key(cases.assign(tumour_geud_gy=cases["tumour_geud_gy"] + 0.01), NSCLC,
                     model) != base
    assert cache_key(cases.iloc[::-1], NSCLC, model) != base  # order is what is shown


class _Store:
    """Records the audit rows written (what the database would)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.lock = threading.Lock()

    def record_recommendation(self, **row) -> int:
        with self.lock:
            self.rows.append(row)
            return len(self.rows)


def test_sessions_share_a_computed_recommendation_and_each_audits_it() -> None:
    """Three sessions showing the same cases: computed once, shown and audited in each."""
    cases = read_cases(EXAMPLES_DIR / "nsclc_patients.csv", NSCLC).iloc[:2]
    model = ReferenceModel("nsclc")
    store = _Store()
    calls: list[int] = []
    cache: LruCache = LruCache(8)

    def compute(c, p, m):
        calls.append(1)
        return recommend(c, p, m)

    async def main():
        views = [shown_recommendations(
            SimpleNamespace(id=f"session-{k}"), store=store,
            user=SimpleNamespace(username=f"user-{k}"), protocol=lambda: NSCLC,
            model=lambda: model, shown=lambda: cases, compute=compute, cache=cache)
            for k in range(3)]
        await reactive.flush()
        return [await v.settled() for v in views]

    try:
        results = run_async(main())
    finally:
        runtime.shutdown()
    assert calls == [1] and cache.hits + cache.misses >= 3
    expected = [r.to_dict() for r in recommend(cases, NSCLC, model)]
    for recs, ids in results:
        assert [r.to_dict() for r in recs] == expected
        assert set(ids) == {r.label for r in recs}
    assert sorted(r["username"] for r in store.rows) == sorted(
        f"user-{k}" for k in range(3) for _ in range(2))


def test_a_worker_process_recommends_as_the_app_does() -> None:
    cases = read_cases(EXAMPLES_DIR / "nsclc_patients.csv", NSCLC).iloc[:3]
    model = ReferenceModel("nsclc")
    ref = ModelRef("nsclc", REFERENCE, model.version)
    odm, note = decision_maker("nsclc", model)
    want = [r.to_dict() for r in recommend(cases, NSCLC, model, odm, odm_note=note)]
    assert [r.to_dict() for r in recommend_in_worker(ref, cases, NSCLC)] == want
    try:
        got = runtime.in_cpu_pool_blocking(partial(recommend_in_worker, ref, cases, NSCLC))
    finally:
        runtime.shutdown()
    assert [r.to_dict() for r in got] == want
    # A version the worker cannot load (models/ changed since the app loaded it) is refused:
    # the app then computes with its own model.
    with pytest.raises(WorkerCannotServe, match="the app serves"):
        recommend_in_worker(ModelRef("nsclc", REFERENCE, "trial-nsclc-000000000000"), cases,
                            NSCLC)
