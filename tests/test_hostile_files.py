"""Hostile input: a committed corpus of malformed files, and a worker that crashes or hangs.

The corpus in ``tests/data/hostile/`` is made by ``tests/data/make_hostile_corpus.py`` (run it to
see, or rebuild, how each file was made). Every file must be refused by ``read_photo`` and
``clean_original`` with an ``IngestError`` whose message names the problem, quickly, and without
writing anything. The worker tests prove that a child process that segfaults, aborts, hangs or
runs out of memory yields a clear message while the calling process carries on.
"""

from __future__ import annotations

import ctypes
import io
import os
import time

import pytest
from PIL import Image
from skimage import data

from analysis.photos.worker import analyse_in_worker

HERE = "tests.test_hostile_files"


# ---- worker targets (module-level so the child process can import them by name) ----------------

def _segfault(data: bytes, *, view: str | None) -> None:
    ctypes.string_at(0)  # read from the null pointer: SIGSEGV


def _abort(data: bytes, *, view: str | None) -> None:
    os.abort()


def _hang(data: bytes, *, view: str | None) -> None:
    time.sleep(3600)


def _allocate(data: bytes, *, view: str | None) -> int:
    block = bytearray(4 * 1024**3)  # 4 GiB, above any limit the tests set
    return len(block)


def _raise(data: bytes, *, view: str | None) -> None:
    raise RuntimeError("bug in the analysis code")


def _echo(data: bytes, *, view: str | None) -> tuple[int, str | None, int]:
    return len(data), view, os.getpid()


# ---- worker ------------------------------------------------------------------------------------

def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.timeout(60)
def test_worker_returns_the_target_value_from_another_process() -> None:
    result = analyse_in_worker(b"abc", view="face_frontal", target=f"{HERE}:_echo")
    assert result.ok and result.outcome == "ok" and result.error is None
    length, view, pid = result.measurement
    assert (length, view) == (3, "face_frontal")
    assert pid != os.getpid()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target, signal_name", [("_segfault", "SIGSEGV"), ("_abort", "SIGABRT")])
def test_worker_crash_gives_a_clear_error_and_the_parent_survives(target: str, signal_name: str) -> None:
    result = analyse_in_worker(b"x", view=None, target=f"{HERE}:{target}")
    assert not result.ok and result.outcome == "crashed"
    assert result.error.startswith("The photo analysis crashed")
    assert signal_name in result.error
    # the parent is alive and the next upload is served normally
    after = analyse_in_worker(b"abc", view=None, target=f"{HERE}:_echo")
    assert after.ok


@pytest.mark.timeout(60)
def test_worker_hang_is_killed_after_the_timeout() -> None:
    started = time.monotonic()
    result = analyse_in_worker(b"x", view=None, timeout_s=1.5, target=f"{HERE}:_hang")
    assert not result.ok and result.outcome == "timeout"
    assert result.error.startswith("The photo could not be analysed in time")
    assert result.exit_code is not None and result.exit_code < 0  # killed, not left running
    assert time.monotonic() - started < 30


@pytest.mark.timeout(60)
def test_worker_memory_limit_is_enforced_in_the_child_only() -> None:
    result = analyse_in_worker(b"x", view=None, memory_mb=512, target=f"{HERE}:_allocate")
    assert not result.ok and result.outcome == "out_of_memory"
    assert "memory" in result.error and "512 MB" in result.error
    bytearray(600 * 1024**2)  # the parent's own limit is untouched


@pytest.mark.timeout(60)
def test_worker_exception_is_reported_without_a_traceback() -> None:
    result = analyse_in_worker(b"x", view=None, target=f"{HERE}:_raise")
    assert not result.ok and result.outcome == "failed"
    assert "Traceback" not in result.error and "bug in the analysis" not in result.error


@pytest.mark.timeout(60)
def test_worker_default_target_reads_the_photo_and_rejects_a_pdf() -> None:
    good = analyse_in_worker(_jpeg(), view="face_frontal")
    assert good.ok, good.error
    assert (good.measurement.width_px, good.measurement.height_px) == (512, 512)
    bad = analyse_in_worker(b"%PDF-1.7\n%\xe2\xe3\n1 0 obj\n", view=None)
    assert bad.outcome == "rejected" and "PDF" in bad.error


def test_worker_refuses_a_malformed_target_name() -> None:
    with pytest.raises(ValueError, match="package.module:function"):
        analyse_in_worker(b"x", view=None, target="no_colon_here")
