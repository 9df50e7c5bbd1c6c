"""Decode and analyse an upload in a separate, time- and memory-limited process.

Image decoders are C code fed with bytes from the outside world. A hostile or merely unlucky
file can make them crash (segfault, abort), loop or exhaust memory. ``analyse_in_worker`` runs
``ingest.read_photo`` + ``measure.measure_photo`` in a child process so that such a failure
ends only that child: the server and every other user's session carry on, and the user sees a
plain message instead of a dead page.

How a child is run
------------------
* **One job per process.** A child runs exactly one upload and exits, so nothing a hostile file
  does to a decoder's state can reach the next upload.
* Start method ``forkserver``: children are forked from a small single-threaded server process
  (never from the multi-threaded Streamlit server), with ``analysis.photos.ingest`` (numpy,
  Pillow, pillow-heif) preloaded. The caller's ``__main__`` (under Streamlit: the page script)
  is hidden while a child starts, and the fork server never re-runs one anyway
  (``analysis.forkserver_guard``: Streamlit swaps the page back in from other threads).
* **Warm standby.** Importing mediapipe and building FaceMesh takes seconds, so for the default
  target one child is kept started ahead: it sets its limits, imports and warms the engine on a
  bundled sample portrait, then waits for its single job. Each call takes the standby and, once
  its job is done, starts the next one (so the warm-up does not compete with the job). Custom
  targets, and calls that find no live standby, get a fresh child.
* Limits, set in the child before it touches any upload: ``RLIMIT_AS`` (address space) =
  ``memory_mb``; ``RLIMIT_CORE`` = 0 (no core dumps of patient photos on disk); when the job
  arrives, ``RLIMIT_CPU`` = CPU used so far + ``timeout_s`` + 5 s, as a backstop.
* **A turn each.** At most ``slots`` children (default: the CPU count; the services pass
  ``CANDOR_PHOTO_WORKERS``, :func:`analysis.config.photo_workers`) run jobs at once in one app
  process; a call waits for a turn (in the order the calls came, near enough) up to
  ``queue_wait_s`` and otherwise comes back ``"busy"`` with a message to try again, without
  starting a child. The work is CPU-bound and each child may use up to ``memory_mb``, so more
  children than cores add memory, not throughput; without the cap a burst of uploads (a batch, or
  many users at once) would start one child each.
* The parent waits on the reply pipe and on the child's sentinel; after ``timeout_s`` seconds
  (counted from handing over the job) it kills the child (SIGKILL) and reports a timeout. A child
  that dies without answering is reported as a crash, naming the signal.

The function a child runs is named by a dotted ``"module:function"`` string (``target``), so
tests can substitute a function that segfaults or hangs and prove the parent survives.
"""

from __future__ import annotations

import importlib
import io
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from analysis.photos.ingest import (
    DEFAULT_MAX_BYTES,
    CleanImage,
    IngestedPhoto,
    IngestError,
    clean_original,
    read_photo,
    too_big_message,
)
from analysis.photos.types import PhotoMeasurement
from analysis.processes import main_module_hidden

DEFAULT_TARGET = "analysis.photos.worker:_measure_bytes"
CLEAN_TARGET = "analysis.photos.worker:_clean_bytes"
DEFAULT_TIMEOUT_S: float = 60.0
DEFAULT_MEMORY_MB: int = 2048
DEFAULT_QUEUE_WAIT_S: float = 120.0

STANDBY_TARGETS: frozenset[str] = frozenset({DEFAULT_TARGET})
"""Targets for which a warm child is kept started ahead (one per target and memory limit)."""

PRELOAD: tuple[str, ...] = (
    "analysis.forkserver_guard",
    "analysis.photos.ingest",
    "analysis.photos.heif",
)
"""Modules imported once in the fork server. mediapipe is deliberately not among them: importing
it starts a native thread, and forking a process with foreign threads can deadlock the child; the
warm standby hides its start-up cost instead (benchmarks/ingest_speed.py)."""

Outcome = Literal["ok", "rejected", "busy", "timeout", "crashed", "out_of_memory", "failed"]

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
MSG_BUSY = (
    "The server is analysing other photos and this one did not get its turn within {wait:g} s. "
    "Nothing was saved; try again in a minute."
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
        ``"ok"``; ``"rejected"`` (the file is not a usable photo, ``IngestError``); ``"busy"`` (no
        turn within the queue wait, nothing was started; worth retrying); ``"timeout"``;
        ``"crashed"`` (the child died, e.g. by a signal); ``"out_of_memory"``; ``"failed"`` (any
        other exception in the child, logged to the server's stderr).
    elapsed_s : float
        Wall-clock seconds from handing the job to the child to having its answer.
    exit_code : int or None
        The child's exit code (negative: killed by that signal), when known.
    waited_s : float
        Seconds spent waiting for a turn before a child was taken (not part of ``elapsed_s``).
    """

    ok: bool
    measurement: PhotoMeasurement | Any | None
    error: str | None
    outcome: Outcome
    elapsed_s: float
    exit_code: int | None = None
    waited_s: float = 0.0


def analyse_in_worker(
    data: bytes,
    *,
    view: str | None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    target: str = DEFAULT_TARGET,
    slots: int | None = None,
    queue_wait_s: float = DEFAULT_QUEUE_WAIT_S,
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
    slots : int, optional
        Children this process runs at once (default :func:`default_slots`); the call waits for a
        turn.
    queue_wait_s : float, optional
        How long to wait for a turn before coming back ``"busy"``, seconds.

    Returns
    -------
    WorkerResult
        Never raises for anything the child does.
    """
    _split_target(target)  # fail fast, in the caller, on a malformed name
    if len(data) > DEFAULT_MAX_BYTES:
        message = too_big_message(len(data), DEFAULT_MAX_BYTES)
        return WorkerResult(False, None, message, "rejected", 0.0)
    turns = _turns(slots or default_slots())
    queued = time.monotonic()
    if not turns.acquire(timeout=queue_wait_s):
        waited = time.monotonic() - queued
        message = MSG_BUSY.format(wait=queue_wait_s)
        return WorkerResult(False, None, message, "busy", 0.0, waited_s=waited)
    waited = time.monotonic() - queued
    try:
        result = _run_job(data, view=view, timeout_s=timeout_s, memory_mb=memory_mb, target=target)
    finally:
        turns.release()
    return replace(result, waited_s=waited)


def _run_job(
    data: bytes, *, view: str | None, timeout_s: float, memory_mb: int, target: str
) -> WorkerResult:
    """One job in one child, the caller holding a turn (:func:`analyse_in_worker`)."""
    try:
        child = _take_child(target, int(memory_mb))
    except OSError:  # no process could be started (out of pids or memory on the server)
        traceback.print_exc(file=sys.stderr)
        return WorkerResult(False, None, MSG_FAILED, "failed", 0.0)
    started = time.monotonic()
    # Hand the job over from a helper thread: a child still warming up reads it only when ready,
    # and the timeout below must hold even if it never does.
    threading.Thread(
        target=_send_job, args=(child.jobs, (bytes(data), view, float(timeout_s))), daemon=True
    ).start()
    status: str = "timeout"
    reply: Any = None
    try:
        status, reply = _wait_for_reply(child.replies, child.process, timeout_s=timeout_s)
    finally:
        child.replies.close()
        if status != "timeout":
            child.process.join(1.0)  # let a child that answered or died be reaped
        if child.process.is_alive():
            child.process.kill()
            child.process.join(5)
        elapsed = time.monotonic() - started
        _replenish(target, int(memory_mb))
    code = child.process.exitcode
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


def clean_in_worker(
    data: bytes,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    slots: int | None = None,
    queue_wait_s: float = DEFAULT_QUEUE_WAIT_S,
) -> CleanImage:
    """``ingest.clean_original`` run in the isolated child (full-resolution decode and re-encode),
    taking its turn like :func:`analyse_in_worker`.

    Same contract as ``clean_original``: returns the ``CleanImage`` or raises ``IngestError``, whose
    message is the worker's (refusal, busy, timeout or crash).
    """
    result = analyse_in_worker(
        data,
        view=None,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        target=CLEAN_TARGET,
        slots=slots,
        queue_wait_s=queue_wait_s,
    )
    if result.ok and isinstance(result.measurement, CleanImage):
        return result.measurement
    raise IngestError(result.error or MSG_FAILED)


def default_slots() -> int:
    """Children run at once when the caller names no number: the CPU count (at least 1)."""
    return max(1, os.cpu_count() or 1)


def start_standby(*, memory_mb: int = DEFAULT_MEMORY_MB) -> None:
    """Start the warm standby for the default target now (e.g. when the app starts), so that even
    the first upload finds one ready. Idempotent."""
    _replenish(DEFAULT_TARGET, int(memory_mb))


def stop_standby() -> None:
    """Stop the warm standby children (they are daemons and also end with the server)."""
    with _START_LOCK:
        children = list(_STANDBY.values())
        _STANDBY.clear()
    for child in children:
        _discard(child)


# ---- parent side -------------------------------------------------------------------------------


@dataclass
class _Child:
    process: multiprocessing.process.BaseProcess
    jobs: multiprocessing.connection.Connection  # parent -> child, one message
    replies: multiprocessing.connection.Connection  # child -> parent, one message


_START_LOCK = threading.Lock()
_STANDBY: dict[tuple[str, int], _Child] = {}
_TURNS_LOCK = threading.Lock()
_TURNS: dict[int, threading.BoundedSemaphore] = {}


def _turns(slots: int) -> threading.BoundedSemaphore:
    """The process's turns for ``slots`` children at once (one semaphore per number, so a caller
    that changes the setting gets a fresh count while earlier calls release theirs).
    Waiters are woken in the order they began to wait (one arriving just as a turn frees up
    may take it first)."""
    with _TURNS_LOCK:
        turns = _TURNS.get(slots)
        if turns is None:
            turns = _TURNS[slots] = threading.BoundedSemaphore(slots)
        return turns


def _take_child(target: str, memory_mb: int) -> _Child:
    """The warm standby for ``(target, memory_mb)`` if there is a live one, else a fresh child
    (which loads only what its job needs)."""
    if target in STANDBY_TARGETS:
        with _START_LOCK:
            child = _STANDBY.pop((target, memory_mb), None)
        if child is not None and child.process.is_alive():
            return child
        if child is not None:
            _discard(child)
    return _start_child(target, memory_mb, warm=False)


def _replenish(target: str, memory_mb: int) -> None:
    """Start the next standby after a job, so its warm-up does not compete with the job."""
    if target not in STANDBY_TARGETS:
        return
    with _START_LOCK:
        if (target, memory_mb) in _STANDBY:
            return
        try:
            _STANDBY[(target, memory_mb)] = _start_child(target, memory_mb, warm=True, locked=True)
        except OSError:  # the next upload will start its own child
            traceback.print_exc(file=sys.stderr)


def _start_child(target: str, memory_mb: int, *, warm: bool, locked: bool = False) -> _Child:
    job_receiver, job_sender = _CONTEXT.Pipe(duplex=False)
    reply_receiver, reply_sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(
        target=_child_main,
        args=(job_receiver, reply_sender, target, memory_mb, warm),
        name="candor-photo-worker",
        daemon=True,
    )
    if locked:
        with main_module_hidden():
            process.start()
    else:
        with _START_LOCK, main_module_hidden():
            process.start()
    job_receiver.close()  # the child's ends; EOF on the reply pipe then means the child is gone
    reply_sender.close()
    return _Child(process, job_sender, reply_receiver)


def _discard(child: _Child) -> None:
    for connection in (child.jobs, child.replies):
        connection.close()
    if child.process.is_alive():
        child.process.kill()
    child.process.join(1.0)


def _send_job(jobs: multiprocessing.connection.Connection, job: tuple[Any, ...]) -> None:
    try:
        jobs.send(job)
    except (OSError, ValueError):
        pass  # the child died or was killed first; the waiting side reports it
    finally:
        jobs.close()


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


# ---- child side --------------------------------------------------------------------------------


def _child_main(
    jobs: multiprocessing.connection.Connection,
    replies: multiprocessing.connection.Connection,
    target: str,
    memory_mb: int,
    warm: bool,
) -> None:
    """Entry point of a child: set limits, warm up (standby), wait for one job, run it, reply."""
    import resource

    _lower_limit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    _lower_limit(resource.RLIMIT_CORE, 0)
    function = None
    try:
        function = _resolve(target)
        if warm:
            _warm_up(target)
    except BaseException:  # noqa: BLE001 - a target that cannot load fails its job, below;
        traceback.print_exc(file=sys.stderr)  # a failed warm-up only loses its head start
    try:
        data, view, timeout_s = jobs.recv()
    except (EOFError, OSError):
        return  # the parent went away (server shutting down): nothing to do
    finally:
        jobs.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _lower_limit(resource.RLIMIT_CPU, math.ceil(usage.ru_utime + usage.ru_stime + timeout_s) + 5)
    try:
        if function is None:
            raise RuntimeError(f"worker target {target!r} could not be loaded")
        reply: tuple[str, Any] = ("ok", function(data, view=view))
    except IngestError as exc:
        reply = ("rejected", str(exc))
    except MemoryError:
        reply = ("out_of_memory", None)
    except BaseException:  # noqa: BLE001 - report every failure to the parent, then exit
        traceback.print_exc(file=sys.stderr)
        reply = ("failed", None)
    try:
        replies.send(reply)
    except Exception:  # noqa: BLE001 - e.g. an unpicklable result
        traceback.print_exc(file=sys.stderr)
        replies.send(("failed", None))
    finally:
        replies.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter and model tear-down: the answer is sent, the process is spent


def _lower_limit(which: int, value: int) -> None:
    import resource

    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))  # hard too: the upload's code cannot raise it


def _warm_up(target: str) -> None:
    """Run ``<function>_warmup()`` from the target's module when it defines one."""
    module, name = _split_target(target)
    warm = getattr(importlib.import_module(module), f"{name}_warmup", None)
    if callable(warm):
        warm()


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


# ---- targets -----------------------------------------------------------------------------------


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


def _measure_bytes_warmup() -> None:
    """Import the measurement engine and run it once on skimage's bundled astronaut() portrait,
    so every lazily loaded model and module of a face measurement is ready (no upload involved)."""
    try:
        from analysis.photos.measure import measure_photo
    except ImportError:
        return
    from importlib.resources import files

    from PIL import Image

    # the bundled file read with Pillow: skimage.data.astronaut() would import skimage.io (~0.2 s)
    with Image.open(
        io.BytesIO((files("skimage") / "data" / "astronaut.png").read_bytes())
    ) as sample:
        face = np.ascontiguousarray(sample.convert("RGB"))
    h, w = face.shape[:2]
    photo = IngestedPhoto("0" * 64, "PNG", w, h, face, 1.0, None, None, None, 1)
    measure_photo(photo, view="face_frontal")
    from analysis.photos.ingest import rgb_array

    rgb_array(Image.new("RGB", (8, 8)))  # loads the zero-copy export (pyarrow) ingest uses


def _clean_bytes(data: bytes, *, view: str | None) -> CleanImage:
    """Worker target of ``clean_in_worker``."""
    return clean_original(data)
