"""Users: create accounts, change roles, deactivate or reactivate, unlock a backed-off sign-in
(admins only; all audited)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis.services import users as user_admin
from analysis.services.common import ROLES, FieldError, clinic_zone, format_clinic_time
from ui import frame, widgets

FLASH = "users_flash"
ROLE_LABELS = {r: r.replace("_", " ").capitalize() for r in ROLES}


def _create() -> None:
    with st.form("create_user", clear_on_submit=True):
        st.subheader("New account")
        cols = st.columns(3)
        email = cols[0].text_input("Email")
        name = cols[1].text_input("Name")
        role = cols[2].selectbox("Role", ROLES, format_func=widgets.labeller(ROLE_LABELS))
        password = st.text_input(
            "Initial password",
            type="password",
            help=f"At least {user_admin.MIN_PASSWORD_LENGTH} characters. Leave empty for an account "
            "that signs in only through the clinic's identity provider (OIDC).",
        )
        if not st.form_submit_button("Create account", icon=":material/person_add:"):
            return
    try:
        frame.call(
            user_admin.create_user,
            email=email,
            display_name=name,
            role=role,
            password=password or None,
        )
    except FieldError as exc:
        st.error(f"{exc.field.replace('_', ' ').capitalize()}: {exc}")
        return
    st.session_state[FLASH] = f"Account created for {user_admin.normalise_email(email)}."
    st.rerun()


def _manage(users: pd.DataFrame) -> None:
    st.subheader("Change an account")
    # labels must not change when the role does, or the selection would jump to another account
    labels = {int(r.id): str(r.email) for r in users.itertuples()}
    user_id = st.selectbox(
        "Account", list(labels), format_func=widgets.labeller(labels), key="users_account"
    )
    row = users[users["id"] == user_id].iloc[0]
    locked = row.get("locked_until")
    locked = None if locked is None or pd.isna(locked) else locked
    st.caption(
        f"{ROLE_LABELS[row['role']]}, {'active' if row['active'] else 'inactive'}"
        + (
            f", sign-in backed off until {format_clinic_time(locked, '%H:%M')} after failed "
            "attempts"
            if locked is not None
            else ""
        )
    )
    if locked is not None and st.button(
        "Unlock sign-in", icon=":material/lock_open:", key=f"unlock_{user_id}"
    ):
        frame.call(user_admin.unlock_account, user_id=user_id)
        st.session_state[FLASH] = f"{row['email']} can sign in again now."
        st.rerun()
    cols = st.columns([2, 1, 1])
    role = cols[0].selectbox(
        "Role",
        ROLES,
        index=ROLES.index(row["role"]),
        format_func=widgets.labeller(ROLE_LABELS),
        key=f"role_{user_id}",
    )
    try:
        if cols[1].button("Save role", disabled=role == row["role"], icon=":material/badge:"):
            frame.call(user_admin.set_role, user_id=user_id, role=role)
            st.session_state[FLASH] = f"{row['email']} is now {ROLE_LABELS[role].lower()}."
            st.rerun()
        if row["active"]:
            if cols[2].button("Deactivate", icon=":material/person_off:"):
                frame.call(user_admin.deactivate_user, user_id=user_id)
                st.session_state[FLASH] = f"{row['email']} is deactivated and signed out."
                st.rerun()
        elif cols[2].button("Reactivate", icon=":material/person_check:"):
            frame.call(user_admin.reactivate_user, user_id=user_id)
            st.session_state[FLASH] = f"{row['email']} can sign in again."
            st.rerun()
    except FieldError as exc:
        st.error(str(exc))
    with st.form(f"password_{user_id}", clear_on_submit=True):
        new = st.text_input(
            "New password",
            type="password",
            help="Signs the person out everywhere. Tell them the new password "
            "in person; they cannot change it themselves yet.",
        )
        if st.form_submit_button("Reset password", icon=":material/password:"):
            try:
                frame.call(user_admin.set_password, user_id=user_id, password=new)
            except FieldError as exc:
                st.error(f"Password: {exc}")
            else:
                st.session_state[FLASH] = f"Password of {row['email']} reset; they are signed out."
                st.rerun()


def page() -> None:
    frame.require_page("users.manage")
    st.title("Users")
    flash = st.session_state.pop(FLASH, None)
    if flash:
        st.success(flash)
    users = pd.DataFrame(frame.call(user_admin.list_users))
    st.dataframe(
        users,
        hide_index=True,
        width="stretch",
        column_config={
            "id": None,
            "email": st.column_config.TextColumn("Email"),
            "name": st.column_config.TextColumn("Name"),
            "role": st.column_config.TextColumn("Role"),
            "active": st.column_config.CheckboxColumn("Active"),
            "local_password": st.column_config.CheckboxColumn("Password sign-in"),
            "locked_until": st.column_config.DatetimeColumn(
                f"Sign-in backed off until ({clinic_zone().key})",
                format="YYYY-MM-DD HH:mm",
                timezone=clinic_zone().key,
            ),
            "created_at": st.column_config.DatetimeColumn(
                "Created", format="YYYY-MM-DD", timezone=clinic_zone().key
            ),
        },
    )
    if not users.empty:
        _manage(users)
    _create()


page()
