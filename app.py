"""Candor: the router. Sign-in gate, then the pages the signed-in role may use. No logic here."""

from pathlib import Path

import streamlit as st

from analysis.store.db import open_problem
from ui import frame, logs, signin

st.set_page_config(
    page_title="Candor",
    page_icon=str(Path(__file__).parent / "ui" / "candor-icon.png"),
    layout="wide",
)
logs.install()  # CANDOR_LOG_FORMAT=json: one JSON object per log line
problem = open_problem()  # e.g. the database is encrypted and CANDOR_DB_KEY is missing or wrong
if problem:
    st.error(f"Candor cannot open its database: {problem}")
    st.stop()
actor = signin.gate()
sections = frame.pages_for(actor)
if not sections:
    st.info("No pages are available to your role yet.")
    st.stop()
navigation = st.navigation(sections)
frame.sidebar(actor)
navigation.run()
