"""Moving the selected dose moves the marker on the page without resending the outcome space.

The websocket frames the page receives are recorded: after the figure is drawn, moving the
slider must bring only ``artds-selected-dose`` messages (a few kilobytes) and no new
``outcome-plot`` value, and the open circle, the bold rings and the summary must follow the
dose; a case hidden from the legend stays hidden.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, WebSocket, expect
from shiny.playwright import controller

from app import shared
from engine.arclids.recommend import recommend
from tests.e2e.helpers import assert_clean, open_app, open_tab, wait_idle

pytestmark = pytest.mark.e2e

PROTOCOL = "nsclc"
_CIRCLE = ("() => (document.getElementById('outcome-plot').data || [])"
           ".find((t) => t.uid === 'case0-selected')")


def _startup_recommendation():
    """What a new session shows: the startup example with the default model (as the app)."""
    model = shared.MODEL_CHOICES[PROTOCOL][shared.DEFAULT_MODEL[PROTOCOL]].model
    odm, note = shared.decision_maker(PROTOCOL, model)
    (rec,) = recommend(shared.STARTUP_CASES[PROTOCOL], shared.PROTOCOLS[PROTOCOL], model, odm,
                       odm_note=note)
    return rec


def _figure_values(frames: list[str]) -> int:
    """How many of ``frames`` carry an outcome-space figure."""
    count = 0
    for frame in frames:
        try:
            message = json.loads(frame)
        except ValueError:
            continue
        if (message.get("values") or {}).get("outcome-plot"):
            count += 1
    return count


def test_moving_the_dose_moves_the_marker_without_resending_the_figure(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    rec = _startup_recommendation()
    received: list[str] = []

    def watch(ws: WebSocket) -> None:
        ws.on("framereceived", lambda frame: received.append(frame)
              if isinstance(frame, str) else None)

    page.on("websocket", watch)
    open_app(page, app_url, role="clinician")
    open_tab(page, "Outcome space")
    expect(page.locator("#outcome-plot.js-plotly-plot")).to_be_visible()
    page.wait_for_function(f"() => ({_CIRCLE})() !== undefined")
    wait_idle(page)
    assert _figure_values(received) >= 1
    before = len(received)

    slider = controller.InputSlider(page, "outcome-dose")
    summary = page.locator("#outcome-summary")
    for target in (2.0, 3.5, 2.5):
        j = rec.doses_gy.index(target)
        slider.set(f"{target:g} Gy")
        expect(summary).to_contain_text(f"At {target:g} Gy/fx (selected)")
        # The open circle sits on the curve at the selected dose.
        page.wait_for_function(
            f"([tcp, ntcp]) => {{ const c = ({_CIRCLE})(); return c !== undefined"
            " && Math.abs(c.x[0] - tcp) < 1e-9 && Math.abs(c.y[0] - ntcp) < 1e-9; }",
            arg=[rec.tcp[j], rec.ntcp[j]])
        expect(page.locator("#outcome-plot")).to_have_attribute("data-selected-dose",
                                                               f"{target:g}")
        if rec.interval_level is not None:  # the bold rings include the selected dose's
            rings = page.evaluate(
                "() => document.getElementById('outcome-plot').data"
                ".find((t) => t.uid === 'case0-ellipses-marked').x"
                ".filter((x) => x === null).length")
            marked = {rec.doses_gy.index(min(rec.doses_gy, key=lambda d: abs(
                d - rec.recommended_dose_gy))), j}
            assert rings == len(marked)
    wait_idle(page)
    after = received[before:]
    moves = [f for f in after if '"artds-selected-dose"' in f]
    assert len(moves) >= 3
    assert max(len(f) for f in moves) < 20_000
    # No outcome-space figure was sent again: the page moved the marker itself.
    assert _figure_values(after) == 0

    # A case hidden from the legend stays hidden when the dose moves.
    page.locator("#outcome-plot g.traces").filter(has_text=rec.label).first.locator(
        ".legendtoggle").click()
    page.wait_for_function(f"() => ({_CIRCLE})().visible === 'legendonly'")
    slider.set("3 Gy")
    expect(page.locator("#outcome-plot")).to_have_attribute("data-selected-dose", "3")
    assert page.evaluate(f"() => ({_CIRCLE})().visible") == "legendonly"
    assert_clean(page, console_errors)
