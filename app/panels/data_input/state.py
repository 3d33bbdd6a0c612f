"""What the parts of the Data input panel share: the session's cases and notes, and how cases
are added.

One :class:`DataInputState` per session, made by :func:`new_state` inside the panel's module
server and passed to each part's server function (examples, upload, form, case list, saved
patients and follow-up, notes). Each part keeps its own messages; only what several parts read or
write lives here.

Cases are added off the event loop every session shares: :meth:`DataInputState.add_cases` hands
the reading (a file's validation, the stored versions of saved patients) and the saving to a
database worker thread through one extended task per session (requests queue, in order), and
only the merge into the session's cases and the messages run on the loop when it is done. A
10,000-row file takes seconds to validate and save; meanwhile the app answers every session.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
from shiny import reactive
from shiny.session import Inputs, require_active_session

from app import shared
from app.runtime import in_database_thread
from engine.core.protocols import Protocol
from engine.core.schema import case_labels
from engine.core.tabular import Problem, SchemaError
from engine.dvh import PlanImport
from engine.platform.inputs import merge_cases, store_cases
from engine.platform.store import Store, UserInfo

_log = logging.getLogger(__name__)

Read = Callable[[], "pd.DataFrame | list[Problem]"]
"""Gets the validated cases to add (in a worker thread): the table, or the problems that refuse
it (or raises :class:`~engine.core.tabular.SchemaError`)."""

__all__ = ["MAX_SELECTABLE", "MAX_SHOWN", "CaseSelection", "DataInputState", "PlanLink", "Read",
           "new_state", "offer_cases"]

MAX_SHOWN = 4
"""Cases selected automatically after a load (users may pick more, up to MAX_SELECTABLE)."""
MAX_SELECTABLE = 7
"""Most cases shown side by side (one colour each)."""


@dataclass(frozen=True)
class CaseSelection:
    """Reactive views of the session's cases that sibling panels read."""

    cases: Callable[[], pd.DataFrame]
    """All cases of the current protocol (validated)."""
    shown: Callable[[], pd.DataFrame]
    """The cases chosen for display, in the chosen order."""
    notes: Callable[[], dict[str, str]]
    """Physician notes of the current protocol keyed by case label."""
    plans: Callable[[], dict[str, PlanImport]]
    """Imported plans of the current protocol keyed by case label: those whose dosimetric
    features the case still holds (for the report)."""


@dataclass(frozen=True)
class PlanLink:
    """An imported plan whose dosimetric features were used for a case (kept in the session
    only, never on disk)."""

    result: PlanImport
    """The plan's evaluation for the protocol."""
    values: dict[str, float]
    """Feature → the value given to the case, Gy (the plan's value rounded as the form shows
    it); the link holds while the case keeps these values."""


@dataclass(frozen=True)
class _Adding:
    """A request to add cases: what to read in the worker thread, and what to say after."""

    protocol: Protocol
    """The protocol the cases are for (the one current when asked)."""
    source: str
    """What they come from, stored with each new version (``"upload"``, ``"form"``, ...)."""
    read: Read = field(compare=False)
    """Gets the validated cases (runs in the worker thread)."""
    done: Callable[[int, int], None] = field(compare=False)
    """Called on the loop once they are saved and shown: (cases added, cases replaced)."""
    refused: Callable[[list[Problem]], None] = field(compare=False)
    """Called on the loop instead when ``read`` refused them or the database failed."""


@dataclass(frozen=True)
class _Added:
    """What the worker thread made of an :class:`_Adding`."""

    request: _Adding
    cases: pd.DataFrame | None = None
    """The validated cases, saved (None when refused)."""
    notes: dict[str, str] = field(default_factory=dict)
    """Case label → the newest stored note of each of the cases that has one."""
    problems: list[Problem] = field(default_factory=list)
    """Why nothing was added (empty on success)."""


def offer_cases(input_id: str, labels: list[str], selected: list[str]) -> None:
    """Set a selectize's choices to the case ``labels`` with ``selected`` chosen.

    The message ``ui.update_selectize`` sends, with the options written as plain HTML: Shiny
    builds a tag object per option, which took 0.5 s of the event loop for the 10,000 cases of
    an uploaded file (this takes 10 ms)."""
    chosen = set(selected)
    options = "".join(
        f'<option value="{html.escape(lab)}"{" selected" if lab in chosen else ""}>'
        f"{html.escape(lab)}</option>" for lab in labels)
    require_active_session(None).send_input_message(
        input_id, {"options": options, "value": list(selected)})


def _read_and_store(db: Store, request: _Adding, username: str) -> _Added:
    """The worker thread's part of adding cases: read them, save them, fetch their notes."""
    try:
        got = request.read()
        if isinstance(got, list):
            return _Added(request, problems=got)
        notes = store_cases(db, got, request.protocol, source=request.source, username=username)
        return _Added(request, cases=got, notes=notes)
    except SchemaError as err:
        return _Added(request, problems=err.problems)
    except Exception as err:  # the database failed: say so, log the kind (never the values)
        _log.exception("saving %s cases failed: %s", request.source, type(err).__name__)
        return _Added(request, problems=[Problem(
            None, None, None, f"the cases could not be saved ({type(err).__name__}); nothing "
            "was added, try again")])


@dataclass(frozen=True)
class DataInputState:
    """A session's cases and notes (per protocol) and the reactive views of them."""

    input: Inputs
    """The panel module's inputs (the sidebar chooser ``show`` among them)."""
    protocol: Callable[[], Protocol]
    """Reactive: the current protocol."""
    db: Store
    """The database every added case, note and follow-up is saved in."""
    user: UserInfo
    """The logged-in user (saved with every version)."""
    case_tables: reactive.Value[dict[str, pd.DataFrame]]
    """Protocol name → the session's validated cases of that protocol."""
    note_texts: reactive.Value[dict[str, dict[str, str]]]
    """Protocol name → case label → the note as written in this session (saved or not)."""
    db_changed: reactive.Value[int]
    """Counts the session's writes to the database; outputs that list stored data read it."""
    status: reactive.Value[dict[str, str]]
    """Success line of a part ("example", "upload", "form"), empty when there is none."""
    plan_links: reactive.Value[dict[str, dict[str, PlanLink]]]
    """Protocol name → case label → the imported plan whose features the case was given."""
    remembered: dict[str, list[str]]
    """Protocol name → the cases chosen in the sidebar when that protocol was last shown."""
    saving: reactive.ExtendedTask
    """Reads and saves the cases of :meth:`add_cases` requests in a database thread."""
    cases: Callable[[], pd.DataFrame]
    """Reactive: all cases of the current protocol."""
    labels: Callable[[], list[str]]
    """Reactive: their case labels."""
    shown: Callable[[], pd.DataFrame]
    """Reactive: the cases chosen in the sidebar, in the chosen order."""
    notes: Callable[[], dict[str, str]]
    """Reactive: the notes of the current protocol keyed by case label."""
    plans: Callable[[], dict[str, PlanImport]]
    """Reactive: the imported plans of the current protocol's cases that still hold the plan's
    dosimetric features, keyed by case label."""

    def set_status(self, key: str, text: str) -> None:
        """Set (or clear, with "") the success line of part ``key``."""
        self.status.set({**self.status(), key: text})

    def mark_db_changed(self) -> None:
        self.db_changed.set(self.db_changed() + 1)

    def update_chooser(self, selected: list[str]) -> None:
        """Offer the current protocol's cases in the sidebar with ``selected`` chosen."""
        name = self.protocol().name
        self.remembered[name] = selected
        offer_cases("show", case_labels(self.case_tables()[name]), selected)

    def add_cases(self, read: Read | pd.DataFrame, source: str, *,
                  done: Callable[[int, int], None],
                  refused: Callable[[list[Problem]], None] | None = None) -> None:
        """Add cases off the event loop: ``read()`` (or the validated table given) in a
        database worker thread, then the cases saved there as new input versions where they
        changed (with the notes of a ``note`` column); back on the loop they are merged into the
        session's cases (same id: replaced), their stored notes brought in (a ``note`` column
        wins), and ``done(added, replaced)`` is called, or ``refused(problems)`` when reading
        refused them or the database failed."""
        reader: Read = (lambda: read) if isinstance(read, pd.DataFrame) else read
        self.saving(_Adding(self.protocol(), source, reader, done,
                            refused or (lambda problems: None)), self.user.username)

    def _show_added(self, added: _Added) -> None:
        """Merge cases the worker saved into the session (on the loop, in an effect)."""
        request = added.request
        if added.cases is None:
            request.refused(added.problems)
            return
        new, name = added.cases, request.protocol.name
        self.mark_db_changed()
        with reactive.isolate():
            current = self.case_tables()[name]
            current_labels = set(case_labels(current))
            current_notes = dict(self.note_texts()[name])
            showing = self.protocol().name == name
            chosen = [lab for lab in ((self.input.show() or ()) if showing
                                      else self.remembered[name]) if lab in current_labels]
        new_labels = case_labels(new)
        merged, replaced = merge_cases(current, new)
        self.case_tables.set({**self.case_tables(), name: merged})
        written = ({lab for lab, text in zip(new_labels, new["note"].fillna(""), strict=True)
                    if str(text).strip()} if "note" in new.columns else set())
        for lab, text in added.notes.items():
            if lab in written or not current_notes.get(lab, "").strip():
                current_notes[lab] = text
        self.note_texts.set({**self.note_texts(), name: current_notes})
        if len(new_labels) >= MAX_SHOWN:
            selection = new_labels[:MAX_SHOWN]
        else:
            selection = ([lab for lab in chosen if lab not in new_labels] + new_labels)[-MAX_SHOWN:]
        if showing:
            self.update_chooser(selection)
        else:  # shown when the user comes back to that protocol
            self.remembered[name] = selection
        request.done(len(new_labels) - replaced, replaced)


def new_state(
    input: Inputs, *, protocol: Callable[[], Protocol], db: Store, user: UserInfo
) -> DataInputState:
    """A session's state, starting with each protocol's first example patient (and its stored
    notes); call inside the panel's module server."""
    case_tables: reactive.Value[dict[str, pd.DataFrame]] = reactive.value(
        {name: shared.STARTUP_CASES[name].copy() for name in shared.PROTOCOLS}
    )
    # The stored notes of the start-up cases arrive from a database thread (notes_server).
    note_texts: reactive.Value[dict[str, dict[str, str]]] = reactive.value(
        {name: {} for name in shared.PROTOCOLS})

    @reactive.extended_task
    async def saving(request: _Adding, username: str) -> _Added:
        return await in_database_thread(_read_and_store, db, request, username)

    @reactive.calc
    def cases() -> pd.DataFrame:
        return case_tables()[protocol().name]

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
        return dict(note_texts()[protocol().name])

    plan_links: reactive.Value[dict[str, dict[str, PlanLink]]] = reactive.value(
        {name: {} for name in shared.PROTOCOLS})

    @reactive.calc
    def plans() -> dict[str, PlanImport]:
        df, all_labels = cases(), labels()
        out = {}
        for label, link in plan_links()[protocol().name].items():
            if label not in all_labels:
                continue
            row = df.iloc[all_labels.index(label)]
            # A later upload, form or version may have changed the features: the plan no
            # longer describes the case then.
            if all(abs(float(row[k]) - v) <= 1e-9 for k, v in link.values.items()):
                out[label] = link.result
        return out

    state = DataInputState(
        input=input, protocol=protocol, db=db, user=user, case_tables=case_tables,
        note_texts=note_texts, db_changed=reactive.value(0), status=reactive.value({}),
        plan_links=plan_links,
        remembered={name: case_labels(shared.STARTUP_CASES[name]) for name in shared.PROTOCOLS},
        saving=saving, cases=cases, labels=labels, shown=shown, notes=notes, plans=plans,
    )

    @reactive.effect
    def _added() -> None:
        # Runs once per finished request (the task flushes after each before starting the
        # next queued one).
        if saving.status() == "success":
            result = saving.result()
            with reactive.isolate():
                state._show_added(result)

    return state
