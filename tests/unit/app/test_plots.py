"""app.plots: figures are built in the worker processes, shared by content, and the selected
dose moves with a small message instead of a new figure."""

from __future__ import annotations

import asyncio
import json

from shiny import reactive
from shiny.types import SilentException

from app import runtime
from app.plots import (
    FIGURES,
    SELECTED_DOSE_MESSAGE,
    FigureRequest,
    content_key,
    figure_payload,
    pooled_figure,
    send_selected_dose,
)
from engine.arclids.cohort import ReferenceModel
from engine.arclids.recommend import recommend
from engine.core.protocols import load_protocol
from engine.core.schema import read_cases
from engine.figures.outcome_space import outcome_space_figure, selected_dose_traces
from engine.settings import EXAMPLES_DIR
from tests.unit.app import run_async

NSCLC = load_protocol("nsclc")


def _recs():
    cases = read_cases(EXAMPLES_DIR / "nsclc_patients.csv", NSCLC).iloc[:2]
    return recommend(cases, NSCLC, ReferenceModel("nsclc"))


async def _settled(payload):
    for _ in range(1200):
        try:
            with reactive.isolate():
                return payload()
        except SilentException:  # being built
            await asyncio.sleep(0.05)
    raise TimeoutError


def test_a_figure_is_built_in_a_worker_process_and_shared_by_content() -> None:
    recs = _recs()
    start = {r.label: r.recommended_dose_gy for r in recs}
    request = FigureRequest(outcome_space_figure, (recs, NSCLC), {"selected_dose_gy": start},
                            tag=content_key(recs))
    FIGURES.clear()

    async def main():
        first = pooled_figure(lambda: request)
        built = await _settled(first)
        hits = FIGURES.hits
        # Another session asking for equal content (equal, not the same objects) is served
        # from the cache at once.
        again = FigureRequest(outcome_space_figure, (_recs(), NSCLC),
                              {"selected_dose_gy": dict(start)}, tag=content_key(_recs()))
        with reactive.isolate():
            shared = pooled_figure(lambda: again)()
        return built, shared, FIGURES.hits - hits

    try:
        built, shared, new_hits = run_async(main())
    finally:
        runtime.shutdown()
    assert built == figure_payload(request.tag, outcome_space_figure, recs, NSCLC,
                                   selected_dose_gy=start)
    assert built["key"] == content_key(recs) and built["data"] and built["layout"]
    assert shared is built and new_hits == 1
    assert FigureRequest(outcome_space_figure, (recs, NSCLC), {"selected_dose_gy": {}}).key() \
        != request.key()


def test_moving_the_dose_sends_the_moving_traces_not_the_figure() -> None:
    recs = _recs()
    sent: list[tuple[str, dict]] = []

    class Session:
        async def send_custom_message(self, kind: str, message: dict) -> None:
            sent.append((kind, json.loads(json.dumps(message))))  # JSON as it goes out

    dose = {r.label: 2.7 for r in recs}
    traces = selected_dose_traces(recs, dose)
    run_async(send_selected_dose(Session(), "plot", content_key(recs), 2.7, traces))
    ((kind, message),) = sent
    assert kind == SELECTED_DOSE_MESSAGE
    assert message["id"] == "plot" and message["key"] == content_key(recs)
    assert message["dose_gy"] == 2.7
    figure = figure_payload(None, outcome_space_figure, recs, NSCLC, selected_dose_gy=dose)
    drawn = {t["uid"]: t for t in figure["data"] if "uid" in t}
    assert [t["uid"] for t in message["traces"]] == [t.uid for t in traces]
    for trace in message["traces"]:
        assert trace == drawn[trace["uid"]]  # exactly the figure's trace at that dose
    assert len(json.dumps(message)) < len(json.dumps(figure)) / 10
