"""The app's log setup (``CANDOR_LOG_FORMAT=json``: one JSON object per line, see
:mod:`analysis.logs`), with the browser session's id on every record emitted while its script
runs, Streamlit's own loggers included. One ``browser session started`` line per session."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from analysis.services.logs import configure_logging

log = logging.getLogger("candor.app")
_lock = threading.Lock()
_configured = False


def _context() -> Mapping[str, Any]:
    ctx = get_script_run_ctx(suppress_warning=True)
    return {"session_id": ctx.session_id} if ctx is not None else {}


def install() -> None:
    """Configure logging once per process; note a new browser session once."""
    global _configured
    with _lock:
        if not _configured:
            ours = tuple(n for n in logging.root.manager.loggerDict if n.startswith("streamlit"))
            configure_logging(_context, also=ours)
            _configured = True
    if not st.session_state.get("_candor_session_logged"):
        st.session_state["_candor_session_logged"] = True
        log.info("browser session started")
