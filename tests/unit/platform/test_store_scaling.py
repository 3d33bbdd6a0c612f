"""The store's case queries stay bounded as the table grows: writes of many cases in a bounded
number of statements, reads by case through indexes (never a scan of every stored version), and
the "Saved patients" list a page of the newest cases with a search.

Counted, not timed (the timings are in ``python -m tests.bench.event_loop``): every statement the
store sends is recorded, and on SQLite its query plan is asked for."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from sqlalchemy import event, text

from engine.platform.store import CaseRecord, Store

VALUES = {"tumour_geud_gy": 42.6, "dose_eval_gy": 2.2, "dose_adapt_gy": None,
          "local_control": None, "rp2": None}
VERSIONED = ("patient_inputs", "notes")
"""Tables with one row per version: a query for a few cases must not scan them."""


def _records(n: int, *, start: int = 0, geud: float = 42.6) -> list[CaseRecord]:
    return [CaseRecord(f"P-{k:05d}", f"P-{k:05d}", None,
                       {**VALUES, "patient_id": f"P-{k:05d}", "tumour_geud_gy": geud},
                       f"{k:064x}") for k in range(start, start + n)]


@contextlib.contextmanager
def _statements(store: Store) -> Iterator[list[tuple[str, object]]]:
    """Every (SQL, parameters) the store sends to the database inside the block."""
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def _scans(store: Store, statements: list[tuple[str, object]]) -> list[str]:
    """Full scans of a versioned table in the SQLite query plans of ``statements``."""
    found = []
    with store.engine.connect() as conn:
        for sql, params in statements:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()
            found += [f"{row[-1]}  <- {sql[:80]}" for row in plan
                      if str(row[-1]).startswith("SCAN")
                      and any(f" {t}" in f" {row[-1]}" for t in VERSIONED)]
    return found


def test_saving_many_cases_takes_a_bounded_number_of_statements(store: Store) -> None:
    # 1,200 new cases, then the same file with a third changed: a few statements per 500 cases
    # (it was four per case: 4,800)
    with _statements(store) as first:
        saved = store.save_cases("nsclc", _records(1200), source="upload", username="ann")
    assert [s.version for s in saved] == [1] * 1200 and all(s.new for s in saved)
    changed = _records(400, geud=43.0) + _records(800, start=400)
    with _statements(store) as second:
        again = store.save_cases("nsclc", changed, source="upload", username="bob")
    assert [s.version for s in again] == [2] * 400 + [1] * 800
    assert [s.new for s in again] == [True] * 400 + [False] * 800
    assert again[500].values["tumour_geud_gy"] == 42.6 and again[0].created_by == "bob"
    assert len(first) <= 12 and len(second) <= 12, (len(first), len(second))
    assert store.latest_inputs("nsclc", ["P-00000"])["P-00000"].version == 2
    assert store.count_patients("nsclc") == 1200


def test_a_label_given_twice_is_saved_in_order(store: Store) -> None:
    twice = [*_records(1), *_records(1, geud=43.0), *_records(1)]
    saved = store.save_cases("nsclc", twice, source="upload", username="ann")
    assert [(s.version, s.new) for s in saved] == [(1, True), (2, True), (3, True)]
    assert [h.values["tumour_geud_gy"] for h in store.input_history("nsclc", "P-00000")] == [
        42.6, 43.0, 42.6]


def test_queries_by_case_never_scan_every_stored_version(sqlite_store: Store) -> None:
    store = sqlite_store
    store.save_cases("nsclc", _records(300), source="upload", username="ann")
    store.save_cases("nsclc", _records(300, geud=43.0), source="upload", username="ann")
    for k in range(0, 300, 3):
        store.save_note("nsclc", f"P-{k:05d}", f"P-{k:05d}", None, "seen", username="ann")
    with store.engine.connect() as conn:  # the planner's statistics, as a used database has
        conn.execute(text("ANALYZE"))
        conn.commit()
    shown = ["P-00003", "P-00150"]
    with _statements(store) as seen:
        assert set(store.latest_inputs("nsclc", shown)) == set(shown)
        assert set(store.latest_notes("nsclc", shown)) == set(shown)
        assert len(store.input_history("nsclc", "P-00003")) == 2
        store.save_note("nsclc", "P-00003", "P-00003", None, "changed", username="ann")
        page = store.patients("nsclc", limit=25)
        found = store.patients("nsclc", search="p-0015", limit=25)
        store.save_cases("nsclc", _records(2, start=10), source="form", username="ann")
    assert len(page) == 25 and [s.n_versions for s in page] == [2] * 25
    assert [s.label for s in found] == [f"P-{k:05d}" for k in range(150, 160)]
    assert _scans(store, seen) == []


def test_the_saved_list_is_a_page_of_the_newest_with_a_search(store: Store) -> None:
    store.save_cases("nsclc", _records(30), source="upload", username="ann")
    store.save_cases("nsclc", _records(1, start=7, geud=43.0), source="form", username="bob")
    newest = store.patients("nsclc", limit=5)
    assert newest[0].label == "P-00007" and newest[0].latest_by == "bob"
    assert [s.label for s in newest[1:]] == ["P-00000", "P-00001", "P-00002", "P-00003"]
    assert [s.label for s in store.patients("nsclc", search="-0002")] == [
        f"P-{k:05d}" for k in range(20, 30)]
    assert store.count_patients("nsclc", search="-0002") == 10
    # the search is plain text: % and _ match only themselves
    assert store.patients("nsclc", search="%") == [] and store.count_patients(
        "nsclc", search="_") == 0
    assert store.count_patients("hcc") == 0 and store.patients("hcc", limit=5) == []


@pytest.mark.parametrize("n", [1, 501])
def test_notes_and_inputs_of_many_labels_are_read_in_chunks(sqlite_store: Store, n: int) -> None:
    records = _records(n)
    sqlite_store.save_cases("nsclc", records, source="upload", username="ann")
    labels = [r.label for r in records]
    assert set(sqlite_store.latest_inputs("nsclc", labels)) == set(labels)
    assert sqlite_store.latest_notes("nsclc", labels) == {}


def test_a_note_column_is_saved_in_a_bounded_number_of_statements(store: Store) -> None:
    store.save_cases("nsclc", _records(600), source="upload", username="ann")
    store.save_note("nsclc", "P-00001", "P-00001", None, "kept", username="ann")
    notes = [(f"P-{k:05d}", f"P-{k:05d}", None, "kept" if k == 1 else f"note {k}")
             for k in range(600)] + [("NEW-1", "NEW-1", None, "a new case")]
    with _statements(store) as seen:
        saved = store.save_notes("nsclc", notes, username="bob")
    assert len(seen) <= 12, len(seen)
    assert saved[1] is None and saved[0] is not None and saved[0].version == 1
    assert saved[-1] is not None and saved[-1].text == "a new case"
    latest = store.latest_notes("nsclc", ["P-00001", "P-00599", "NEW-1"])
    assert {lab: (n.version, n.text) for lab, n in latest.items()} == {
        "P-00001": (1, "kept"), "P-00599": (1, "note 599"), "NEW-1": (1, "a new case")}
    assert sum(e["action"] == "note_saved" for e in store.events(limit=2000)) == 1 + 600


def test_outcome_counts_are_counted_by_the_database_as_learning_mode_reads_them(
        store: Store) -> None:
    def record(k: int, dose: float | None, lc: int | None, rp2: int | None) -> CaseRecord:
        return CaseRecord(f"P-{k}", f"P-{k}", None, {**VALUES, "patient_id": f"P-{k}",
                                                     "dose_adapt_gy": dose,
                                                     "local_control": lc, "rp2": rp2}, f"{k:064x}")

    store.save_cases("nsclc", [record(0, 2.8, 1, 0), record(1, 2.8, 1, 1), record(2, None, 1, 0),
                               record(3, 3.0, 0, None), record(4, 3.1, 0, 0)],
                     source="upload", username="ann")
    # a newer version without the outcome: no longer counted; an older one without: now counted
    store.save_cases("nsclc", [record(1, 2.8, None, 1), record(3, 3.0, 0, 1)],
                     source="follow-up", username="ann")
    trained_on = store.inputs_with_outcomes("nsclc")
    assert [c.label for c in trained_on] == ["P-0", "P-3", "P-4"]
    assert store.outcome_counts("nsclc") == (3, {"local_control": 1, "rp2": 1})
    assert store.outcome_counts("hcc") == (0, {"local_control": 0, "liver_toxicity": 0})
