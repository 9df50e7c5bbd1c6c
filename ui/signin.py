"""The sign-in gate: nothing but this form is shown until someone signs in.

:func:`gate` runs at the top of every script run (``app.py``). It resumes the server-side session
(``analysis.auth.sessions.resume``: idle timeout, current role, deactivation) or shows the sign-in
form. While signed in, a fragment polls every 30 s (without counting as activity) and reruns the
app when the session has ended, so an unattended screen is cleared, not just the next click. With ``CANDOR_AUTH=oidc`` the form is replaced by "Sign in with your clinic account"
(Streamlit's ``st.login``, configured in ``.streamlit/secrets.toml [auth]``); the identity
provider's email is mapped to a local account, which carries the role. Identity is read through
:func:`oidc_email` only (``st.user`` raises under AppTest).
"""

from __future__ import annotations

import streamlit as st

from analysis.auth import accounts, sessions, throttle
from analysis.services.common import Actor
from analysis.store import db
from ui import frame

TOKEN_KEY = "candor_session_token"
NOTICE_KEY = "candor_sign_in_notice"


def oidc_email() -> str | None:
    """The identity provider's email when signed in through ``st.login``, else None."""
    try:
        if st.user.is_logged_in:
            email = st.user.get("email")
            return str(email) if email else None
    except Exception:  # no [auth] configured, or running under AppTest
        return None
    return None


def _begin(actor: Actor, *, method: str) -> None:
    with db.session_scope() as session:
        token = sessions.start(session, actor, method=method)
    st.session_state[TOKEN_KEY] = token
    frame.sign_in(actor)


def _resume() -> Actor | None:
    """The live actor for this browser session, or None (the session ended: state cleared)."""
    actor = frame.current_actor()
    token = st.session_state.get(TOKEN_KEY)
    if actor is None:
        return None
    if token is None:  # set directly by a test harness (AppTest), never by a browser
        return actor
    with db.session_scope() as session:
        live = sessions.resume(session, token)
    if live is None:
        minutes = sessions.idle_timeout().total_seconds() / 60
        for key in list(st.session_state.keys()):
            del st.session_state[key]
        st.session_state[NOTICE_KEY] = (
            f"You were signed out after {minutes:g} minutes without activity, or your account "
            "changed. Sign in again."
        )
        if accounts.auth_mode() == "oidc" and oidc_email() is not None:
            st.logout()
        return None
    if live != actor:  # the role changed since the last run
        frame.sign_in(live)
    return live


IDLE_CHECK_S = 30


@st.fragment(run_every=IDLE_CHECK_S)
def _idle_watch() -> None:
    """Every 30 s, without counting as activity: when the session has ended (idle timeout,
    deactivation, sign-out elsewhere), rerun the whole app so the gate clears the screen."""
    token = st.session_state.get(TOKEN_KEY)
    if token is None:
        return
    with db.session_scope() as session:
        live = sessions.is_live(session, token)
    if not live:
        st.rerun(scope="app")


def end_current_session() -> None:
    """Sign-out: end the server-side session (audited) and, with OIDC, the provider cookie."""
    token = st.session_state.get(TOKEN_KEY)
    if token:
        with db.session_scope() as session:
            sessions.end(session, token)
    st.session_state.pop(TOKEN_KEY, None)
    if accounts.auth_mode() == "oidc" and oidc_email() is not None:
        st.logout()


def _client_address() -> str | None:
    """The client address for the sign-in back-off: the trusted proxy's header when
    CANDOR_TRUSTED_PROXY_HEADER is set, else the direct peer (None on loopback)."""
    try:
        headers = dict(st.context.headers)
        peer = st.context.ip_address
    except Exception:  # no request context (bare script run)
        return None
    return throttle.client_address(headers, peer)


def _password_form() -> None:
    with st.form("sign_in", clear_on_submit=False):
        email = st.text_input("Email", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    if not email.strip() or not password:
        st.error("Enter your email and password.")
        return
    address = _client_address()
    with db.session_scope() as session:
        actor = accounts.authenticate(session, email=email, password=password, address=address)
        locked = actor is None and accounts.is_locked(session, email=email, address=address)
    if actor is None:
        if locked:
            st.error(
                "Too many failed sign-ins. Wait a few minutes and try again (the wait grows "
                "with each failure, up to 15 minutes), or ask an administrator to unlock "
                "the account."
            )
        else:
            st.error("Email or password is not right, or the account is inactive.")
        return
    _begin(actor, method="password")
    st.rerun()


def _oidc_form() -> None:
    email = oidc_email()
    if email is None:
        if st.button("Sign in with your clinic account", type="primary", icon=":material/login:"):
            st.login()
        return
    with db.session_scope() as session:
        actor = accounts.authenticate_oidc(session, email=email)
    if actor is None:
        st.error(
            f"There is no active Candor account for {email}. Ask an administrator to "
            "create one (its role decides what you can see)."
        )
        if st.button("Use another account"):
            st.logout()
        return
    _begin(actor, method="oidc")
    st.rerun()


def gate() -> Actor:
    """The signed-in actor; otherwise render the sign-in form and stop the script."""
    actor = _resume()
    if actor is not None:
        if TOKEN_KEY in st.session_state:
            _idle_watch()  # patient data must not stay on an unattended screen
        return actor
    st.title("Candor")
    st.caption("Outcomes and photo comparability for aesthetic and hair-restoration clinics")
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.info(notice, icon=":material/timer_off:")
    if accounts.auth_mode() == "oidc":
        _oidc_form()
    else:
        _password_form()
    st.stop()
    raise AssertionError("unreachable")  # st.stop() raises
