"""The recommendations of the shown cases, computed off the event loop and audited.

Why not a plain ``reactive.calc``: every session of an app process shares one event loop and
one reactive lock, and a flush sends no output until every invalidated observer has run. A
recommendation calls the outcome-model ensemble (torch) for every shown case; computed inside
the flush, it held back every other output of the flush (e.g. the Data input panel's case
count stayed greyed out after "Load example") and every other session of the process. Here the
calc only says *what* is wanted (protocol, model, the shown cases' input hashes); the work runs
in a small thread pool (``torch`` releases the GIL), newest request wins, and the result is
published in a flush of its own. Outputs that need the recommendations show Shiny's
"recalculating" state meanwhile; nothing else waits.

Each recommendation is written to the audit trail in the same worker thread, once per session
and content (user, time, case, input hash, every model version, outputs), before it is
published; :attr:`ShownRecommendations.audit_ids` maps case labels to those audit ids for the
report. A result superseded before it was published is not recorded: nobody saw it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

import pandas as pd
from shiny import reactive, req

from app.runtime import recommendation_pool
from engine.arclids.outcomes import OutcomeModel
from engine.arclids.recommend import Recommendation, input_hash, recommend
from engine.core.protocols import Protocol
from engine.platform.store import Store, UserInfo

__all__ = ["ShownRecommendations", "model_versions_of", "shown_recommendations"]

SETTLE_LIMIT_S = 300.0
"""A download waiting for a recommendation gives up after this long (a hang guard)."""

Compute = Callable[[pd.DataFrame, Protocol, OutcomeModel], list[Recommendation]]


def model_versions_of(rec: Recommendation) -> dict[str, str]:
    """Every version field of a recommendation (outcome model, and any decision maker)."""
    out = {"outcome_model": rec.model}
    out.update({k: str(v) for k, v in rec.to_dict().items() if k.endswith("version")})
    return out


@dataclass(frozen=True)
class _Request:
    key: Hashable
    cases: pd.DataFrame = field(compare=False)
    protocol: Protocol = field(compare=False)
    model: OutcomeModel = field(compare=False)


@dataclass(frozen=True)
class _State:
    key: Hashable
    """What the state is for (protocol, model, the shown cases' labels and input hashes)."""
    ready: bool
    """False while the recommendations are being computed."""
    recs: tuple[Recommendation, ...] = ()
    audit_ids: dict[str, int] = field(default_factory=dict)
    error: BaseException | None = None


@dataclass(frozen=True)
class ShownRecommendations:
    """Reactive views of the recommendations of the shown cases."""

    recs: Callable[[], list[Recommendation]]
    """Reactive: the recommendations, in the shown order (raises Shiny's "in progress" silent
    exception while they are computed, so outputs show their recalculating state)."""
    audit_ids: Callable[[], dict[str, int]]
    """Reactive: case label → audit-trail id of the recommendation shown now."""
    settled: Callable[[], Awaitable[tuple[list[Recommendation], dict[str, int]]]]
    """``await settled()`` (outside reactive contexts, e.g. in a download): the current
    (recommendations, audit ids), waiting while they are computed."""


def _key(cases: pd.DataFrame, protocol: Protocol, model: OutcomeModel) -> Hashable:
    """Identity of a request: equal keys give equal recommendations."""
    hashes = tuple(input_hash(row, protocol) for _, row in cases.iterrows())
    return (protocol.name, model.version, id(model), hashes)


def shown_recommendations(
    session: object,
    *,
    store: Store,
    user: UserInfo,
    protocol: Callable[[], Protocol],
    model: Callable[[], OutcomeModel],
    shown: Callable[[], pd.DataFrame],
    compute: Compute = recommend,
) -> ShownRecommendations:
    """Compute, audit and publish the recommendations of the ``shown`` cases of a session.

    Args:
        session: the Shiny session (its id, hashed, is kept with each audit row).
        store: the database (audit trail).
        user: the logged-in user the recommendations are shown to.
        protocol, model, shown: reactives giving the protocol, outcome model and shown cases.
        compute: ``(cases, protocol, model) -> list[Recommendation]`` (thread-safe; default
            :func:`engine.arclids.recommend.recommend`).
    """
    ref = hashlib.sha256(str(session.id).encode()).hexdigest()[:16]  # never the live id
    seen: dict[tuple, int] = {}  # (content) → audit id; touched by one worker at a time
    state: reactive.Value[_State | None] = reactive.value(None)
    queue: dict[str, object] = {"next": None, "worker": None}

    def _record(recs: list[Recommendation]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for rec in recs:
            versions = model_versions_of(rec)
            content = (rec.protocol, rec.label, rec.input_hash, tuple(sorted(versions.items())),
                       rec.recommended_dose_gy)
            if content not in seen:
                seen[content] = store.record_recommendation(
                    username=user.username, protocol=rec.protocol, case_label=rec.label,
                    input_hash=rec.input_hash, model_name=rec.model,
                    model_version=rec.model_version, model_versions=versions,
                    recommended_dose_gy=rec.recommended_dose_gy, outputs=rec.to_dict(),
                    session_ref=ref)
            ids[rec.label] = seen[content]
        return ids

    async def _work() -> None:
        loop = asyncio.get_running_loop()
        try:
            while queue["next"] is not None:
                request: _Request = queue["next"]  # type: ignore[assignment]
                queue["next"] = None
                try:
                    recs = await loop.run_in_executor(
                        recommendation_pool(), compute, request.cases, request.protocol,
                        request.model)
                    if queue["next"] is not None:
                        continue  # superseded before anyone saw it
                    ids = await loop.run_in_executor(recommendation_pool(), _record, recs)
                    done = _State(request.key, True, tuple(recs), ids)
                except Exception as err:  # shown by the outputs that need the result
                    done = _State(request.key, True, error=err)
                if queue["next"] is not None:
                    continue
                async with reactive.lock():
                    with reactive.isolate():
                        current = state()
                    if current is not None and current.key == request.key:
                        state.set(done)
                        await reactive.flush()
        finally:
            queue["worker"] = None

    @reactive.calc
    def _wanted() -> _Request:
        cases, p, m = shown(), protocol(), model()
        return _Request(_key(cases, p, m), cases, p, m)

    @reactive.effect
    def _ask() -> None:
        request = _wanted()
        with reactive.isolate():
            current = state()
        if current is not None and current.key == request.key:
            return  # same protocol, model and inputs: nothing to do, nothing re-renders
        if request.cases.empty:
            state.set(_State(request.key, True))
            queue["next"] = None
            return
        state.set(_State(request.key, False))
        queue["next"] = request
        if queue["worker"] is None:
            queue["worker"] = asyncio.get_running_loop().create_task(_work())

    @reactive.calc
    def recs() -> list[Recommendation]:
        current = state()
        if current is None or not current.ready:
            req(False, cancel_output="progress")
        assert current is not None
        if current.error is not None:
            raise current.error
        return list(current.recs)

    @reactive.calc
    def audit_ids() -> dict[str, int]:
        current = state()
        return dict(current.audit_ids) if current is not None and current.ready else {}

    async def settled() -> tuple[list[Recommendation], dict[str, int]]:
        deadline = asyncio.get_running_loop().time() + SETTLE_LIMIT_S
        while True:
            with reactive.isolate():
                current = state()
            if current is not None and current.ready:
                if current.error is not None:
                    raise current.error
                return list(current.recs), dict(current.audit_ids)
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the recommendations did not finish in time")
            await asyncio.sleep(0.1)

    return ShownRecommendations(recs=recs, audit_ids=audit_ids, settled=settled)
