"""The job queue any replica's workers share (issue #18 part 2): on SQLite and on one PostgreSQL,
two worker processes drain a queue with every job run exactly once; a worker killed holding a job
loses it to another once its lease runs out; attempts are bounded and a failure says why; a lost
lease cannot overwrite the newer attempt; ``python -m analysis worker`` measures a visit's stored
photos through the audited photo door."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, select

from analysis.services import jobs as job_service
from analysis.store import db
from analysis.store import jobs as queue
from analysis.store.access import PermissionDenied
from analysis.store.models import AuditEvent, Job
from tests.conftest import PROJECT_ROOT
from tests.support.photo_clinic import CLINICIAN, CONSULT, make_clinic

PY = sys.executable


def _enqueue(engine: Engine, payloads: list[dict[str, Any]], **kw: Any) -> list[int]:
    with db.session_scope(engine) as session:
        return queue.enqueue(session, "test.append", payloads, **kw)


def _rows(engine: Engine) -> list[Job]:
    with db.session_scope(engine) as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def test_migration_0011_jobs_table_up_and_down(db_url: str) -> None:
    engine = db.make_engine(db_url)
    assert "jobs" in inspect(engine).get_table_names()
    db.downgrade(engine, "0010")
    assert "jobs" not in inspect(engine).get_table_names()
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    cols = {c["name"] for c in inspect(engine).get_columns("jobs")}
    assert {"kind", "payload", "state", "attempts", "locked_by", "locked_until"} <= cols
    assert {"result", "error", "created_at", "started_at", "finished_at"} <= cols
    engine.dispose()


def test_claims_take_distinct_jobs_oldest_first_and_leases_expire(db_url: str) -> None:
    engine = db.make_engine(db_url)
    ids = _enqueue(engine, [{"n": i} for i in range(3)])
    t0 = 1_000_000.0
    a = queue.claim(engine, "A", ["test.append"], lease_s=10, now=t0)
    b = queue.claim(engine, "B", ["test.append"], lease_s=10, now=t0)
    assert a is not None and b is not None and (a.id, b.id) == (ids[0], ids[1])
    assert queue.claim(engine, "C", ["other.kind"], now=t0) is None  # kinds are respected
    c = queue.claim(engine, "C", ["test.append"], lease_s=10, now=t0)
    assert c is not None and c.id == ids[2]
    assert queue.claim(engine, "D", ["test.append"], now=t0 + 5) is None  # all leased
    assert queue.renew(engine, a, "A", lease_s=10, now=t0 + 5)  # A lives on: until t0 + 15
    taken = queue.claim(engine, "D", ["test.append"], lease_s=10, now=t0 + 11)
    assert taken is not None and taken.id == b.id and taken.attempt == 2  # B's lease ran out
    # B comes back late: its outcome is refused, D's stands
    assert not queue.finish(engine, b, "B", {"by": "B"})
    assert queue.fail(engine, b, "B", "late") is None
    assert not queue.renew(engine, b, "B", now=t0 + 11)
    assert queue.finish(engine, taken, "D", {"by": "D"})
    assert queue.finish(engine, a, "A", {"by": "A"})
    by_id = {r.id: r for r in _rows(engine)}
    assert by_id[b.id].state == "done" and by_id[b.id].result == {"by": "D"}
    assert by_id[b.id].locked_by is None and by_id[b.id].attempts == 2
    assert by_id[a.id].result == {"by": "A"} and by_id[a.id].attempts == 1
    assert queue.counts(engine) == {"done": 2, "running": 1}
    engine.dispose()


def test_attempts_are_bounded_and_the_failure_says_why(db_url: str) -> None:
    engine = db.make_engine(db_url)
    calls: list[int] = []

    def broken(_engine: Engine, payload: dict[str, Any]) -> dict[str, Any]:
        calls.append(payload["n"])
        raise RuntimeError("the analysis child crashed")

    def refused(_engine: Engine, payload: dict[str, Any]) -> dict[str, Any]:
        calls.append(payload["n"])
        raise job_service.PermanentJobError("consent withdrawn")

    with db.session_scope(engine) as session:
        flaky = queue.enqueue(session, "t.broken", [{"n": 1}], max_attempts=3)[0]
        final = queue.enqueue(session, "t.refused", [{"n": 2}], max_attempts=3)[0]
    stats = job_service.run_worker(
        engine, worker_id="W", handlers={"t.broken": broken, "t.refused": refused}, drain=True
    )
    assert calls == [1, 1, 1, 2]
    assert (stats.failed, stats.retried, stats.done) == (2, 2, 0)
    by_id = {r.id: r for r in _rows(engine)}
    assert by_id[flaky].state == "failed" and by_id[flaky].attempts == 3
    assert by_id[flaky].error == "attempt 3 of 3: the analysis child crashed"
    assert by_id[final].state == "failed" and by_id[final].attempts == 1  # no retry can help
    assert "consent withdrawn" in by_id[final].error
    assert by_id[flaky].finished_at is not None and by_id[flaky].locked_by is None
    # a worker that dies on the last attempt: the next claim round marks the job failed
    last = _enqueue(engine, [{"n": 3}], max_attempts=1)[0]
    t0 = 2_000_000.0
    assert queue.claim(engine, "X", ["test.append"], lease_s=5, now=t0) is not None
    assert queue.claim(engine, "Y", ["test.append"], now=t0 + 6) is None
    assert queue.expire_abandoned(engine, now=t0 + 6) == 1
    row = {r.id: r for r in _rows(engine)}[last]
    assert row.state == "failed" and "lease ran out" in row.error
    engine.dispose()


# --- worker processes ----------------------------------------------------------------------------


def _worker(url: str, log: Path, worker_id: str, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [PY, "-m", "tests.deploy.job_worker", url, str(log), "--id", worker_id, *extra],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
    return proc


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return out + err


def test_two_worker_processes_drain_the_queue_each_job_exactly_once(
    db_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(db_url)
    log = tmp_path / "ran.log"
    workers = [_worker(db_url, log, name) for name in ("w1", "w2")]
    try:
        n = 80
        ids = _enqueue(engine, [{"n": i, "sleep_s": 0.01} for i in range(n)])
        _wait(lambda: queue.counts(engine).get("done", 0) == n, 180, f"{n} jobs done")
    finally:
        outputs = [_stop(w) for w in workers]
    ran = Counter(int(line.split()[0]) for line in log.read_text().splitlines())
    assert sorted(ran) == list(range(n)) and set(ran.values()) == {1}, ran.most_common(3)
    rows = _rows(engine)
    assert [r.id for r in rows] == ids and {r.state for r in rows} == {"done"}
    assert {r.attempts for r in rows} == {1} and {r.locked_by for r in rows} == {None}
    by = Counter(r.result["by"] for r in rows if r.result)
    assert set(by) == {"w1", "w2"}, (by, outputs)  # both took part
    for r in rows:  # the recorded result is the run that happened
        assert r.result == {"n": r.payload["n"], "by": r.result["by"]}
    assert all("lost=0" in o for o in outputs), outputs
    engine.dispose()


def test_a_killed_workers_job_is_retried_by_another_after_its_lease(
    db_url: str, tmp_path: Path
) -> None:
    engine = db.make_engine(db_url)
    log = tmp_path / "ran.log"
    lease = 3.0
    hung = _worker(db_url, log, "doomed", "--hang", "--lease", str(lease))
    try:
        (job_id,) = _enqueue(engine, [{"n": 7}])
        assert hung.stdout is not None and hung.stdout.readline().strip() == "hanging"
        row = _rows(engine)[0]
        assert (row.state, row.locked_by, row.attempts) == ("running", "doomed", 1)
        # the doomed worker renews its lease while it lives: still its job after two leases
        time.sleep(2 * lease)
        row = _rows(engine)[0]
        assert (row.state, row.locked_by, row.attempts) == ("running", "doomed", 1)
        hung.kill()  # SIGKILL: no clean-up, the lease is left to run out
        hung.wait(timeout=30)
        killed_at = time.time()
        rescuer = _worker(db_url, log, "rescuer", "--lease", str(lease))
        try:
            _wait(lambda: _rows(engine)[0].state == "done", 60, "the job retried")
        finally:
            _stop(rescuer)
    finally:
        if hung.poll() is None:
            hung.kill()
        hung.communicate(timeout=30)
    row = _rows(engine)[0]
    assert row.id == job_id and row.attempts == 2 and row.result == {"n": 7, "by": "rescuer"}
    assert row.started_at is not None and row.started_at.timestamp() >= killed_at - 0.5
    assert log.read_text().splitlines() == ["7 rescuer"]
    engine.dispose()


# --- the real job: measuring a visit's stored photos ---------------------------------------------


def test_python_m_analysis_worker_measures_a_visits_photos(
    candor_env: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{candor_env / 'candor.sqlite3'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    clinic = make_clinic(url, candor_env / "images", code="P-SECRET-77")
    with db.session_scope(engine) as session:
        with pytest.raises(PermissionDenied):
            job_service.enqueue_photo_measurements(session, CONSULT, visit_id=clinic.session_id)
    with db.session_scope(engine) as session:
        (job_id,) = job_service.enqueue_photo_measurements(
            session, CLINICIAN, visit_id=clinic.session_id
        )
        missing = job_service.enqueue_photo_measurements(session, CLINICIAN, photo_ids=[99999])
    env = {
        **os.environ,
        "CANDOR_DATA_DIR": str(candor_env),
        "CANDOR_IMAGE_STORE": (candor_env / "images").as_uri(),
        "CANDOR_LOG_FORMAT": "json",
    }
    env.pop("CANDOR_DATABASE_URL", None)
    done = subprocess.run(
        [PY, "-m", "analysis", "worker", "--drain", "--id", "test-worker"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with db.session_scope(engine) as session:
        statuses = job_service.job_statuses(session, CLINICIAN, job_ids=[job_id, *missing])
    measured, absent = statuses
    assert measured.state == "done" and measured.result is not None, measured
    assert measured.result["photo_id"] == clinic.photo_id and measured.result["ok"] is True
    assert measured.result["measurement"]["face_found"] is True
    # the seed stored measurements={}: nothing there to differ from
    assert measured.result["differs_from_stored"] == []
    assert absent.state == "failed" and absent.attempts == 1 and "99999" in absent.error
    # the read went through the audited photo door, in the queuing clinician's name
    with db.session_scope(engine) as session:
        views = list(
            session.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "photo.view", AuditEvent.actor_email == CLINICIAN.email
                )
            )
        )
        enqueued = list(
            session.scalars(select(AuditEvent).where(AuditEvent.action == "jobs.enqueue"))
        )
    assert [v.object_id for v in views if v.outcome == "success"] == [str(clinic.photo_id)]
    assert len(enqueued) == 2
    # JSON logs, one object per line, and no patient identifier in them
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(line.get("job_id") == job_id and "done" in line["message"] for line in lines)
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert "P-SECRET-77" not in done.stderr and "P-SECRET-77" not in done.stdout
    engine.dispose()


def test_the_shipped_worker_units_run_the_worker_command() -> None:
    import shlex

    yaml = pytest.importorskip("yaml")  # PyYAML, installed with moto[server] (requirements.txt)

    from analysis.cli import build_parser

    compose = yaml.safe_load((PROJECT_ROOT / "deploy" / "compose.yaml").read_text())
    worker = compose["services"]["worker"]
    assert worker["command"][:3] == ["python", "-m", "analysis"]
    args = build_parser().parse_args(worker["command"][3:])
    assert args.command == "worker" and not args.drain  # runs until stopped
    for name in ("app1", "app2", "worker"):
        env = compose["services"][name]["environment"]
        assert env["CANDOR_LOG_FORMAT"] == "json"
        assert (
            env["CANDOR_DATABASE_URL"]
            == compose["services"]["app1"]["environment"]["CANDOR_DATABASE_URL"]
        )  # the workers share the replicas' database: the queue
    unit = (PROJECT_ROOT / "deploy" / "systemd" / "candor-worker@.service").read_text()
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv[1:4] == ["-m", "analysis", "worker"]
    args = build_parser().parse_args(argv[3:])
    assert args.id == "%H-worker-%i" and not args.drain
