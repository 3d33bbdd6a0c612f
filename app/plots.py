"""Render engine figures in the app without shinywidgets, built off the event loop.

plotly.js is loaded once in the page head (``/vendor/plotly.min.js``, the file shipped inside
the plotly package). :class:`render_figure` sends a figure's JSON to the custom output binding in
``www/plots.js``, which draws it with ``Plotly.react`` into a persistent element, so zoom and pan
survive updates (the figures set ``layout.uirevision``). Returning None clears the plot.

Building a figure is pure Python (plotly validates every property: ~0.1 s for the outcome space
or the dose response), so it is not done in the render function, inside the flush that every
session of the process waits for: :func:`pooled_figure` says *what* figure is wanted
(:class:`FigureRequest`), it is built in the worker processes (:func:`app.runtime.cpu_pool`,
both cores) by :func:`figure_payload` and published in a flush
of its own (:class:`app.recommending.NewestWins`), and kept in :data:`FIGURES`, an LRU cache by
content shared by the process's sessions.

The selected dose of the outcome space moves on the client: :func:`send_selected_dose` sends
only the traces that depend on it (:func:`engine.figures.outcome_space.selected_dose_traces`,
a few kilobytes) in an ``artds-selected-dose`` message, and ``www/plots.js`` swaps them into the
drawn figure; the figure itself (~85 kB) is neither rebuilt nor resent.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import json
import pickle
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
from htmltools import Tag, css, tags
from plotly.io.json import to_json_plotly
from shiny import reactive, req
from shiny.module import resolve_id
from shiny.render.renderer import Jsonifiable, Renderer

from app.recommending import Job, NewestWins, ready
from app.runtime import LruCache, cpu_pool_ready, in_cpu_pool, recommendation_pool
from engine.figures.style import PLOTLY_CONFIG

__all__ = [
    "FIGURES",
    "SELECTED_DOSE_MESSAGE",
    "FigureRequest",
    "content_key",
    "figure_payload",
    "output_figure",
    "pooled_figure",
    "render_figure",
    "send_selected_dose",
    "warm_up_figures",
]

SELECTED_DOSE_MESSAGE = "artds-selected-dose"
"""Custom message type handled by ``www/plots.js``: swap the traces of the selected dose."""

FIGURES: LruCache[str, dict[str, Any]] = LruCache(128)
"""Figure payloads by :meth:`FigureRequest.key` (figure function, its arguments), shared by the
process's sessions: ~100 kB each."""


def content_key(*parts: Any) -> str:
    """A digest of picklable ``parts`` (recommendations, protocol, options): equal content,
    equal key. Pickled exactly (floats to the bit, arrays whole) and without the memo, so
    equal values give equal bytes whether or not they are the same objects; a dict with
    another key order can only miss."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.fast = True  # no memo: bytes depend on values, not on which objects are shared
    pickler.dump(parts)
    return hashlib.sha256(buffer.getvalue()).hexdigest()[:32]


def output_figure(id: str, *, min_height: str = "200px") -> Tag:
    """Placeholder for a :class:`render_figure` output (namespaced inside modules)."""
    return tags.div(
        id=resolve_id(id),
        class_="artds-figure",
        style=css(width="100%", min_height=min_height),
    )


def _payload(fig: go.Figure, tag: str | None) -> dict[str, Any]:
    spec = json.loads(fig.to_json())
    data = spec.get("data", [])
    # plotly.py leaves the traces' uids out of its JSON; the page finds the traces that move
    # with the selected dose by them (engine.figures.outcome_space.selected_dose_traces).
    for trace, out in zip(fig.data, data, strict=True):
        if trace.uid is not None:
            out["uid"] = trace.uid
    return {"data": data, "layout": spec.get("layout", {}), "config": PLOTLY_CONFIG,
            "key": tag}


def figure_payload(tag: str | None, make: Callable[..., go.Figure], *args: Any,
                   **kwargs: Any) -> dict[str, Any]:
    """``make(*args, **kwargs)`` as the JSON the ``artds.figure`` binding draws (runs in a
    worker process). ``tag`` is passed to the page as the figure's ``key``: the
    selected-dose messages name the figure they apply to by it."""
    return _payload(make(*args, **kwargs), tag)


class render_figure(Renderer[go.Figure | dict]):
    """Render a plotly figure, a payload of :func:`figure_payload` (e.g. from
    :func:`pooled_figure`) or None for nothing, through the ``artds.figure`` binding."""

    def auto_output_ui(self) -> Tag:
        return output_figure(self.output_id)

    async def transform(self, value: go.Figure | dict) -> Jsonifiable:
        return value if isinstance(value, dict) else _payload(value, None)


@dataclass(frozen=True)
class FigureRequest:
    """A figure to build: ``make(*args, **kwargs)`` (picklable: a module-level function and
    plain data, sent to a worker process)."""

    make: Callable[..., go.Figure]
    """The engine's figure function."""
    args: tuple = ()
    """Its positional arguments."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Its keyword arguments."""
    tag: str | None = None
    """Passed to the page as the figure's ``key`` (:func:`figure_payload`)."""

    def key(self) -> str:
        """Identity of the figure: equal keys, equal figures."""
        return content_key(f"{self.make.__module__}.{self.make.__qualname__}", self.args,
                           self.kwargs, self.tag)

    def job(self) -> Callable[[], dict[str, Any]]:
        return functools.partial(figure_payload, self.tag, self.make, *self.args, **self.kwargs)


async def _build(fn: Callable[[], Any]) -> Any:
    """Run a figure job in the worker processes (in a thread here while they warm up)."""
    if cpu_pool_ready():
        return await in_cpu_pool(fn)
    return await asyncio.get_running_loop().run_in_executor(recommendation_pool(), fn)


def pooled_figure(request: Callable[[], FigureRequest | None]) -> Callable[[], dict | None]:
    """A reactive payload of the figure ``request()`` asks for (None: no figure), built in the
    worker processes or taken from :data:`FIGURES`.

    Call it in a session. While the figure is being built it raises Shiny's "in progress"
    silent exception (the output shows its recalculating state); the newest request wins.
    """
    jobs = NewestWins(run=_build)

    @reactive.calc
    def payload() -> dict | None:
        wanted = request()
        if wanted is None:
            jobs.want(None, None)
            return None
        key = wanted.key()
        cached = FIGURES.get(key)
        if cached is not None:
            jobs.want(key, None)  # a build still running for an older request is not shown
            return cached
        current = jobs.state()
        if current is None or current.key != key:
            if jobs.wanted != key:
                jobs.want(key, Job(key, wanted.job()))
            req(False, cancel_output="progress")
        result = ready(current)
        FIGURES.put(key, result)
        return result

    return payload


def traces_json(traces: Sequence[go.BaseTraceType]) -> list[dict[str, Any]]:
    """Plotly traces as plain JSON (numpy arrays as lists), as the figure JSON has them."""
    return json.loads(to_json_plotly([t.to_plotly_json() for t in traces]))


async def send_selected_dose(session: Any, output_id: str, tag: Hashable, dose_gy: float,
                             traces: Sequence[go.BaseTraceType]) -> None:
    """Tell the page to swap ``traces`` (matched by uid) into the figure of output
    ``output_id`` (namespaced here) whose key is ``tag``; the page keeps the message until that
    figure is drawn when it is not yet."""
    await session.send_custom_message(SELECTED_DOSE_MESSAGE, {
        "id": resolve_id(output_id), "key": tag, "dose_gy": float(dose_gy),
        "traces": traces_json(traces)})


def warm_up_figures() -> None:
    """Build each figure kind once, empty (a fresh process imports plotly's validators on its
    first figure: about a second). Run in each worker process at start-up."""
    from engine.core.protocols import PROTOCOL_NAMES, load_protocol
    from engine.figures.dose_response import dose_response_figure
    from engine.figures.outcome_space import outcome_space_figure

    for name in PROTOCOL_NAMES:
        protocol = load_protocol(name)
        for make in (outcome_space_figure, dose_response_figure):
            fig = make([], protocol)
            fig.add_trace(go.Scatter(x=[0.0], y=[0.0], mode="lines+markers", fill="toself",
                                     line=dict(color="#000000", width=1.0),
                                     marker=dict(symbol="star", size=5), customdata=[[0.0]],
                                     hovertemplate="%{x}", legendgroup="g", meta="m"))
            _payload(fig, None)
