"""Torch inference for the shown cases, computed off the event loop: the recommendations (audited)
and the physicists' architecture contrast.

Why not a plain ``reactive.calc``: every session of an app process shares one event loop and
one reactive lock, and a flush sends no output until every invalidated observer has run. A
recommendation calls the outcome-model ensemble (torch) for every shown case; computed inside
the flush, it held back every other output of the flush (e.g. the Data input panel's case
count stayed greyed out after "Load example") and every other session of the process. Here the
calc only says *what* is wanted (protocol, model, the shown cases' input hashes); the work runs
in a small thread pool (``torch`` releases the GIL), newest request wins, and the result is
published in a flush of its own. Outputs that need the result show Shiny's "recalculating"
state meanwhile; nothing else waits. :class:`NewestWins` is that mechanism, also used for the
figures (:mod:`app.plots`, in worker processes).

Recommendations are shared by the process's sessions through :data:`RECOMMENDATIONS`, an LRU
cache keyed by :func:`cache_key` (protocol, model version, the shown cases' input hashes and
proposed doses): twenty clinicians opening the app on the same example patient, or one going
back to a patient seen before, cost one computation; sessions asking for a key being computed
wait for it instead of repeating it.

Each recommendation is written to the audit trail in the same worker thread, once per session
and content (user, time, case, input hash, every model version, outputs), before it is
published; :attr:`ShownRecommendations.audit_ids` maps case labels to those audit ids for the
report. A result superseded before it was published is not recorded: nobody saw it.

The Model review panel's contrast (:func:`shown_curves`: the shown cases' curves under several
outcome models) runs in the same pool by the same rule, but only when an output reads it: the
recommendations are wanted on every panel (and audited as shown), the contrast only on a
physicist's panel that may stay closed, so computing it on every change of the shown cases
would take the pool from the recommendations for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from shiny import reactive, req

from app.runtime import LruCache, recommendation_pool
from engine.arclids.outcomes import OutcomeCurves, OutcomeModel
from engine.arclids.recommend import Recommendation, input_hash, recommend
from engine.core.protocols import Protocol
from engine.core.schema import PROPOSAL_COLUMN, case_labels
from engine.platform.store import Store, UserInfo

__all__ = [
    "RECOMMENDATIONS",
    "Job",
    "ModelRef",
    "NewestWins",
    "ShownRecommendations",
    "WorkerCannotServe",
    "cache_key",
    "model_versions_of",
    "ready",
    "recommend_in_worker",
    "shown_curves",
    "shown_recommendations",
    "warm_up_worker",
]

SETTLE_LIMIT_S = 300.0
"""A download waiting for a recommendation gives up after this long (a hang guard)."""

Compute = Callable[[pd.DataFrame, Protocol, OutcomeModel], list[Recommendation]]


@dataclass(frozen=True)
class ModelRef:
    """How to load a served outcome model in another process: a model of the protocol's
    catalogue by its key, or a Learning Mode version by its folder. Its decision maker follows
    from it (the catalogue's for its models, none for a Learning Mode version, as in the app)."""

    protocol_name: str
    """The protocol."""
    key: str
    """A catalogue key (:data:`engine.arclids.serving.MODEL_KEYS`) or ``"learned"``."""
    version: str
    """The model's version: the loaded model must have it (else models/ changed since)."""
    arch: str | None = None
    """Architecture of a Learning Mode version."""
    location: str | None = None
    """Folder of a Learning Mode version."""
    label: str | None = None
    """Label of a Learning Mode version."""


class WorkerCannotServe(Exception):
    """The worker process cannot load the model the app serves (models/ changed since the app
    loaded it): the app computes the recommendation itself."""


_WORKER_MODELS: dict[ModelRef, tuple[OutcomeModel, Any, str | None]] = {}
"""In a worker process: the models it loaded, with their decision maker (or the reason there
is none). Versions are immutable, so entries never go stale."""


def _worker_model(ref: ModelRef) -> tuple[OutcomeModel, Any, str | None]:
    """(model, decision maker, note) of ``ref``, loaded once per worker process."""
    from engine.arclids.serving import (
        LOAD_ERRORS,
        NO_DECISION_MAKER,
        ModelUnavailable,
        decision_maker,
        load_learned_version,
        load_outcome_model,
    )

    found = _WORKER_MODELS.get(ref)
    if found is not None:
        return found
    try:
        if ref.key == "learned":
            model = load_learned_version(ref.protocol_name, str(ref.arch), str(ref.location),
                                         ref.version, str(ref.label))
            odm, note = None, NO_DECISION_MAKER
        else:
            model = load_outcome_model(ref.protocol_name, ref.key)
            odm, note = decision_maker(ref.protocol_name, model)
    except (ModelUnavailable, *LOAD_ERRORS) as exc:
        raise WorkerCannotServe(f"{ref.key} did not load: {exc}") from exc
    if model.version != ref.version:
        raise WorkerCannotServe(f"models/ holds {model.version}, the app serves {ref.version}")
    _WORKER_MODELS[ref] = found = (model, odm, note)
    return found


def recommend_in_worker(ref: ModelRef, cases: pd.DataFrame, protocol: Protocol
                        ) -> list[Recommendation]:
    """Runs in a worker process: :func:`engine.arclids.recommend.recommend` of ``cases`` with
    the model of ``ref`` and its decision maker, as the app would compute it."""
    model, odm, note = _worker_model(ref)
    return recommend(cases, protocol, model, odm, odm_note=note)


def warm_up_worker(refs: tuple[ModelRef, ...]) -> None:
    """Runs in each worker process at start-up: load ``refs`` (the models served by default)
    and build each figure kind once, so the first sessions wait for neither."""
    from app.plots import warm_up_figures

    for ref in refs:
        with contextlib.suppress(WorkerCannotServe):  # the app computes these itself
            _worker_model(ref)
    warm_up_figures()


def model_versions_of(rec: Recommendation) -> dict[str, str]:
    """Every version field of a recommendation (outcome model, and any decision maker)."""
    out = {"outcome_model": rec.model}
    out.update({k: str(v) for k, v in rec.to_dict().items() if k.endswith("version")})
    return out


@dataclass(frozen=True)
class Job:
    """One request for the pool: what it is for, and the work in two steps."""

    key: Hashable
    """What the result is for; equal keys give equal results."""
    compute: Callable[[], Any] = field(compare=False)
    """The inference (runs in the pool; picklable for a process pool)."""
    finish: Callable[[Any], Any] | None = field(compare=False, default=None)
    """Turns ``compute``'s value into the result (runs in the recommendation threads, skipped
    when the job was superseded in between: the recommendations are audited here); None: the
    value is the result."""


async def _in_threads(fn: Callable[[], Any]) -> Any:
    return await asyncio.get_running_loop().run_in_executor(recommendation_pool(), fn)


@dataclass(frozen=True)
class _State:
    key: Hashable
    """What the state is for (e.g. protocol, model, the shown cases' labels and input hashes)."""
    ready: bool
    """False while the result is being computed."""
    result: Any = None
    error: BaseException | None = None


class NewestWins:
    """One session's jobs of one kind: run in the pool one after another, newest first (a job
    superseded before it ran is dropped), the newest result published in a flush of its own.

    Args:
        run: ``await run(fn)`` runs a job's ``compute`` off the event loop (default: in the
            recommendation threads; :mod:`app.plots` passes the figure processes).
    """

    def __init__(self, run: Callable[[Callable[[], Any]], Awaitable[Any]] = _in_threads
                 ) -> None:
        self.state: reactive.Value[_State | None] = reactive.value(None)
        """The published result; the caller may also set it (e.g. "computing", or a result
        known without the pool)."""
        self.wanted: Hashable = None
        """Key of the newest request: only its result is published."""
        self._run = run
        self._next: Job | None = None
        self._worker: asyncio.Task | None = None

    def want(self, key: Hashable, job: Job | None) -> None:
        """Ask for ``key``: computed by ``job``, or (None) known without the pool."""
        self.wanted = key
        self._next = job
        if job is not None and self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._next is not None:
                job, self._next = self._next, None
                try:
                    value = await self._run(job.compute)
                    if self._next is not None:
                        continue  # superseded before anyone saw it
                    if job.finish is not None:
                        value = await loop.run_in_executor(recommendation_pool(), job.finish,
                                                           value)
                    done = _State(job.key, True, value)
                except Exception as err:  # shown by the outputs that need the result
                    done = _State(job.key, True, error=err)
                if self._next is not None:
                    continue
                async with reactive.lock():
                    if self.wanted == job.key:
                        self.state.set(done)
                        await reactive.flush()
        finally:
            self._worker = None


def ready(current: _State | None) -> Any:
    """The result of a ready state; in a reactive context, Shiny's "in progress" silent
    exception while it is computed (outputs show their recalculating state)."""
    if current is None or not current.ready:
        req(False, cancel_output="progress")
    assert current is not None
    if current.error is not None:
        raise current.error
    return current.result


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


def _hashes(cases: pd.DataFrame, protocol: Protocol) -> tuple[str, ...]:
    """The input hash of every case, in row order."""
    return tuple(input_hash(row, protocol) for _, row in cases.iterrows())


def _proposals(cases: pd.DataFrame) -> tuple[float | None, ...]:
    """The physician's proposed dose of every case (None where none was given), in row order:
    not part of the input hash (the curves do not depend on it), but of the comparison shown."""
    if PROPOSAL_COLUMN not in cases.columns:
        return (None,) * len(cases)
    return tuple(None if pd.isna(v) else float(v) for v in cases[PROPOSAL_COLUMN])


def _key(cases: pd.DataFrame, protocol: Protocol, model: OutcomeModel) -> Hashable:
    """Identity of a request: equal keys give equal recommendations."""
    return (protocol.name, model.version, id(model), _hashes(cases, protocol), _proposals(cases))


def cache_key(cases: pd.DataFrame, protocol: Protocol, model: OutcomeModel) -> Hashable:
    """Key of the shared cache: the protocol, the model's name and version (the hash of its
    artifacts' sha256s for a learned ensemble, so other weights are another version), every
    shown case's input hash (ids, features, evaluation dose) and proposed dose, in order.

    The whole list is one entry, not each case: the outcome models' plausible draws behind
    the dose interval and ``p_recommended_better`` are drawn for the cases together, so a case
    shown with others gets (slightly) other draws than alone; one entry per list keeps what
    is shown equal to what :func:`engine.arclids.recommend.recommend` gives for that list."""
    return (protocol.name, model.name, model.version, _hashes(cases, protocol),
            _proposals(cases))


RECOMMENDATIONS: LruCache[Hashable, tuple[Recommendation, ...]] = LruCache(256)
"""The app's recommendations, shared by its sessions (:func:`cache_key`). The decision maker is
not in the key: the app serves one per outcome-model version
(:meth:`engine.arclids.serving.Catalogue.decision_maker_for`), fixed for the process."""


def shown_recommendations(
    session: object,
    *,
    store: Store,
    user: UserInfo,
    protocol: Callable[[], Protocol],
    model: Callable[[], OutcomeModel],
    shown: Callable[[], pd.DataFrame],
    compute: Compute = recommend,
    cache: LruCache[Hashable, tuple[Recommendation, ...]] | None = None,
) -> ShownRecommendations:
    """Compute, audit and publish the recommendations of the ``shown`` cases of a session.

    Args:
        session: the Shiny session (its id, hashed, is kept with each audit row).
        store: the database (audit trail).
        user: the logged-in user the recommendations are shown to.
        protocol, model, shown: reactives giving the protocol, outcome model and shown cases.
        compute: ``(cases, protocol, model) -> list[Recommendation]`` (thread-safe; default
            :func:`engine.arclids.recommend.recommend`).
        cache: where results are shared with the process's other sessions, by
            :func:`cache_key` (the app passes :data:`RECOMMENDATIONS`); None computes every
            request. A cached recommendation is audited for this session all the same.
    """
    ref = hashlib.sha256(str(session.id).encode()).hexdigest()[:16]  # never the live id
    seen: dict[tuple, int] = {}  # (content) → audit id; touched by one worker at a time
    jobs = NewestWins()
    state = jobs.state

    def _record(recs: list[Recommendation]) -> tuple[tuple[Recommendation, ...], dict[str, int]]:
        ids: dict[str, int] = {}
        for rec in recs:
            versions = model_versions_of(rec)
            proposed = None if rec.proposal is None else rec.proposal["dose_gy"]
            content = (rec.protocol, rec.label, rec.input_hash, tuple(sorted(versions.items())),
                       rec.recommended_dose_gy, proposed)
            if content not in seen:
                seen[content] = store.record_recommendation(
                    username=user.username, protocol=rec.protocol, case_label=rec.label,
                    input_hash=rec.input_hash, model_name=rec.model,
                    model_version=rec.model_version, model_versions=versions,
                    recommended_dose_gy=rec.recommended_dose_gy, outputs=rec.to_dict(),
                    session_ref=ref)
            ids[rec.label] = seen[content]
        return tuple(recs), ids

    @reactive.calc
    def _wanted() -> tuple[Hashable, pd.DataFrame, Protocol, OutcomeModel]:
        cases, p, m = shown(), protocol(), model()
        return _key(cases, p, m), cases, p, m

    @reactive.effect
    def _ask() -> None:
        key, cases, p, m = _wanted()
        with reactive.isolate():
            current = state()
        if current is not None and current.key == key:
            return  # same protocol, model and inputs: nothing to do, nothing re-renders
        if cases.empty:
            state.set(_State(key, True, ((), {})))
            jobs.want(key, None)
            return
        state.set(_State(key, False))

        def run() -> list[Recommendation]:
            if cache is None:
                return compute(cases, p, m)
            return list(cache.get_or_compute(cache_key(cases, p, m),
                                             lambda: tuple(compute(cases, p, m))))

        jobs.want(key, Job(key, run, _record))

    @reactive.calc
    def recs() -> list[Recommendation]:
        return list(ready(state())[0])

    @reactive.calc
    def audit_ids() -> dict[str, int]:
        current = state()
        if current is None or not current.ready or current.error is not None:
            return {}
        return dict(current.result[1])

    async def settled() -> tuple[list[Recommendation], dict[str, int]]:
        deadline = asyncio.get_running_loop().time() + SETTLE_LIMIT_S
        while True:
            with reactive.isolate():
                current = state()
            if current is not None and current.ready:
                if current.error is not None:
                    raise current.error
                return list(current.result[0]), dict(current.result[1])
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the recommendations did not finish in time")
            await asyncio.sleep(0.1)

    return ShownRecommendations(recs=recs, audit_ids=audit_ids, settled=settled)


def shown_curves(
    *,
    protocol: Callable[[], Protocol],
    models: Callable[[], Mapping[str, OutcomeModel]],
    shown: Callable[[], pd.DataFrame],
) -> Callable[[], tuple[list[str], dict[str, OutcomeCurves]]]:
    """The curves of the ``shown`` cases under each of ``models``, computed in the pool.

    Args:
        protocol, shown: reactives giving the protocol and the shown cases.
        models: reactive giving key → outcome model (e.g. the architectures to contrast).

    Returns:
        A reactive giving (the shown cases' labels, key → their :class:`OutcomeCurves`), both
        empty when no case is shown. It asks the pool when read for a new request and raises
        Shiny's "in progress" silent exception until the result is published (so a closed
        panel costs nothing); call it in a session.
    """
    jobs = NewestWins()

    def _curves(cases: pd.DataFrame, p: Protocol, chosen: Mapping[str, OutcomeModel]) -> tuple[
            list[str], dict[str, OutcomeCurves]]:
        return case_labels(cases), {k: m.predict_curves(cases, p) for k, m in chosen.items()}

    @reactive.calc
    def curves() -> tuple[list[str], dict[str, OutcomeCurves]]:
        p, cases, chosen = protocol(), shown(), dict(models())
        if cases.empty:
            jobs.want(None, None)
            return [], {}
        cases = cases.reset_index(drop=True)
        key = (p.name, tuple((k, m.version, id(m)) for k, m in chosen.items()),
               _hashes(cases, p))
        current = jobs.state()
        if current is None or current.key != key:
            if jobs.wanted != key:
                jobs.want(key, Job(key, lambda: _curves(cases, p, chosen)))
            req(False, cancel_output="progress")
        return ready(current)

    return curves
