"""Users panel (administrators): list users, add one, change a role, disable or enable, set a
new password.

The panel exists only in administrators' sessions (``app.app`` registers it for them); every
action is also checked here and recorded as an audit event by the store. Changes reach the
user's open sessions (``app.auth``): a new role at their next action (the page is rebuilt for
it), "Disable" and a new password end their logins — all but this one when administrators set
their own password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pandas as pd
from shiny import module, reactive, render, ui

from app.panels.widgets import status_line
from engine.platform import accounts
from engine.platform.store import ROLES, Store, StoreError, UserInfo

__all__ = ["users_server", "users_ui"]


@module.ui
def users_ui() -> ui.TagList:
    return ui.layout_columns(
        ui.card(
            ui.card_header("Users"),
            ui.output_data_frame("table"),
        ),
        ui.div(
            ui.card(
                ui.card_header("Add a user"),
                ui.input_text("username", "User name", width="100%"),
                ui.input_select("role", "Role", choices=list(ROLES), selected="clinician",
                                width="100%"),
                ui.input_password("password", f"Password (at least {accounts.MIN_PASSWORD_CHARS} "
                                  "characters)", width="100%"),
                ui.input_password("password2", "Password again", width="100%"),
                ui.input_action_button("add", "Add user", class_="btn-primary"),
                ui.output_ui("add_status"),
            ),
            ui.card(
                ui.card_header("Change a user"),
                ui.input_select("who", "User", choices=[], width="100%"),
                ui.input_select("new_role", "Role", choices=list(ROLES), width="100%"),
                ui.div(
                    ui.input_action_button("set_role", "Set role", class_="btn-sm"),
                    ui.input_action_button("disable", "Disable",
                                           class_="btn-sm btn-outline-danger"),
                    ui.input_action_button("enable", "Enable", class_="btn-sm"),
                    class_="d-flex gap-2",
                ),
                ui.input_password("new_password", "New password", width="100%"),
                ui.input_password("new_password2", "New password again", width="100%"),
                ui.div(ui.input_action_button("set_password", "Set password",
                                              class_="btn-sm")),
                ui.tags.small("A new role applies at the user's next action (their page "
                              "reloads); “Disable” and a new password end all their logins "
                              "(yours: all but this one).", class_="text-muted"),
                ui.output_ui("change_status"),
            ),
        ),
        col_widths=(7, 5),
    )


@module.server
def users_server(input, output, session, *, store: Store, user: UserInfo,
                 login_token: str | None = None) -> None:
    """The Users panel; ``login_token`` is this browser's login (kept when administrators set
    their own password)."""
    if not accounts.role_allows(user.role, "admin"):
        raise PermissionError("the Users panel is for administrators")
    changed = reactive.value(0)
    add_msg: reactive.Value[tuple[bool, str] | None] = reactive.value(None)
    change_msg: reactive.Value[tuple[bool, str] | None] = reactive.value(None)

    @reactive.calc
    def users() -> list[UserInfo]:
        changed()
        return store.users()

    @reactive.effect
    def _choices() -> None:
        with reactive.isolate():
            current = input.who()
        names = [u.username for u in users()]
        ui.update_select("who", choices=names,
                         selected=current if current in names else (names[0] if names else None))

    @reactive.effect
    def _role_of_chosen() -> None:
        # The role selector starts at the chosen user's current role.
        found = next((u for u in users() if u.username == input.who()), None)
        if found is not None:
            ui.update_select("new_role", selected=found.role)

    @render.data_frame
    def table():
        return render.DataGrid(pd.DataFrame([{
            "user": u.username, "role": u.role, "state": "active" if u.active else "disabled",
            "created (UTC)": f"{u.created_at:%Y-%m-%d %H:%M}", "by": u.created_by,
        } for u in users()]), width="100%", summary=False)

    async def _with_new_password(msg: reactive.Value[tuple[bool, str] | None],
                                 fields: tuple[str, str], action: Callable[[str], str]) -> bool:
        """Run ``action(password)`` when the two password ``fields`` agree, then empty them.

        ``msg`` gets the line ``action`` returns, or why nothing was done (the fields differ, or
        ``action`` raised ``ValueError``: a bad password or user). True when it was done."""
        first, second = fields
        password = input[first]()
        if password != input[second]():
            msg.set((False, "The two passwords differ."))
            return False
        try:
            # argon2 hashing takes tens of milliseconds by design: not on the event loop.
            done = await asyncio.to_thread(action, password)
        except ValueError as err:
            msg.set((False, str(err)[:1].upper() + str(err)[1:] + "."))
            return False
        ui.update_text(first, value="")
        ui.update_text(second, value="")
        msg.set((True, done))
        return True

    @reactive.effect
    @reactive.event(input.add)
    async def _add() -> None:
        username, role = (input.username() or "").strip(), input.role()

        def add(password: str) -> str:
            made = accounts.create_user(store, username, password, role, created_by=user.username)
            return f"Added {made.role} {made.username}."

        if await _with_new_password(add_msg, ("password", "password2"), add):
            changed.set(changed() + 1)

    def _change(action: str) -> None:
        who = input.who()
        if not who:
            return
        if who == user.username and action in ("disable", "role"):
            change_msg.set((False, "You cannot disable yourself or change your own role."))
            return
        try:
            if action == "role":
                store.set_role(who, input.new_role(), by=user.username)
            else:
                store.set_active(who, action == "enable", by=user.username)
        except StoreError as err:
            change_msg.set((False, str(err)))
            return
        change_msg.set((True, f"{who}: done ({action})."))
        changed.set(changed() + 1)

    @reactive.effect
    @reactive.event(input.set_password)
    async def _set_password() -> None:
        who = input.who()
        if not who:
            return

        # Whoever knew the old password is logged out; administrators setting their own keep
        # this login.
        keep = login_token if who == user.username else None

        def change(password: str) -> str:
            accounts.change_password(store, who, password, by=user.username, keep_token=keep)
            return (f"{who}: password changed; "
                    + ("your other logins ended." if keep else "their logins ended."))

        await _with_new_password(change_msg, ("new_password", "new_password2"), change)

    @reactive.effect
    @reactive.event(input.set_role)
    def _set_role() -> None:
        _change("role")

    @reactive.effect
    @reactive.event(input.disable)
    def _disable() -> None:
        _change("disable")

    @reactive.effect
    @reactive.event(input.enable)
    def _enable() -> None:
        _change("enable")

    @render.ui
    def add_status():
        return status_line(add_msg())

    @render.ui
    def change_status():
        return status_line(change_msg())
