"""Users panel (administrators): list users, add one, change a role, disable or enable, set a
new password.

The panel exists only in administrators' sessions (``app.app`` registers it for them); every
action is also checked here and recorded as an audit event by the store.
"""

from __future__ import annotations

import asyncio

import pandas as pd
from shiny import module, reactive, render, ui

from engine.platform import accounts as auth
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
                ui.input_password("password", f"Password (at least {auth.MIN_PASSWORD_CHARS} "
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
                ui.tags.small("A new password does not end the user's open sessions; "
                              "“Disable” does.", class_="text-muted"),
                ui.output_ui("change_status"),
            ),
        ),
        col_widths=(7, 5),
    )


@module.server
def users_server(input, output, session, *, store: Store, user: UserInfo) -> None:
    if not auth.role_allows(user.role, "admin"):
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

    @reactive.effect
    @reactive.event(input.add)
    async def _add() -> None:
        if input.password() != input.password2():
            add_msg.set((False, "The two passwords differ."))
            return
        try:
            # argon2 hashing takes tens of milliseconds by design: not on the event loop.
            made = await asyncio.to_thread(
                auth.create_user, store, (input.username() or "").strip(), input.password(),
                input.role(), created_by=user.username)
        except ValueError as err:
            add_msg.set((False, str(err)[:1].upper() + str(err)[1:] + "."))
            return
        ui.update_text("password", value="")
        ui.update_text("password2", value="")
        add_msg.set((True, f"Added {made.role} {made.username}."))
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
        if input.new_password() != input.new_password2():
            change_msg.set((False, "The two passwords differ."))
            return
        try:
            await asyncio.to_thread(auth.change_password, store, who, input.new_password(),
                                    by=user.username)
        except ValueError as err:
            change_msg.set((False, str(err)[:1].upper() + str(err)[1:] + "."))
            return
        ui.update_text("new_password", value="")
        ui.update_text("new_password2", value="")
        change_msg.set((True, f"{who}: password changed."))

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

    def _status(msg: tuple[bool, str] | None):
        if msg is None:
            return None
        ok, text = msg
        return ui.div(text, class_="small mt-2 " + ("text-success" if ok else "text-danger"),
                      role="status")

    @render.ui
    def add_status():
        return _status(add_msg())

    @render.ui
    def change_status():
        return _status(change_msg())
