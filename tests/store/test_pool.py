"""The database pool holds as many page runs at once as a busy replica has (``CANDOR_DB_POOL_*``,
analysis.config.db_pool). Found by benchmarks/load_replicas.py: with SQLAlchemy's default pool
(5 + 10 overflow, 30 s wait) pages failed with "QueuePool limit ... reached" at 25 active users on
a replica."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from analysis import config
from analysis.store import db


def _hold_at_once(url: str, n: int) -> list[object]:
    """``n`` threads, each in its own session with a query run, all at a barrier together (as
    ``n`` browser tabs' page runs inside one replica); what each came back with."""
    engine = db.make_engine(url)
    together = threading.Barrier(n, timeout=20)
    results: list[object] = [None] * n

    def page_run(i: int) -> None:
        try:
            with db.session_scope(engine) as session:
                session.execute(text("select 1"))
                together.wait()
                results[i] = "ok"
        except Exception as exc:
            results[i] = exc
            together.abort()

    threads = [threading.Thread(target=page_run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    engine.dispose()
    return results


def test_thirty_page_runs_hold_a_connection_each_at_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANDOR_DB_POOL_TIMEOUT_S", "2")  # a short wait, so a shortfall fails fast
    pool = config.db_pool()
    assert pool.size + pool.max_overflow == 30
    assert _hold_at_once(db_url, 30) == ["ok"] * 30


def test_a_pool_too_small_for_the_runs_fails_them_instead(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The negative control of the test above: SQLAlchemy's own default, 15 connections."""
    monkeypatch.setenv("CANDOR_DB_POOL_SIZE", "5")
    monkeypatch.setenv("CANDOR_DB_MAX_OVERFLOW", "10")
    monkeypatch.setenv("CANDOR_DB_POOL_TIMEOUT_S", "1")
    results = _hold_at_once(db_url, 30)
    assert results.count("ok") < 30
    assert any("QueuePool limit" in str(r) for r in results), results


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CANDOR_DB_POOL_SIZE", "ten", "CANDOR_DB_POOL_SIZE must be a number"),
        ("CANDOR_DB_POOL_SIZE", "0", "CANDOR_DB_POOL_SIZE must be at least 1"),
        ("CANDOR_DB_MAX_OVERFLOW", "-1", "CANDOR_DB_MAX_OVERFLOW must be at least 0"),
        ("CANDOR_DB_POOL_TIMEOUT_S", "soon", "CANDOR_DB_POOL_TIMEOUT_S must be a number"),
    ],
)
def test_a_bad_pool_setting_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        config.db_pool()


def test_the_pool_settings_reach_the_engine(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDOR_DB_POOL_SIZE", "7")
    monkeypatch.setenv("CANDOR_DB_MAX_OVERFLOW", "3")
    engine = db.make_engine(db_url)
    try:
        assert engine.pool.size() == 7  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == 3  # type: ignore[attr-defined]
    finally:
        engine.dispose()
