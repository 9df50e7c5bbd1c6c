"""The page loaders issue a fixed number of SQL statements, whatever the clinic's size (issue 11).

A loader that queries once per series (a lazy ``series.sessions`` in a loop) passes on a demo of
64 patients and takes 15 s at 10,000. These tests seed a small and a larger clinic in bulk (the
demo generator, without photos) on SQLite and PostgreSQL and count what each loader sends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text

from analysis.auth.accounts import actor_for
from analysis.demo.clinic import seed_demo_clinic
from analysis.services.capture import series_choices
from analysis.services.frames import load_frames
from analysis.services.pairs import representative_pairs
from analysis.services.series import list_patients, series_overview
from analysis.store import db
from analysis.store.models import Protocol, Series, User

TODAY = date(2026, 6, 1)


@contextmanager
def counted(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _seeded(url: str, n_patients: int) -> Engine:
    engine = db.make_engine(url)
    report = seed_demo_clinic(
        n_patients=n_patients,
        seed=5,
        photos=False,
        today=TODAY,
        engine=engine,
        progress=lambda _line: None,
    )
    assert report.seeded
    return engine


def _fresh(url: str, tmp_path: Any) -> str:
    """An empty database beside ``url``'s: a new SQLite file, or PostgreSQL's schema emptied."""
    if url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'large.sqlite3'}"
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def _statements(engine: Engine, call: Callable[[Any, Any, Any], Any], role: str) -> int:
    with db.session_scope(engine) as s:
        user = s.scalars(select(User).where(User.role == role)).first()  # the demo has several
        assert user is not None
        actor = actor_for(user)
        series_id = s.scalar(select(func.max(Series.id)))
    with db.session_scope(engine) as s, counted(engine) as statements:
        call(s, actor, series_id)
    return len(statements)


LOADERS: dict[str, tuple[str, Callable[..., Any]]] = {
    "patient list page": ("clinician", lambda s, a, _: list_patients(s, a, limit=50)),
    "patient search": ("clinician", lambda s, a, _: list_patients(s, a, search="cnd-00", limit=50)),
    "series picker": ("clinician", lambda s, a, _: series_choices(s, a)),
    "one series": ("clinician", lambda s, a, sid: series_overview(s, a, sid)),
    "clinic frames": ("medical_director", lambda s, a, _: load_frames(s, a)),
    "representative pairs": (
        "consult_staff",
        lambda s, a, _: [
            representative_pairs(s, a, protocol_id=p.id, view=p.required_views[0])
            for p in s.scalars(select(Protocol).order_by(Protocol.id))
        ],
    ),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_loader_statements_do_not_grow_with_the_clinic(
    db_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, loader: str
) -> None:
    monkeypatch.setenv("CANDOR_DATA_DIR", str(tmp_path / "data"))
    role, call = LOADERS[loader]
    small = _seeded(db_url, 8)
    n_small = _statements(small, call, role)
    with db.session_scope(small) as s:
        series_small = s.scalars(select(func.count(Series.id))).one()
    small.dispose()
    # the demo is only seeded into an empty database: the larger clinic gets a new one
    large = _seeded(_fresh(db_url, tmp_path), 160)
    n_large = _statements(large, call, role)
    with db.session_scope(large) as s:
        series_large = s.scalars(select(func.count(Series.id))).one()
    large.dispose()
    assert series_large >= 10 * series_small
    assert n_large == n_small, (loader, n_small, n_large)
