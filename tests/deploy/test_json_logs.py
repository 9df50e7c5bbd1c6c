"""Structured logs (issue #18 part 3): ``CANDOR_LOG_FORMAT=json`` makes the app and the worker
write one JSON object per line (time, level, logger, message, the browser session's id where
known), structured fields come only from an allow-list, exception text is left out, and no patient
code reaches the log. The worker's JSON lines are checked in test_jobs.py (a real
``python -m analysis worker`` run)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from analysis import logs

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_known_fields_only(
    monkeypatch: pytest.MonkeyPatch, restore_root: None
) -> None:
    monkeypatch.setenv("CANDOR_LOG_FORMAT", "json")
    out = io.StringIO()
    assert logs.configure_logging(lambda: {"session_id": "s-1", "mood": "x"}, stream=out) == "json"
    assert logs.configure_logging(lambda: {"session_id": "s-1"}, stream=out) == "json"  # again
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_candor_handler", False)]
    assert len(ours) == 1  # replaced, not stacked
    log = logging.getLogger("analysis.test")
    log.info("job %s done", 12, extra={"job_id": 12, "patient_code": "P-0001"})
    try:
        raise ValueError("patient P-0002 not found")
    except ValueError:
        log.exception("it failed")
    log.debug("below the level")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "job 12 done" and first["level"] == "INFO"
    assert first["logger"] == "analysis.test" and first["job_id"] == 12
    assert first["session_id"] == "s-1" and "mood" not in first
    assert first["time"].endswith("Z") and len(first["time"]) == len("2026-12-04T03:59:01.123Z")
    assert "patient_code" not in first and "P-0001" not in out.getvalue()
    assert second["level"] == "ERROR" and second["exception"]["type"] == "ValueError"
    assert second["exception"]["stack"][-1].endswith(
        "in test_json_lines_carry_the_known_fields_only"
    )
    assert "P-0002" not in out.getvalue()  # the exception's text is left out


def test_text_is_the_default_and_leaves_logging_alone(
    monkeypatch: pytest.MonkeyPatch, restore_root: None
) -> None:
    monkeypatch.delenv("CANDOR_LOG_FORMAT", raising=False)
    monkeypatch.delenv("CANDOR_LOG_LEVEL", raising=False)
    before = list(logging.getLogger().handlers)
    assert logs.configure_logging() == "text"
    assert logging.getLogger().handlers == before
    monkeypatch.setenv("CANDOR_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="CANDOR_LOG_FORMAT"):
        logs.configure_logging()


@pytest.mark.browser
def test_the_app_logs_json_with_the_browser_session_id(tmp_path: Path, browser: Browser) -> None:
    from tests.e2e.helpers import seeded_env, serve_app, sign_in

    data = tmp_path / "data"
    env = seeded_env(
        data,
        "from pathlib import Path; from tests.support.clinician_clinic import "
        f"seed_clinician_clinic; seed_clinician_clinic(Path({str(data)!r}))",
    )
    env["CANDOR_LOG_FORMAT"] = "json"
    log_path = tmp_path / "streamlit.log"
    with serve_app(env, log_path) as url:
        for _ in range(2):  # two browser sessions
            context = browser.new_context()
            try:
                page = context.new_page()
                sign_in(page, url, "clinician@demo.candor")
                page.get_by_text("P-0001").first.wait_for(state="attached", timeout=60_000)
            finally:
                context.close()
    text = log_path.read_text()
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    started = [r for r in records if r["message"] == "browser session started"]
    assert len(started) == 2 and len({r["session_id"] for r in started}) == 2, text[-3000:]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    # from the first session on, every line is JSON; before it only Streamlit's start-up (its
    # banner, and the server-started line logged before the app's code first runs), and at the
    # end its printed "Stopping..."
    lines = [line for line in text.splitlines() if line.strip()]
    first = next(i for i, line in enumerate(lines) if "browser session started" in line)
    assert len(lines[:first]) <= 6, lines[:first]
    late = [line for line in lines[first:] if not line.startswith("{")]
    assert late in ([], ["  Stopping..."]), late
    assert "P-0001" not in text and "P-0002" not in text
