"""Data input panel: example patients, CSV upload, a manual form, the case list and notes.

Cases are validated by :mod:`engine.core.schema` (``read_cases`` for files, ``validate_dataframe``
for
the form). A refused file or form shows every problem (row, column, value, message) and leaves
the current cases untouched. The session's working set of cases is per session and per protocol;
everything added is also saved in the database (:mod:`engine.platform.store`) as a new input
version when
it changed, physician notes are saved per patient with "Save notes" (versioned), follow-ups (the
adaptive dose given and the outcomes) add a version, and stored patients can be loaded again in
any later session. The inputs download as CSV (which uploads again unchanged) or as a printable
page.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from shiny import module, reactive, render, ui
from shiny.types import SilentException

from app import shared
from engine.arclids.recommend import input_hash
from engine.core.protocols import Protocol
from engine.core.schema import (
    MAX_FILE_BYTES,
    MAX_NOTE_CHARS,
    case_labels,
    column_specs,
    read_cases,
)
from engine.core.schema import validate_dataframe as validate_cases
from engine.core.tabular import Problem, SchemaError
from engine.platform.report import render_inputs
from engine.platform.store import CaseRecord, NoteInfo, SavedInput, Store, UserInfo

__all__ = [
    "CaseSelection",
    "data_input_server",
    "data_input_sidebar_ui",
    "data_input_ui",
]

MAX_SHOWN = 4
"""Cases selected automatically after a load (users may pick more, up to MAX_SELECTABLE)."""
MAX_SELECTABLE = 7
"""Most cases shown side by side (one colour each)."""
ALL_EXAMPLES = "__all__"
EMPTY_STATE = "Load an example patient or upload a file."


@dataclass(frozen=True)
class CaseSelection:
    """Reactive views of the session's cases that sibling panels read."""

    cases: Callable[[], pd.DataFrame]
    """All cases of the current protocol (validated)."""
    shown: Callable[[], pd.DataFrame]
    """The cases chosen for display, in the chosen order."""
    notes: Callable[[], dict[str, str]]
    """Physician notes of the current protocol keyed by case label."""


def _note_input_id(protocol_name: str, label: str) -> str:
    digest = hashlib.sha1(f"{protocol_name}\x00{label}".encode()).hexdigest()[:12]
    return f"note_{digest}"


def _example_choices(protocol_name: str) -> dict[str, str]:
    examples = shared.EXAMPLES[protocol_name]
    choices = {ALL_EXAMPLES: f"All example patients ({examples['patient_id'].nunique()})"}
    for pid, rows in examples.groupby("patient_id", sort=False):
        n = len(rows)
        choices[str(pid)] = str(pid) if n == 1 else f"{pid} ({n} tumour sites)"
    return choices


def _first_value(protocol_name: str, column: str) -> float | str | None:
    examples = shared.EXAMPLES[protocol_name]
    if examples.empty or column not in examples.columns:
        return None
    value = examples.iloc[0][column]
    value = value.item() if hasattr(value, "item") else value
    # Whole numbers read better without ".0" (scores, genotypes, round concentrations).
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _problem_list(
    problems: list[Problem], *, show_rows: bool, labels: dict[str, str] | None = None
) -> ui.Tag:
    """One item per problem: where (row, column, value) in bold, then what is wrong."""
    items = []
    for p in problems:
        message = p.message
        prefix = f"row {p.row}, column {p.column}: " if p.column else f"row {p.row}: "
        if message.startswith(prefix):
            message = message[len(prefix):]
        where = []
        if show_rows and p.row is not None:
            where.append(f"Row {p.row}")
        if p.column and labels and p.column in labels:
            where.append(f"{labels[p.column]} ({p.column})")
        elif p.column:
            where.append(f"column {p.column}" if where else f"Column {p.column}")
        if p.value is not None and p.value != "":
            where.append(f"value “{p.value}”")
        items.append(ui.tags.li(
            ui.div(" · ".join(where), class_="problem-where") if where else None,
            ui.div(message[:1].upper() + message[1:], class_="problem-message"),
        ))
    return ui.tags.ul(*items, class_="problem-list")


def _error_box(
    title: str, problems: list[Problem], *, show_rows: bool, note: str,
    labels: dict[str, str] | None = None,
) -> ui.Tag:
    return ui.div(
        ui.tags.strong(title),
        ui.p(note, class_="mb-2"),
        _problem_list(problems, show_rows=show_rows, labels=labels),
        class_="alert alert-danger artds-error",
        role="alert",
    )


def _form_labels(protocol: Protocol) -> dict[str, str]:
    labels = {"patient_id": "Patient id", "site_id": "Tumour site number",
              "dose_eval_gy": "Evaluation-phase dose per fraction"}
    return labels | {f.name: f.label for f in protocol.features}


def _numeric_field(input_id: str, label: str, unit: str, lo: float, hi: float, step: float | str,
                   value: float | None) -> ui.Tag:
    # No "(alleles)" after "ERCC1 rs11615 (minor alleles)": the label already says it.
    said = re.search(rf"\b{re.escape(unit)}\b", label, flags=re.IGNORECASE) if unit else True
    shown_unit = "" if said else f" ({unit})"
    return ui.div(
        ui.input_numeric(input_id, f"{label}{shown_unit}", value=value, min=lo, max=hi,
                         step=step, width="100%"),
        ui.tags.small(f"accepted {lo:g} – {hi:g}", class_="text-muted form-hint"),
        class_="artds-field",
    )


def _stored_columns(protocol: Protocol) -> list[str]:
    return [*protocol.id_columns, *protocol.feature_names, "dose_eval_gy", "dose_adapt_gy",
            *protocol.outcome_names]


def case_records(cases: pd.DataFrame, protocol: Protocol) -> list[CaseRecord]:
    """What the store keeps of each case (ids, features, doses, known outcomes; no note)."""
    columns = _stored_columns(protocol)
    with_site = "site_id" in protocol.id_columns and "site_id" in cases.columns
    out = []
    for label, (_, row) in zip(case_labels(cases), cases.iterrows(), strict=True):
        values = {c: (row[c] if c in row.index else None) for c in columns}
        out.append(CaseRecord(label, str(row["patient_id"]),
                              int(row["site_id"]) if with_site else None, values,
                              input_hash(row, protocol)))
    return out


def _when(t) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _inputs_csv(cases: pd.DataFrame, protocol: Protocol, notes: dict[str, str]) -> str:
    """The cases in the upload format (optional columns only when some value is known)."""
    table = cases.copy()
    table["note"] = [notes.get(lab, "") for lab in case_labels(cases)]
    columns = [c for c in _stored_columns(protocol) if c in table.columns
               and (c not in ("dose_adapt_gy", *protocol.outcome_names) or table[c].notna().any())]
    return table[[*columns, "note"]].to_csv(index=False, float_format="%.10g",
                                            lineterminator="\n")


@module.ui
def data_input_sidebar_ui() -> ui.TagList:
    """The case chooser, shown in the page sidebar so it is at hand on every panel."""
    return ui.TagList(
        ui.input_selectize(
            "show",
            "Cases shown side by side",
            choices=[],
            multiple=True,
            options={
                "placeholder": "No cases loaded yet",
                "plugins": ["remove_button"],
                "maxItems": MAX_SELECTABLE,
            },
            width="100%",
        ),
    )


@module.ui
def data_input_ui() -> ui.TagList:
    """Example loader, CSV upload, manual form, the case table and the physician notes."""
    first = next(iter(shared.PROTOCOLS))
    return ui.TagList(
        ui.layout_columns(
            ui.div(
                ui.card(
                    ui.card_header("Example patients"),
                    ui.input_select("example", "Example file",
                                    choices=_example_choices(first), width="100%"),
                    ui.div(ui.input_action_button("load_example", "Load example",
                                                  class_="btn-primary")),
                    ui.output_ui("example_status"),
                ),
                ui.card(
                    ui.card_header("Upload a CSV file"),
                    ui.input_file("upload", "Cases file (CSV, UTF-8, one row per case)",
                                  accept=[".csv", "text/csv"], multiple=False, width="100%",
                                  button_label="Choose file…"),
                    ui.tags.small(
                        "Columns: the ids, every feature and dose_eval_gy, as in the example "
                        f"files (at most {MAX_FILE_BYTES // (1024 * 1024)} MB). A file with "
                        "problems is refused as a whole; your current cases stay as they are.",
                        class_="text-muted",
                    ),
                    ui.output_ui("upload_status"),
                ),
            ),
            ui.card(
                ui.card_header("Current cases"),
                ui.output_ui("cases_status"),
                ui.output_data_frame("cases_table"),
                ui.div(
                    ui.input_action_button("clear", "Remove all cases",
                                           class_="btn-outline-danger btn-sm"),
                    ui.download_button("inputs_csv", "Save inputs (CSV)",
                                       class_="btn-outline-primary btn-sm"),
                    ui.download_button("inputs_print", "Printable inputs (HTML)",
                                       class_="btn-outline-primary btn-sm"),
                    class_="mt-2 d-flex flex-wrap gap-2",
                ),
                ui.output_ui("versions"),
            ),
            col_widths=(5, 7),
        ),
        ui.layout_columns(
            ui.card(
                ui.card_header("Saved patients"),
                ui.input_selectize("saved", "Stored cases of this protocol", choices=[],
                                   multiple=True, width="100%",
                                   options={"placeholder": "No stored case yet",
                                            "plugins": ["remove_button"]}),
                ui.div(ui.input_action_button("load_saved", "Load selected",
                                              class_="btn-primary btn-sm")),
                ui.output_ui("saved_status"),
            ),
            ui.card(
                ui.card_header("Follow-up: dose given and outcomes"),
                ui.output_ui("followup_form"),
                ui.div(ui.input_action_button("save_followup", "Save follow-up",
                                              class_="btn-primary btn-sm")),
                ui.output_ui("followup_status"),
            ),
            col_widths=(5, 7),
        ),
        ui.layout_columns(
            ui.card(
                ui.card_header("Enter a patient by hand"),
                ui.output_ui("form"),
                ui.div(
                    ui.input_action_button("add_manual", "Add this patient",
                                           class_="btn-primary"),
                    class_="mt-2",
                ),
                ui.output_ui("form_status"),
            ),
            ui.card(
                ui.card_header("Physician notes"),
                ui.tags.small("One note per shown case; notes go into the report. “Save "
                              "notes” stores them with the patient (each save is a version).",
                              class_="text-muted"),
                ui.output_ui("notes_ui"),
                ui.div(ui.input_action_button("save_notes", "Save notes",
                                              class_="btn-primary btn-sm")),
                ui.output_ui("notes_saved"),
            ),
            col_widths=(8, 4),
        ),
    )


@module.server
def data_input_server(
    input, output, session, *, protocol: Callable[[], Protocol], db: Store, user: UserInfo
) -> CaseSelection:
    """Own the session's cases and notes (saved to ``db`` as ``user``); return the reactive
    views siblings need."""
    store: reactive.Value[dict[str, pd.DataFrame]] = reactive.value(
        {name: shared.STARTUP_CASES[name].copy() for name in shared.PROTOCOLS}
    )
    notes_store: reactive.Value[dict[str, dict[str, str]]] = reactive.value({
        name: {lab: n.text for lab, n in db.latest_notes(
            name, case_labels(shared.STARTUP_CASES[name])).items()}
        for name in shared.PROTOCOLS
    })
    db_changed = reactive.value(0)
    saved_msg: reactive.Value[tuple[bool, str] | None] = reactive.value(None)
    notes_msg: reactive.Value[str | None] = reactive.value(None)
    followup_msg: reactive.Value[tuple[bool, str] | list[Problem] | None] = reactive.value(None)
    upload_problems: reactive.Value[tuple[str, list[Problem]] | None] = reactive.value(None)
    form_problems: reactive.Value[list[Problem] | None] = reactive.value(None)
    status: reactive.Value[dict[str, str]] = reactive.value({})
    remembered: dict[str, list[str]] = {
        name: case_labels(shared.STARTUP_CASES[name]) for name, p in shared.PROTOCOLS.items()
    }

    @reactive.calc
    def cases() -> pd.DataFrame:
        return store()[protocol().name]

    @reactive.calc
    def labels() -> list[str]:
        return case_labels(cases())

    @reactive.calc
    def shown() -> pd.DataFrame:
        df, all_labels = cases(), labels()
        chosen = [all_labels.index(lab) for lab in (input.show() or ()) if lab in all_labels]
        return df.iloc[chosen].reset_index(drop=True) if chosen else df.iloc[0:0]

    @reactive.calc
    def notes() -> dict[str, str]:
        return dict(notes_store()[protocol().name])

    def _set_status(key: str, text: str) -> None:
        status.set({**status(), key: text})

    def _update_chooser(selected: list[str]) -> None:
        name = protocol().name
        remembered[name] = selected
        ui.update_selectize("show", choices=case_labels(store()[name]),
                            selected=selected)

    def _add_cases(new: pd.DataFrame, source: str) -> tuple[int, int]:
        """Merge validated cases (same id: replaced), save them to the database as new input
        versions where they changed, and bring in their stored notes; returns (added,
        replaced)."""
        p = protocol()
        db.save_cases(p.name, case_records(new, p), source=source, username=user.username)
        db_changed.set(db_changed() + 1)
        with reactive.isolate():
            current = store()[p.name]
            current_labels = case_labels(current)
            chosen = [lab for lab in (input.show() or ()) if lab in current_labels]
        new_labels = case_labels(new)
        replaced = sum(lab in current_labels for lab in new_labels)
        keep = current.iloc[[i for i, lab in enumerate(current_labels) if lab not in new_labels]]
        merged = pd.concat([keep, new], ignore_index=True) if not keep.empty else new.copy()
        store.set({**store(), p.name: merged.reset_index(drop=True)})
        with reactive.isolate():
            current_notes = dict(notes_store()[p.name])
        for lab, note in db.latest_notes(p.name, new_labels).items():
            if not current_notes.get(lab, "").strip():
                current_notes[lab] = note.text
        if "note" in new.columns:
            records = {r.label: r for r in case_records(new, p)}
            for lab, text in zip(new_labels, new["note"].fillna(""), strict=True):
                if str(text).strip():
                    current_notes[lab] = str(text)
                    r = records[lab]
                    db.save_note(p.name, lab, r.patient_id, r.site_id, str(text),
                                 username=user.username)
        notes_store.set({**notes_store(), p.name: current_notes})
        if len(new_labels) >= MAX_SHOWN:
            selection = new_labels[:MAX_SHOWN]
        else:
            selection = ([lab for lab in chosen if lab not in new_labels] + new_labels)[-MAX_SHOWN:]
        _update_chooser(selection)
        return len(new_labels) - replaced, replaced

    def _summary(added: int, replaced: int, source: str) -> str:
        parts = [f"{added} case{'s' if added != 1 else ''} added"]
        if replaced:
            parts.append(f"{replaced} replaced (same id)")
        return f"{', '.join(parts)} from {source}."

    @reactive.effect
    @reactive.event(protocol)
    def _on_protocol() -> None:
        name = protocol().name
        ui.update_select("example", choices=_example_choices(name))
        valid = set(case_labels(store()[name]))
        ui.update_selectize("show", choices=case_labels(store()[name]),
                            selected=[lab for lab in remembered[name] if lab in valid])
        upload_problems.set(None)
        form_problems.set(None)
        status.set({})

    @reactive.effect
    @reactive.event(input.show, ignore_none=False)
    def _remember_selection() -> None:
        with reactive.isolate():
            name = protocol().name
            valid = set(labels())
        remembered[name] = [lab for lab in (input.show() or ()) if lab in valid]

    @reactive.effect
    @reactive.event(input.load_example)
    def _load_example() -> None:
        name = protocol().name
        examples = shared.EXAMPLES[name]
        choice = input.example()
        if choice and choice != ALL_EXAMPLES:
            examples = examples[examples["patient_id"] == choice]
        if examples.empty:
            _set_status("example", "Choose an example first.")
            return
        added, replaced = _add_cases(examples.reset_index(drop=True), "example")
        _set_status("example", _summary(added, replaced, "the example file"))

    @reactive.effect
    @reactive.event(input.upload)
    def _upload() -> None:
        files = input.upload()
        if not files:
            return
        info = files[0]
        filename = str(info.get("name", "the file"))
        try:
            new = read_cases(Path(info["datapath"]), protocol())
        except SchemaError as err:
            upload_problems.set((filename, err.problems))
            _set_status("upload", "")
            return
        except (OSError, UnicodeError, TypeError, ValueError) as err:
            upload_problems.set((filename, [Problem(None, None, None, f"the file could not be "
                                                    f"read ({type(err).__name__})")]))
            _set_status("upload", "")
            return
        upload_problems.set(None)
        added, replaced = _add_cases(new, "upload")
        _set_status("upload", _summary(added, replaced, filename))

    @reactive.effect
    @reactive.event(input.add_manual)
    def _add_manual() -> None:
        p = protocol()
        row: dict[str, object] = {"patient_id": input["m_patient_id"]() or ""}
        if "site_id" in p.id_columns:
            row["site_id"] = input["m_site_id"]()
        for name in (*p.feature_names, "dose_eval_gy"):
            row[name] = input[f"m_{name}"]()
        frame = pd.DataFrame([{k: (float("nan") if v is None else v) for k, v in row.items()}])
        try:
            new = validate_cases(frame, p)
        except SchemaError as err:
            form_problems.set(err.problems)
            _set_status("form", "")
            return
        form_problems.set(None)
        added, replaced = _add_cases(new, "form")
        _set_status("form", _summary(added, replaced, "the form"))

    @reactive.effect
    @reactive.event(input.clear)
    def _clear() -> None:
        name = protocol().name
        store.set({**store(), name: pd.DataFrame()})
        notes_store.set({**notes_store(), name: {}})
        _update_chooser([])
        _set_status("example", "")
        _set_status("upload", "")

    @reactive.effect
    def _collect_notes() -> None:
        name = protocol().name
        updates: dict[str, str] = {}
        for lab in case_labels(shown()):
            try:
                value = input[_note_input_id(name, lab)]()
            except SilentException:
                continue
            if value is not None:
                updates[lab] = str(value)[:MAX_NOTE_CHARS]
        with reactive.isolate():
            current = notes_store()
        merged = {**current[name], **updates}
        if merged != current[name]:
            notes_store.set({**current, name: merged})

    @render.ui
    def example_status():
        text = status().get("example")
        return ui.p(text, class_="text-success small mt-2") if text else None

    @render.ui
    def upload_status():
        refused = upload_problems()
        if refused is not None:
            filename, problems = refused
            n = len(problems)
            return _error_box(
                f"{filename} was not loaded: {n} problem{'s' if n != 1 else ''} found.",
                problems,
                show_rows=True,
                note="Nothing was imported; your current cases are unchanged. Fix the file "
                "and upload it again.",
            )
        text = status().get("upload")
        return ui.p(text, class_="text-success small mt-2") if text else None

    @render.ui
    def form_status():
        problems = form_problems()
        if problems:
            return _error_box(
                "This patient was not added.", problems, show_rows=False,
                note="Correct these fields above and press “Add this patient” again.",
                labels=_form_labels(protocol()),
            )
        text = status().get("form")
        return ui.p(text, class_="text-success small mt-2") if text else None

    @render.ui
    def cases_status():
        n = len(cases())
        if n == 0:
            return ui.div(EMPTY_STATE, class_="artds-empty")
        shown_n = len(shown())
        return ui.p(f"{n} case{'s' if n != 1 else ''} loaded, {shown_n} shown "
                    "(choose them in the sidebar).", class_="small text-muted mb-1")

    @render.data_frame
    def cases_table():
        df = cases()
        if df.empty:
            return None
        p = protocol()
        table = pd.DataFrame({"case": case_labels(df)})
        table["dose_eval_gy"] = df["dose_eval_gy"].to_numpy()
        for name in p.feature_names:
            table[name] = df[name].round(4).to_numpy()
        # As tall as the rows need (a header and ~33 px per row), at most 300 px, then scroll.
        return render.DataGrid(
            table, width="100%", height=f"{min(300, 48 + 33 * len(table))}px", summary=False,
            styles=[{"cols": [0], "style": {"white-space": "nowrap", "font-weight": "600"}}],
        )

    @render.ui
    def form():
        p = protocol()
        name = p.name
        fields = [
            ui.div(
                ui.input_text("m_patient_id", "Patient id", value="NEW-001", width="100%"),
                ui.tags.small("letters, digits, - and _", class_="text-muted form-hint"),
                class_="artds-field",
            )
        ]
        if "site_id" in p.id_columns:
            fields.append(_numeric_field("m_site_id", "Tumour site number", "", 1, 5, 1, 1))
        fields.append(_numeric_field(
            "m_dose_eval_gy", "Evaluation-phase dose per fraction", "Gy",
            p.dose_eval_min_gy, p.dose_eval_max_gy, 0.1, _first_value(name, "dose_eval_gy"),
        ))
        for feat in p.features:
            fields.append(_numeric_field(
                f"m_{feat.name}", feat.label, feat.unit, feat.min, feat.max,
                1 if feat.integer else "any", _first_value(name, feat.name),
            ))
        return ui.TagList(
            ui.tags.small(
                f"{p.label}. Values are pre-filled from the first example patient.",
                class_="text-muted",
            ),
            ui.layout_column_wrap(*fields, width="220px", gap="0.6rem", fill=False),
        )

    @render.ui
    def notes_ui():
        p = protocol()
        labs = case_labels(shown())
        if not labs:
            return ui.div("Choose cases to show to write notes for them.", class_="artds-empty")
        with reactive.isolate():
            current = notes_store()[p.name]
        return ui.TagList(*[
            ui.input_text_area(
                _note_input_id(p.name, lab), f"Notes for {lab}", value=current.get(lab, ""),
                rows=3, width="100%", placeholder="Assessment, plan, reasons for the dose…",
                autoresize=True,
            )
            for lab in labs
        ])

    # ------------------------------------------------------------ saved patients

    @reactive.effect
    def _saved_choices() -> None:
        db_changed()
        name = protocol().name
        choices = {}
        for ps in db.patients(name):
            extra = " · outcomes known" if ps.has_outcomes else ""
            choices[ps.label] = (f"{ps.label} (v{ps.n_versions}, {_when(ps.latest_at)}, "
                                 f"{ps.latest_by}{extra})")
        with reactive.isolate():
            keep = [lab for lab in (input.saved() or ()) if lab in choices]
        n = len(choices)
        ui.update_selectize(
            "saved", label=f"Stored cases of this protocol ({n})", choices=choices,
            selected=keep,
            options={"placeholder": "Choose stored cases…" if n else "No stored case yet",
                     "plugins": ["remove_button"]})

    @reactive.effect
    @reactive.event(input.load_saved)
    def _load_saved() -> None:
        p = protocol()
        labels = list(input.saved() or ())
        if not labels:
            saved_msg.set((False, "Choose stored cases to load first."))
            return
        found = db.latest_inputs(p.name, labels)
        columns = _stored_columns(p)
        frame = pd.DataFrame([{c: found[lab].values.get(c) for c in columns}
                              for lab in labels if lab in found], columns=columns)
        frame = frame.astype(object).where(frame.notna(), None)
        try:
            new = validate_cases(frame, p)
        except SchemaError as err:
            saved_msg.set((False, f"The stored inputs no longer validate: {err}"))
            return
        added, replaced = _add_cases(new, "saved")
        saved_msg.set((True, _summary(added, replaced, "the database")))

    @render.ui
    def saved_status():
        msg = saved_msg()
        if msg is None:
            return None
        ok, text = msg
        return ui.p(text, class_="small mt-2 " + ("text-success" if ok else "text-danger"))

    @render.ui
    def versions():
        db_changed()
        p = protocol()
        labs = case_labels(shown())
        if not labs:
            return None
        latest = db.latest_inputs(p.name, labs)
        items = []
        for lab in labs:
            v = latest.get(lab)
            if v is None:
                items.append(ui.tags.li(ui.tags.strong(lab), ": not saved (example shown at "
                                        "start; it is saved once you load or change it)"))
                continue
            history = db.input_history(p.name, lab)
            items.append(ui.tags.li(
                ui.tags.strong(lab),
                f": version {v.version} of {len(history)}, saved {_when(v.created_at)} by "
                f"{v.created_by} ({v.source}) · input hash ",
                ui.tags.code(v.input_hash[:12]),
                _version_details(history) if len(history) > 1 else None,
            ))
        return ui.div(ui.tags.strong("Stored versions of the shown cases", class_="small"),
                      ui.tags.ul(*items, class_="small mb-0 versions-list"), class_="mt-2")

    # ------------------------------------------------------------ notes

    @reactive.effect
    @reactive.event(input.save_notes)
    def _save_notes() -> None:
        p = protocol()
        written = notes()
        saved = 0
        for r in case_records(shown(), p):
            text = written.get(r.label, "")[:MAX_NOTE_CHARS]
            if db.save_note(p.name, r.label, r.patient_id, r.site_id, text,
                            username=user.username) is not None:
                saved += 1
        notes_msg.set(f"{saved} note{'s' if saved != 1 else ''} saved." if saved
                      else "No change to save.")
        db_changed.set(db_changed() + 1)

    @render.ui
    def notes_saved():
        db_changed()
        p = protocol()
        labs = case_labels(shown())
        found: dict[str, NoteInfo] = db.latest_notes(p.name, labs) if labs else {}
        lines = [ui.tags.li(ui.tags.strong(lab), f": saved {_when(n.created_at)} by "
                            f"{n.created_by} (version {n.version})")
                 for lab, n in found.items()]
        msg = notes_msg()
        return ui.TagList(
            ui.p(msg, class_="small text-success mt-2 mb-1", role="status") if msg else None,
            ui.tags.ul(*lines, class_="small text-muted mb-0 notes-meta") if lines else None,
        )

    # ------------------------------------------------------------ follow-up

    @render.ui
    def followup_form():
        p = protocol()
        labs = case_labels(shown())
        if not labs:
            return ui.div("Choose a case in the sidebar to record its follow-up.",
                          class_="artds-empty")
        spec = next(c for c in column_specs(p) if c.name == "dose_adapt_gy")
        yes_no = {"": "unknown", "1": "1 (yes)", "0": "0 (no)"}
        return ui.layout_column_wrap(
            ui.input_select("fu_case", "Case", choices=labs),
            ui.input_numeric("fu_dose", f"Adaptive dose per fraction given (Gy, accepted "
                             f"{spec.min:g} – {spec.max:g})", value=None, min=spec.min,
                             max=spec.max, step=0.1),
            ui.input_select("fu_target", p.target.outcome_label, choices=yes_no),
            ui.input_select("fu_oar", p.oar.outcome_label, choices=yes_no),
            width="200px", fill=False,
        )

    @reactive.effect
    @reactive.event(input.save_followup)
    def _save_followup() -> None:
        p = protocol()
        current, labs = shown(), case_labels(shown())
        label = input.fu_case() if "fu_case" in input else None
        if not label or label not in labs:
            followup_msg.set((False, "Choose a case first."))
            return
        row = current.iloc[[labs.index(label)]].reset_index(drop=True)
        frame = row[[c for c in _stored_columns(p) if c in row.columns]].copy()
        frame["dose_adapt_gy"] = input.fu_dose()
        frame[p.target.outcome] = input.fu_target() or None
        frame[p.oar.outcome] = input.fu_oar() or None
        frame = frame.astype(object).where(frame.notna(), None)
        try:
            new = validate_cases(frame, p)
        except SchemaError as err:
            followup_msg.set(err.problems)
            return
        _add_cases(new, "follow-up")
        followup_msg.set((True, f"Follow-up of {label} saved as a new input version."))

    @render.ui
    def followup_status():
        msg = followup_msg()
        if msg is None:
            return None
        if isinstance(msg, list):
            return _error_box("The follow-up was not saved.", msg, show_rows=False,
                              note="Correct the fields above and save again.",
                              labels=_form_labels(protocol()))
        ok, text = msg
        return ui.p(text, class_="small mt-2 " + ("text-success" if ok else "text-danger"))

    # ------------------------------------------------------------ save / print inputs

    @render.download(filename=lambda: f"artds-inputs-{protocol().name}.csv",
                     media_type="text/csv")
    def inputs_csv():
        yield _inputs_csv(cases(), protocol(), notes())

    @render.download(filename=lambda: f"artds-inputs-{protocol().name}.html",
                     media_type="text/html")
    def inputs_print():
        p = protocol()
        saved = db.latest_inputs(p.name, labels())
        yield render_inputs(cases(), p, notes=notes(), user=user.username,
                            versions={lab: v.version for lab, v in saved.items()})

    return CaseSelection(cases=cases, shown=shown, notes=notes)


def _version_details(history: list[SavedInput]) -> ui.Tag:
    """Every stored version of a case, with the values that changed from the one before."""
    rows = []
    previous: dict = {}
    for v in history:
        changed = [k for k, val in v.values.items() if previous and previous.get(k) != val]
        rows.append(ui.tags.li(
            f"v{v.version}: {_when(v.created_at)}, {v.created_by} ({v.source})",
            f" — changed: {', '.join(changed)}" if changed else ""))
        previous = v.values
    return ui.tags.details(ui.tags.summary("history"), ui.tags.ul(*rows))
