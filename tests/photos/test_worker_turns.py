"""The photo worker runs at most ``slots`` children at once per app process.

Each child records when its job ran; with one turn the runs never overlap, with three they do
(the negative control), and a caller that gets no turn within ``queue_wait_s`` is told the
server is busy, without a child being started, and the next caller is served. The services pass
``CANDOR_PHOTO_WORKERS`` and ``CANDOR_PHOTO_QUEUE_WAIT_S`` (read here by ``photo_workers``; the
Capture page test in tests/pages/test_pages_clinician.py goes through them).
"""

from __future__ import annotations

import threading
import time

import pytest

from analysis.photos.worker import WorkerResult, analyse_in_worker

HERE = "tests.photos.test_worker_turns"


def _nap(data: bytes, *, view: str | None) -> tuple[float, float]:
    """Sleep for ``float(data)`` seconds; return when the job started and ended (wall clock)."""
    started = time.time()
    time.sleep(float(data))
    return started, time.time()


def _run_together(count: int, nap_s: float, slots: int) -> list[WorkerResult]:
    results: list[WorkerResult | None] = [None] * count

    def one(i: int) -> None:
        results[i] = analyse_in_worker(
            str(nap_s).encode(), view=None, target=f"{HERE}:_nap", slots=slots, queue_wait_s=60
        )

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def _most_at_once(results: list[WorkerResult]) -> int:
    """The largest number of jobs whose run intervals overlap."""
    events = []
    for result in results:
        assert result.ok, result
        started, ended = result.measurement
        events += [(started, 1), (ended, -1)]
    running = most = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at a tie
        running += step
        most = max(most, running)
    return most


@pytest.mark.timeout(120)
@pytest.mark.parametrize("slots", [1, 3])
def test_no_more_children_run_at_once_than_there_are_turns(slots: int) -> None:
    results = _run_together(3, nap_s=1.5, slots=slots)
    assert _most_at_once(results) == slots
    waits = sorted(r.waited_s for r in results)
    if slots == 1:  # the last in line waited for the two before it
        assert waits[-1] >= 2 * 1.5 - 0.5
    else:
        assert waits[-1] < 1.0


@pytest.mark.timeout(120)
def test_a_caller_without_a_turn_is_told_the_server_is_busy() -> None:
    one_turn = {"slots": 1, "queue_wait_s": 0.5}
    holder: list[WorkerResult] = []
    first = threading.Thread(
        target=lambda: holder.append(
            analyse_in_worker(b"4", view=None, target=f"{HERE}:_nap", timeout_s=30, **one_turn)
        )
    )
    first.start()
    time.sleep(1.0)  # the first call holds the only turn
    busy = analyse_in_worker(b"0", view=None, target=f"{HERE}:_nap", **one_turn)
    assert not busy.ok and busy.outcome == "busy" and busy.measurement is None
    assert busy.error is not None and "try again" in busy.error and "0.5 s" in busy.error
    assert 0.4 <= busy.waited_s < 3.0 and busy.elapsed_s == 0.0 and busy.exit_code is None
    first.join()
    assert holder and holder[0].ok
    after = analyse_in_worker(b"0", view=None, target=f"{HERE}:_nap", **one_turn)  # given back
    assert after.ok and after.waited_s < 0.5


@pytest.mark.parametrize(
    "name, raw, complaint",
    [
        ("CANDOR_PHOTO_WORKERS", "0", "at least 1"),
        ("CANDOR_PHOTO_WORKERS", "two", "must be a number"),
        ("CANDOR_PHOTO_QUEUE_WAIT_S", "-1", "at least 0"),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(
    name: str, raw: str, complaint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.config import photo_workers

    monkeypatch.setenv(name, raw)
    with pytest.raises(ValueError, match=name) as error:
        photo_workers()
    assert complaint in str(error.value)


def test_defaults_are_the_cpu_count_and_two_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from analysis.config import photo_workers
    from analysis.photos.worker import DEFAULT_QUEUE_WAIT_S, default_slots

    monkeypatch.delenv("CANDOR_PHOTO_WORKERS", raising=False)
    monkeypatch.delenv("CANDOR_PHOTO_QUEUE_WAIT_S", raising=False)
    settings = photo_workers()
    assert settings.slots == max(1, os.cpu_count() or 1) == default_slots()
    assert settings.queue_wait_s == 120.0 == DEFAULT_QUEUE_WAIT_S
    monkeypatch.setenv("CANDOR_PHOTO_WORKERS", "5")
    monkeypatch.setenv("CANDOR_PHOTO_QUEUE_WAIT_S", "2.5")
    assert photo_workers() == type(settings)(slots=5, queue_wait_s=2.5)
