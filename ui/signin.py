"""The sign-in gate: nothing but this form is shown until someone signs in."""

from __future__ import annotations

import streamlit as st

from analysis.auth import accounts
from analysis.store import db
from analysis.store.access import Actor
from ui import frame


def gate() -> Actor:
    """The signed-in actor; otherwise render the sign-in form and stop the script."""
    actor = frame.current_actor()
    if actor is not None:
        return actor
    st.title("Candor")
    st.caption("Outcomes and photo comparability for aesthetic and hair-restoration clinics")
    with st.form("sign_in", clear_on_submit=False):
        email = st.text_input("Email", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        if not email.strip() or not password:
            st.error("Enter your email and password.")
        else:
            with db.session_scope() as session:
                actor = accounts.authenticate(session, email=email, password=password)
            if actor is None:
                st.error("Email or password is not right, or the account is inactive.")
            else:
                frame.sign_in(actor)
                st.rerun()
    st.stop()
    raise AssertionError("unreachable")  # st.stop() raises
