"""Decode and analyse an upload in a separate, time- and memory-limited process.

Image decoders are C code fed with bytes from the outside world. A hostile or merely unlucky
file can make them crash (segfault, abort), loop or exhaust memory. ``analyse_in_worker`` runs
``ingest.read_photo`` + ``measure.measure_photo`` in a child process so that such a failure
ends only that child: the server and every other user's session carry on, and the user sees a
plain message instead of a dead page.

How the child is run
--------------------
* Start method ``forkserver``: children are forked from a small single-threaded server process
  (never from the multi-threaded Streamlit server), with ``analysis.photos.ingest`` (numpy,
  Pillow, pillow-heif) preloaded so a child starts in milliseconds. The caller's ``__main__``
  (under Streamlit: the page script) is hidden while a child starts, so it is not re-run there.
* In the child, before any byte is decoded: ``RLIMIT_AS`` (address space) = ``memory_mb``,
  ``RLIMIT_CPU`` = ``timeout_s`` + 5 s as a backstop, ``RLIMIT_CORE`` = 0 (no core dumps of
  patient photos on disk).
* The parent waits on the result pipe and on the child's sentinel; after ``timeout_s`` seconds it
  kills the child (SIGKILL) and reports a timeout. A child that dies without answering is reported
  as a crash, naming the signal.

The function the child runs is named by a dotted ``"module:function"`` string (``target``), so
tests can substitute a function that segfaults or hangs and prove the parent survives.
"""

from __future__ import annotations

import importlib
import math
import multiprocessing
import multiprocessing.connection
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from analysis.photos.ingest import (
    DEFAULT_MAX_BYTES,
    CleanImage,
    IngestError,
    clean_original,
    read_photo,
    too_big_message,
)
from analysis.photos.types import PhotoMeasurement

DEFAULT_TARGET = "analysis.photos.worker:_measure_bytes"
CLEAN_TARGET = "analysis.photos.worker:_clean_bytes"
DEFAULT_TIMEOUT_S: float = 60.0
DEFAULT_MEMORY_MB: int = 2048

Outcome = Literal["ok", "rejected", "timeout", "crashed", "out_of_memory", "failed"]

PRELOAD: tuple[str, ...] = ("analysis.photos.ingest",)
"""Modules imported once in the fork server, so children start with them loaded. The measurement
engine (mediapipe) is deliberately not preloaded: importing it starts a native thread, and forking
a process with foreign threads can deadlock the child. The price is ~2-3 s of import and model
set-up per upload (see benchmarks/ingest_speed.py)."""

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(list(PRELOAD))

MSG_TIMEOUT = (
    "The photo could not be analysed in time (it took longer than {timeout:g} s). "
    "Try again; if it keeps happening, export the photo at a smaller size and upload that."
)
MSG_CRASHED = (
    "The photo analysis crashed while reading this file ({how}). The file is probably damaged "
    "or not a normal photo. Upload the original photo from the camera or phone."
)
MSG_MEMORY = (
    "The photo needs more memory to analyse than is allowed ({memory_mb} MB). "
    "Export it at a smaller size and upload it again."
)
MSG_FAILED = (
    "The photo analysis failed unexpectedly. The problem has been logged; "
    "please try again or upload a different photo."
)


@dataclass(frozen=True)
class WorkerResult:
    """What came back from the worker.

    Attributes
    ----------
    ok : bool
        ``True`` when the target returned normally; ``measurement`` then holds its return value.
        This is about the worker run: a photo that was read but, say, shows no face comes back
        with ``ok=True`` and ``measurement.ok=False`` (``measurement.error`` says why).
    measurement : PhotoMeasurement or None
        The measurement (or, for a custom ``target``, whatever it returned).
    error : str or None
        A message a clinic user can act on when ``ok`` is ``False``.
    outcome : str
        ``"ok"``; ``"rejected"`` (the file is not a usable photo, ``IngestError``); ``"timeout"``;
        ``"crashed"`` (the child died, e.g. by a signal); ``"out_of_memory"``; ``"failed"`` (any
        other exception in the child, logged to the server's stderr).
    elapsed_s : float
        Wall-clock seconds from starting the child to having its answer.
    exit_code : int or None
        The child's exit code (negative: killed by that signal), when known.
    """

    ok: bool
    measurement: PhotoMeasurement | Any | None
    error: str | None
    outcome: Outcome
    elapsed_s: float
    exit_code: int | None = None


def analyse_in_worker(
    data: bytes,
    *,
    view: str | None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    target: str = DEFAULT_TARGET,
) -> WorkerResult:
    """Run ``target(data, view=view)`` in a time- and memory-limited child process.

    Parameters
    ----------
    data : bytes
        The upload, exactly as received.
    view : str or None
        The photo's view (one of ``analysis.photos.types.ALL_VIEWS``) or ``None``.
    timeout_s : float, optional
        Wall-clock limit, seconds; the child is killed when it is exceeded.
    memory_mb : int, optional
        Address-space limit of the child (``RLIMIT_AS``), MiB.
    target : str, optional
        ``"package.module:function"`` run in the child; it receives ``(data, view=view)`` and
        must return a picklable value. The default decodes with ``read_photo`` and measures with
        ``analysis.photos.measure.measure_photo``.

    Returns
    -------
    WorkerResult
        Never raises for anything the child does.
    """
    _split_target(target)  # fail fast, in the caller, on a malformed name
    started = time.monotonic()
    if len(data) > DEFAULT_MAX_BYTES:
        message = too_big_message(len(data), DEFAULT_MAX_BYTES)
        return WorkerResult(False, None, message, "rejected", 0.0)
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(
        target=_child_main,
        args=(sender, target, bytes(data), view, float(timeout_s), int(memory_mb)),
        name="candor-photo-worker",
        daemon=True,
    )
    with _START_LOCK, _main_module_hidden():
        process.start()
    sender.close()  # the parent only reads; EOF on the pipe then means the child is gone
    status: str = "timeout"
    reply: Any = None
    try:
        status, reply = _wait_for_reply(receiver, process, timeout_s=timeout_s)
    finally:
        receiver.close()
        if status != "timeout":
            process.join(1.0)  # let a child that answered or died be reaped
        if process.is_alive():
            process.kill()
            process.join(5)
    elapsed = time.monotonic() - started
    code = process.exitcode
    if status == "timeout":
        message = MSG_TIMEOUT.format(timeout=timeout_s)
        return WorkerResult(False, None, message, "timeout", elapsed, code)
    if status == "died":
        message = MSG_CRASHED.format(how=_describe_exit(code))
        return WorkerResult(False, None, message, "crashed", elapsed, code)
    kind, value = reply
    if kind == "ok":
        return WorkerResult(True, value, None, "ok", elapsed, code)
    if kind == "rejected":
        return WorkerResult(False, None, str(value), "rejected", elapsed, code)
    if kind == "out_of_memory":
        message = MSG_MEMORY.format(memory_mb=memory_mb)
        return WorkerResult(False, None, message, "out_of_memory", elapsed, code)
    return WorkerResult(False, None, MSG_FAILED, "failed", elapsed, code)


_START_LOCK = threading.Lock()


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start the child without re-running the caller's ``__main__`` script in it.

    multiprocessing (spawn/forkserver) re-imports ``__main__`` from its ``__file__`` in every new
    child. Under Streamlit, ``__main__`` is the running page script: the child would execute the
    page and die before reading its job. While the child starts (under ``_START_LOCK``, so that
    concurrent sessions cannot interleave the swap) ``__main__`` is a bare module with no file.
    """
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved
        else:
            sys.modules.pop("__main__", None)


def clean_in_worker(
    data: bytes,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> CleanImage:
    """``ingest.clean_original`` run in the isolated child (full-resolution decode and re-encode).

    Same contract as ``clean_original``: returns the ``CleanImage`` or raises ``IngestError``, whose
    message is the worker's (refusal, timeout or crash).
    """
    result = analyse_in_worker(data, view=None, timeout_s=timeout_s, memory_mb=memory_mb,
                               target=CLEAN_TARGET)
    if result.ok and isinstance(result.measurement, CleanImage):
        return result.measurement
    raise IngestError(result.error or MSG_FAILED)


def _wait_for_reply(
    receiver: multiprocessing.connection.Connection,
    process: multiprocessing.process.BaseProcess,
    *,
    timeout_s: float,
) -> tuple[Literal["reply", "died", "timeout"], Any]:
    """Wait for the child's ``(kind, value)`` message, its death, or the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout", None
        ready = multiprocessing.connection.wait([receiver, process.sentinel], timeout=remaining)
        if receiver in ready:
            try:
                return "reply", receiver.recv()
            except (EOFError, OSError):
                return "died", None  # the child died before (or while) answering
            except Exception:  # noqa: BLE001 - a garbled reply is a failure, not a crash
                return "reply", ("failed", None)
        if process.sentinel in ready and not receiver.poll(0):
            return "died", None


def _child_main(
    sender: multiprocessing.connection.Connection,
    target: str,
    data: bytes,
    view: str | None,
    timeout_s: float,
    memory_mb: int,
) -> None:
    """Entry point of the child process: set limits, run the target, send one reply."""
    _limit_resources(memory_mb=memory_mb, cpu_s=math.ceil(timeout_s) + 5)
    try:
        function = _resolve(target)
        reply: tuple[str, Any] = ("ok", function(data, view=view))
    except IngestError as exc:
        reply = ("rejected", str(exc))
    except MemoryError:
        reply = ("out_of_memory", None)
    except BaseException:  # noqa: BLE001 - report every failure to the parent, then exit
        traceback.print_exc(file=sys.stderr)
        reply = ("failed", None)
    try:
        sender.send(reply)
    except Exception:  # noqa: BLE001 - e.g. an unpicklable result
        traceback.print_exc(file=sys.stderr)
        sender.send(("failed", None))
    finally:
        sender.close()


def _limit_resources(*, memory_mb: int, cpu_s: int) -> None:
    import resource

    def lower(which: int, value: int) -> None:
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, hard if hard != resource.RLIM_INFINITY else value))

    lower(resource.RLIMIT_AS, int(memory_mb) * 1024 * 1024)
    lower(resource.RLIMIT_CPU, int(cpu_s))
    lower(resource.RLIMIT_CORE, 0)


def _split_target(target: str) -> tuple[str, str]:
    module, sep, name = target.partition(":")
    if not sep or not module or not name.isidentifier():
        raise ValueError(f"target must look like 'package.module:function', got {target!r}")
    return module, name


def _resolve(target: str) -> Any:
    module, name = _split_target(target)
    return getattr(importlib.import_module(module), name)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "it did not stop"
    if code < 0:
        try:
            return f"stopped by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"stopped by signal {-code}"
    return f"exit code {code}"


def _measure_bytes(data: bytes, *, view: str | None) -> PhotoMeasurement:
    """Default worker target: decode with ``read_photo``, then ``measure_photo``."""
    photo = read_photo(data)
    try:
        from analysis.photos.measure import measure_photo
    except ImportError:
        return PhotoMeasurement(
            ok=False,
            error="The photo was read, but the measurement engine is not installed.",
            view=view,
            width_px=photo.width_px,
            height_px=photo.height_px,
            taken_at_utc=photo.taken_at_utc,
            focal_length_mm=photo.focal_length_mm,
            focal_length_35mm=photo.focal_length_35mm,
        )
    return measure_photo(photo, view=view)


def _clean_bytes(data: bytes, *, view: str | None) -> CleanImage:
    """Worker target of ``clean_in_worker``."""
    return clean_original(data)
