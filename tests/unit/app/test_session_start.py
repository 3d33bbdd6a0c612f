"""What a session start costs the event loop, counted not timed: Shiny's source introspection is
skipped or done once per function (app.runtime.cheap_shiny_introspection), the start-up heap is
left out of garbage collections, and the saved-patient list reads one page, never the table."""

from __future__ import annotations

import gc
import inspect

import pytest

from app import runtime
from app.panels.data_input.saved import SAVED_PAGE, _saved_label, _saved_page
from engine.platform.store import CaseRecord, Store


def test_reactive_values_are_made_without_reading_the_call_stack(monkeypatch) -> None:
    from shiny import reactive
    from shiny.otel import _attributes
    from shiny.reactive import _reactives

    runtime.cheap_shiny_introspection()
    runtime.cheap_shiny_introspection()  # idempotent

    def forbidden(*args, **kwargs):
        raise AssertionError("inspect.stack() on the event loop")

    monkeypatch.setattr(inspect, "stack", forbidden)
    value = reactive.value(1)
    assert value._name is None and reactive.value(2, name="kept")._name == "kept"

    calls: list[object] = []
    original = inspect.getsourcelines

    def counted(obj):
        calls.append(obj)
        return original(obj)

    monkeypatch.setattr(inspect, "getsourcelines", counted)

    def make():  # a new function object per call, as a module server makes per session
        def render_something() -> int:
            return 1
        return render_something

    first = _reactives.extract_source_ref(make())
    second = _attributes.extract_source_ref(make())
    assert first == second and first["code.function.name"] == "render_something"
    assert len(calls) == 1  # once per code object, reused by every later session
    assert getattr(_attributes.extract_source_ref, "_artds_cached", False)


def test_the_start_up_heap_is_frozen_out_of_collections() -> None:
    before = gc.get_freeze_count()
    runtime.freeze_startup_heap()
    try:
        assert gc.get_freeze_count() > max(before, 0)
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("search", ["", "-01"])
def test_the_saved_list_reads_a_page_of_the_newest(sqlite_store: Store, search: str) -> None:
    records = [CaseRecord(f"P-{k:04d}", f"P-{k:04d}", None, {"patient_id": f"P-{k:04d}"},
                          f"{k:064x}") for k in range(SAVED_PAGE + 50)]
    sqlite_store.save_cases("nsclc", records, source="upload", username="ann")
    total, matching, page = _saved_page(sqlite_store, "nsclc", search)
    assert total == SAVED_PAGE + 50
    if search:
        assert matching == 50 and [p.label for p in page] == [
            f"P-{k:04d}" for k in range(100, 150)]
        assert _saved_label(total, matching, search, len(page)) == (
            "Stored cases of this protocol (150): 50 matching “-01”")
    else:
        assert matching == total and len(page) == SAVED_PAGE
        assert _saved_label(total, matching, search, len(page)) == (
            "Stored cases of this protocol (150), the 100 most recently changed offered; "
            "search to find others")


def test_the_event_loop_gets_the_gil_sooner() -> None:
    import sys

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)  # Python's default
        runtime.prompt_event_loop()
        assert sys.getswitchinterval() == pytest.approx(runtime.GIL_SWITCH_S)
        assert runtime.GIL_SWITCH_S < 0.005
    finally:
        sys.setswitchinterval(before)
