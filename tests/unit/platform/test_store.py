"""engine.platform.store on SQLite and on a real PostgreSQL server: migrations, versioned inputs
and notes, the recommendation audit trail, model versions and promotions, training jobs."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import inspect, update

from engine.platform.store import Base, Store, StoreError
from engine.platform.store.tables import AuthSession
from engine.settings import database_url

pytestmark = pytest.mark.xdist_group("postgres")

VALUES = {"patient_id": "P-1", "tumour_geud_gy": 42.6, "dose_eval_gy": 2.2,
          "dose_adapt_gy": None, "local_control": None, "rp2": None}


def _save(store: Store, values: dict, *, label: str = "P-1", source: str = "form",
          user: str = "ann"):
    return store.save_inputs("nsclc", label, label, None, values, "h" * 64, source=source,
                             username=user)


def test_migrations_create_every_table_and_are_idempotent(store: Store) -> None:
    from alembic.script import ScriptDirectory

    from engine.platform.store.connection import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head == "0003" and store.current_revision() == head  # one head: a linear history
    store.upgrade()  # a second start-up changes nothing
    tables = set(inspect(store.engine).get_table_names())
    assert {"users", "auth_sessions", "login_attempts", "settings", "patients",
            "patient_inputs", "notes", "recommendations", "model_versions", "promotions",
            "training_jobs", "audit_events", "alembic_version"} <= tables


def test_orm_tables_match_the_migrated_schema(store: Store) -> None:
    # The ORM (engine.platform.store.tables) and the migrations must describe one schema:
    # autogenerate finds no table, column, type, index or constraint to add, drop or alter.
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                 Base.metadata)
    assert diffs == []


def test_default_url_is_a_sqlite_file_outside_the_package(monkeypatch) -> None:
    monkeypatch.delenv("ARTDS_DATABASE_URL", raising=False)
    assert database_url().startswith("sqlite:///") and database_url().endswith(
        "var/artds.sqlite3")
    monkeypatch.setenv("ARTDS_DATABASE_URL", "postgresql://u@h/db")
    assert database_url() == "postgresql://u@h/db"
    assert Store("postgresql://u@h/db").url.drivername == "postgresql+psycopg"


def test_users_roles_and_duplicates(store: Store) -> None:
    u = store.add_user("ann", "hash-1", "clinician", created_by="cli")
    assert (u.username, u.role, u.active) == ("ann", "clinician", True)
    assert u.created_at.tzinfo is not None
    with pytest.raises(StoreError, match="already exists"):
        store.add_user("ann", "hash-2", "admin", created_by="cli")
    with pytest.raises(StoreError, match="role"):
        store.add_user("bob", "hash", "surgeon", created_by="cli")
    store.set_role("ann", "physicist", by="root")
    assert store.user("ann").role == "physicist"
    assert store.count_users() == 1
    assert [e["action"] for e in store.events()] == ["role_changed", "user_added"]


def test_inputs_are_versioned_never_overwritten(store: Store) -> None:
    first = _save(store, VALUES)
    assert (first.version, first.new) == (1, True)
    again = _save(store, dict(VALUES))
    assert (again.version, again.new) == (1, False)  # identical: no new version
    changed = _save(store, {**VALUES, "tumour_geud_gy": 43.0}, user="bob")
    assert (changed.version, changed.new) == (2, True)
    followed = _save(store, {**VALUES, "tumour_geud_gy": 43.0, "dose_adapt_gy": 3.0,
                             "local_control": 1, "rp2": 0}, source="follow-up")
    history = store.input_history("nsclc", "P-1")
    assert [h.version for h in history] == [1, 2, 3]
    assert history[0].values["tumour_geud_gy"] == 42.6  # the first version is untouched
    assert history[1].created_by == "bob"
    assert store.latest_inputs("nsclc", ["P-1", "nobody"])["P-1"].version == followed.version
    (summary,) = store.patients("nsclc")
    assert (summary.label, summary.n_versions, summary.has_outcomes) == ("P-1", 3, True)
    assert [s.label for s in store.inputs_with_outcomes("nsclc")] == ["P-1"]
    assert store.patients("hcc") == []


def test_nan_values_are_stored_as_null(store: Store) -> None:
    saved = _save(store, {**VALUES, "tumour_geud_gy": float("nan")})
    assert saved.values["tumour_geud_gy"] is None


def test_notes_are_versioned_and_kept_verbatim(store: Store) -> None:
    text = "Escalate <script>alert(1)</script> & re-image"
    first = store.save_note("nsclc", "P-1", "P-1", None, text, username="ann")
    assert first is not None and first.version == 1
    assert store.save_note("nsclc", "P-1", "P-1", None, text, username="ann") is None
    second = store.save_note("nsclc", "P-1", "P-1", None, "second", username="bob")
    assert second.version == 2
    latest = store.latest_notes("nsclc", ["P-1"])["P-1"]
    assert (latest.text, latest.created_by) == ("second", "bob")
    assert [n.text for n in store.note_history("nsclc", "P-1")] == [text, "second"]
    assert sum(e["action"] == "note_saved" for e in store.events()) == 2


def test_concurrent_writers_get_distinct_versions(store: Store) -> None:
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            _save(store, {**VALUES, "tumour_geud_gy": 40.0 + k}, user=f"u{k}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [h.version for h in store.input_history("nsclc", "P-1")] == [1, 2, 3, 4]


def test_recommendation_audit_trail_and_csv(store: Store) -> None:
    _save(store, VALUES)
    rid = store.record_recommendation(
        username="ann", protocol="nsclc", case_label="P-1", input_hash="a" * 64,
        model_name="GLoGD-GNN ensemble", model_version="rtoe-nsclc-glogd-1",
        model_versions={"model_version": "rtoe-nsclc-glogd-1"}, recommended_dose_gy=2.75,
        outputs={"recommended_tcp": 0.71, "recommended_ntcp": float("nan"),
                 "recommended_goal": "population", "n_members": 5},
        session_ref="s1")
    store.record_recommendation(
        username="bob", protocol="nsclc", case_label="=HYPERLINK(1)", input_hash="b" * 64,
        model_name="m", model_version="v", model_versions={}, recommended_dose_gy=3.0,
        outputs={}, session_ref="s2")
    rows = store.recommendations()
    assert [r.username for r in rows] == ["bob", "ann"]  # newest first
    assert rows[1].id == rid and rows[1].outputs["recommended_ntcp"] is None
    assert [r.username for r in store.recommendations(username="ann")] == ["ann"]
    table = list(csv.DictReader(io.StringIO(store.recommendations_csv())))
    assert [r["user"] for r in table] == ["ann", "bob"]  # oldest first
    assert table[0]["input_hash"] == "a" * 64
    assert table[0]["recommended_dose_gy"] == "2.75"
    assert table[0]["outcome_model_version"] == "rtoe-nsclc-glogd-1"
    assert table[1]["case"] == "'=HYPERLINK(1)"  # no spreadsheet formula injection


def test_model_versions_promotion_and_rollback(store: Store) -> None:
    assert store.serving_version("nsclc") is None
    shipped = store.register_model_version(
        protocol="nsclc", arch="glogd", version="v-shipped", location="/models",
        source="shipped", created_by="system", metrics={"auc": 0.7}, training={})
    assert store.register_model_version(
        protocol="nsclc", arch="glogd", version="v-shipped", location="x", source="shipped",
        created_by="x", metrics={}, training={}).id == shipped.id  # idempotent
    store.register_model_version(
        protocol="nsclc", arch="glogd", version="v-new", location="/learn/v-new",
        source="learning", created_by="phil", metrics={"auc": 0.8}, training={"n": 3})
    store.promote("nsclc", "v-new", username="phil", reason="better on our cases")
    assert store.serving_version("nsclc").version == "v-new"
    store.promote("nsclc", "v-shipped", username="phil", action="rollback", reason="oops")
    assert store.serving_version("nsclc").version == "v-shipped"
    assert [(p.version, p.action) for p in store.promotions("nsclc")] == [
        ("v-shipped", "rollback"), ("v-new", "promote")]
    with pytest.raises(StoreError):
        store.promote("hcc", "v-new", username="phil")
    assert [e["action"] for e in store.events(limit=2)] == ["rollback", "promote"]


def test_training_job_progress_and_cancel(store: Store) -> None:
    job = store.create_job("nsclc", {"budget": "tiny"}, username="phil")
    assert store.job(job).status == "queued"
    assert store.update_job(job, status="running", progress=0.25, message="fold 1") is False
    store.request_cancel(job, username="phil")
    assert store.update_job(job, progress=1.7) is True  # clipped, and the cancel is seen
    info = store.job(job)
    assert (info.progress, info.cancel_requested) == (1.0, True)
    store.update_job(job, status="cancelled")
    assert store.job(job).finished_at is not None
    with pytest.raises(StoreError):
        store.update_job(job, status="exploded")


def test_sessions_expire_and_revoke(store: Store) -> None:
    store.add_user("ann", "h", "clinician", created_by="cli")
    expires = store.create_session("ann", "t" * 64, 3600)
    assert expires > datetime.now(UTC)
    user, _ = store.session_user("t" * 64)
    assert user.username == "ann"
    store.create_session("ann", "e" * 64, -1)  # already expired
    assert store.session_user("e" * 64) is None
    assert store.revoke_session("t" * 64, username="ann") is True
    assert store.session_user("t" * 64) is None
    store.create_session("ann", "d" * 64, 3600)
    store.set_active("ann", False, by="root")  # disabling ends every session
    assert store.session_user("d" * 64) is None


def _last_used(store: Store, token_sha256: str, ago_s: float) -> None:
    """Pretend the session was last used ``ago_s`` seconds ago."""
    with store.session() as s:
        s.execute(update(AuthSession).where(AuthSession.token_sha256 == token_sha256)
                  .values(last_seen_at=datetime.now(UTC) - timedelta(seconds=ago_s)))


def test_sessions_end_when_idle_and_use_keeps_them_alive(store: Store) -> None:
    store.add_user("ann", "h", "clinician", created_by="cli")
    store.create_session("ann", "t" * 64, 3600)
    _last_used(store, "t" * 64, 100)
    assert store.session_user("t" * 64, idle_s=120) is not None
    assert store.session_user("t" * 64, idle_s=90) is None  # idle longer than 90 s
    assert store.session_user("t" * 64) is not None  # no idle limit: only the lifetime counts
    # A use (touch) older than touch_every_s is recorded and restarts the idle clock ...
    assert store.session_user("t" * 64, idle_s=120, touch_every_s=30) is not None
    assert store.session_user("t" * 64, idle_s=90) is not None
    # ... a read-only check is not a use, and a recent use is not rewritten.
    _last_used(store, "t" * 64, 100)
    assert store.session_user("t" * 64, idle_s=120) is not None
    assert store.session_user("t" * 64, idle_s=90) is None
    _last_used(store, "t" * 64, 10)
    store.session_user("t" * 64, idle_s=120, touch_every_s=30)
    assert store.session_user("t" * 64, idle_s=12) is not None
    assert store.session_user("t" * 64, idle_s=9) is None  # still 10 s ago: not rewritten
    # An idle session is not revived by a use.
    _last_used(store, "t" * 64, 200)
    assert store.session_user("t" * 64, idle_s=120, touch_every_s=30) is None
    assert store.session_user("t" * 64, idle_s=120) is None


def test_failed_login_counts(store: Store) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    for _ in range(3):
        store.record_login_attempt("ann", "10.0.0.1", False)
    assert store.failed_logins_since(since, username="ann")[0] == 3
    assert store.failed_logins_since(since, remote="10.0.0.1")[0] == 3
    store.record_login_attempt("ann", "10.0.0.1", True)  # a good login clears the user count
    assert store.failed_logins_since(since, username="ann")[0] == 0
    assert store.failed_logins_since(since, remote="10.0.0.1")[0] == 3


def test_settings_first_writer_wins(store: Store) -> None:
    assert store.setting_or_create("secret_key", lambda: "one") == "one"
    assert store.setting_or_create("secret_key", lambda: "two") == "one"


def test_case_inputs_round_trip_through_the_store(sqlite_store: Store) -> None:
    """engine.platform.inputs: a case table → store records → stored values → the same table;
    the inputs CSV reads back unchanged; merging replaces cases of the same label."""
    from engine.core.protocols import load_protocol
    from engine.core.schema import PROPOSAL_COLUMN, case_labels, read_cases
    from engine.core.tabular import SchemaError
    from engine.platform.inputs import (
        case_records,
        cases_from_stored,
        inputs_csv,
        merge_cases,
        stored_columns,
        with_follow_up,
    )
    from engine.settings import EXAMPLES_DIR

    for name in ("nsclc", "hcc"):
        protocol = load_protocol(name)
        cases = read_cases(EXAMPLES_DIR / f"{name}_patients.csv", protocol)
        assert stored_columns(protocol)[:len(protocol.id_columns)] == list(protocol.id_columns)
        records = case_records(cases, protocol)
        assert [r.label for r in records] == case_labels(cases)
        for r, proposal in zip(records, cases[PROPOSAL_COLUMN], strict=True):
            # an unknown proposal is left out, so cases saved before it existed stay unchanged
            left_out = {PROPOSAL_COLUMN} if pd.isna(proposal) else set()
            assert len(r.input_hash) == 64
            assert set(r.values) == set(stored_columns(protocol)) - left_out
        assert (records[0].site_id is None) == ("site_id" not in protocol.id_columns)
        sqlite_store.save_cases(name, records, source="upload", username="ann")
        found = sqlite_store.latest_inputs(name, [r.label for r in records])
        back = cases_from_stored(protocol, [found[r.label].values for r in records])
        pd.testing.assert_frame_equal(back[cases.columns.drop("note", errors="ignore")],
                                      cases.drop(columns="note", errors="ignore"),
                                      check_dtype=False)
        notes = {records[0].label: "first, with a comma"}
        text = inputs_csv(cases, protocol, notes)
        again = read_cases(io.BytesIO(text.encode()), protocol)
        assert again["note"].fillna("").tolist()[0] == "first, with a comma"
        header = text.splitlines()[0].split(",")
        assert "dose_adapt_gy" not in header  # unknown everywhere: left out
        assert PROPOSAL_COLUMN in header  # known for some examples: kept, empty for the others
        pd.testing.assert_series_equal(again[PROPOSAL_COLUMN], cases[PROPOSAL_COLUMN])
        with pytest.raises(SchemaError):
            cases_from_stored(protocol, [found[records[0].label].values],
                              require_outcomes=True)
        followed = with_follow_up(cases.iloc[[0]].reset_index(drop=True), protocol,
                                  dose_adapt_gy=protocol.dose_grid_gy[0], target_outcome="1",
                                  oar_outcome=None)
        assert followed["dose_adapt_gy"].iloc[0] == pytest.approx(protocol.dose_grid_gy[0])
        assert followed[protocol.target.outcome].iloc[0] == 1
        assert pd.isna(followed[protocol.oar.outcome].iloc[0])
        assert case_labels(followed) == case_labels(cases.iloc[[0]])
        with pytest.raises(SchemaError):
            with_follow_up(cases.iloc[[0]], protocol, dose_adapt_gy=99.0, target_outcome=None,
                           oar_outcome=None)
        merged, replaced = merge_cases(cases.iloc[:2], cases.iloc[1:3])
        assert replaced == 1
        assert case_labels(merged) == case_labels(cases.iloc[[0, 1, 2]])
        assert merged.index.tolist() == [0, 1, 2]


def test_a_proposal_adds_an_input_version_and_its_absence_does_not(sqlite_store: Store) -> None:
    """Cases saved before ``proposed_dose_adapt_gy`` existed (no such key) are not saved again
    as a new version when reloaded without a proposal; a proposal is a new version."""
    from engine.core.protocols import load_protocol
    from engine.core.schema import PROPOSAL_COLUMN, read_cases
    from engine.platform.inputs import case_records
    from engine.settings import EXAMPLES_DIR

    protocol = load_protocol("nsclc")
    cases = read_cases(EXAMPLES_DIR / "nsclc_patients.csv", protocol).iloc[[0]]
    assert cases[PROPOSAL_COLUMN].isna().all()
    record = case_records(cases, protocol)[0]
    before = {k: v for k, v in record.values.items() if k != PROPOSAL_COLUMN}  # the old layout
    first = sqlite_store.save_inputs("nsclc", record.label, record.patient_id, None, before,
                                     record.input_hash, source="upload", username="ann")
    again = sqlite_store.save_cases("nsclc", [record], source="example", username="ann")[0]
    assert (first.version, again.version, again.new) == (1, 1, False)

    proposed = case_records(cases.assign(**{PROPOSAL_COLUMN: 2.8}), protocol)[0]
    assert proposed.input_hash == record.input_hash  # the curves do not depend on it
    saved = sqlite_store.save_cases("nsclc", [proposed], source="form", username="ann")[0]
    assert (saved.version, saved.new, saved.values[PROPOSAL_COLUMN]) == (2, True, 2.8)
