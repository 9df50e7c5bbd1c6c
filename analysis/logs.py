"""Log setup for the app and the worker: plain text (default) or one JSON object per line.

``CANDOR_LOG_FORMAT=json`` makes every record one line of JSON on stderr::

    {"time": "2026-12-04T03:59:01.123Z", "level": "INFO", "logger": "analysis.services.jobs",
     "message": "job 12 done in 0.41 s", "job_id": 12, "job_kind": "photo.measure", ...}

with ``session_id`` (the browser session) and ``request_id`` when the caller's context knows them
(see ``context`` of :func:`configure_logging`; the app passes Streamlit's session id). Only the
fields in :data:`FIELDS` are copied from a record's ``extra``: whatever else a caller attaches is
dropped, so a structured field can never carry a patient identifier by accident. Messages carry
record ids (job, photo), never a patient's code; patient-level detail belongs in the audit trail,
not in logs. ``CANDOR_LOG_LEVEL`` (default ``INFO``) sets the level.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from analysis import config

#: ``extra`` fields a JSON line may carry (anything else on a record is left out).
FIELDS = (
    "request_id",
    "session_id",
    "worker_id",
    "job_id",
    "job_kind",
    "attempt",
    "photo_id",
    "elapsed_ms",
    "status",
    "replica",
)

_HANDLER_MARK = "_candor_handler"


def log_format() -> str:
    """``json`` or ``text`` (``CANDOR_LOG_FORMAT``; anything else is refused)."""
    value = (config.setting("CANDOR_LOG_FORMAT") or "text").lower()
    if value not in ("json", "text"):
        raise ValueError(f"CANDOR_LOG_FORMAT must be 'json' or 'text', got {value!r}")
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ms), level, logger, message, known context."""

    def __init__(self, context: Callable[[], Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        self.context = context

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.context is not None:
            try:
                found = self.context()
            except Exception:  # a context that cannot be read must not lose the record
                found = {}
            for name, value in found.items():
                if name in FIELDS and value not in (None, ""):
                    out[name] = value
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value not in (None, ""):
                out[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _exc, tb = record.exc_info
            # type and where (file:line in function, innermost last); the exception's text and
            # the source lines are left out, they may quote a form's input
            frames = traceback.extract_tb(tb)[-20:]
            out["exception"] = {
                "type": exc_type.__name__,
                "stack": [f"{f.filename}:{f.lineno} in {f.name}" for f in frames],
            }
        return json.dumps(out, default=str, ensure_ascii=False)


def _replace(logger: logging.Logger, handler: logging.Handler) -> None:
    for old in list(logger.handlers):
        if getattr(old, _HANDLER_MARK, False):
            logger.removeHandler(old)
    setattr(handler, _HANDLER_MARK, True)
    logger.addHandler(handler)


def configure_logging(
    context: Callable[[], Mapping[str, Any]] | None = None,
    *,
    stream: Any = None,
    also: tuple[str, ...] = (),
    text_handler: bool = False,
) -> str:
    """Install Candor's handler on the root logger (again: it replaces its own, never adds a
    second). ``context`` returns the fields known where a record is emitted (``session_id``...).
    ``also``: loggers that do not propagate to the root (Streamlit's own) and get the same
    formatter in place of their console handler. In ``text`` format nothing is changed unless
    ``text_handler`` (the worker wants its INFO lines) or ``CANDOR_LOG_LEVEL`` is set. Returns
    the format in use."""
    fmt = log_format()
    if fmt == "text" and not text_handler and not config.setting("CANDOR_LOG_LEVEL"):
        return fmt  # the default: leave the host's (Streamlit's, pytest's) logging as it is
    level = (config.setting("CANDOR_LOG_LEVEL") or "INFO").upper()
    formatter: logging.Formatter = (
        JsonFormatter(context)
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    _replace(root, handler)
    root.setLevel(level)
    for name in also:
        logger = logging.getLogger(name)
        console = getattr(logger, "streamlit_console_handler", None)
        if fmt == "json" and isinstance(console, logging.Handler):
            console.setFormatter(formatter)
    return fmt
