"""Searching the clinic: the series picker and the patient list search in the database, fold case
beyond ASCII on both databases, and keep the picker's current choice."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, event

from analysis.services.capture import series_choices
from analysis.services.series import list_patients
from analysis.store import db
from analysis.store.access import Actor, PermissionDenied
from analysis.store.models import Patient, Protocol, Series

CLINICIAN = Actor(user_id=None, email="c@test", role="clinician")


def _clinic(url: str) -> Engine:
    engine = db.make_engine(url)
    with db.session_scope(engine) as s:
        protos = [
            Protocol(
                name=n, modality="m", target_area="scalp", planned_sessions=4, interval_days=28
            )
            for n in ("Émulsion capillaire", "PRP for hair")
        ]
        s.add_all(protos)
        s.flush()
        for i in range(70):
            p = Patient(code=f"CND-{i:04d}", birth_year=1980, sex="female", fitzpatrick=2)
            s.add(p)
            s.flush()
            s.add(
                Series(
                    patient_id=p.id,
                    protocol_id=protos[i % 2].id,
                    started_on=date(2026, 1, 1),
                    status="active",
                )
            )
    return engine


def test_series_search_folds_case_beyond_ascii_and_limits(db_url: str) -> None:
    engine = _clinic(db_url)
    with db.session_scope(engine) as s:
        every = series_choices(s, CLINICIAN)
        found = series_choices(s, CLINICIAN, search="ÉMUL")
        lower = series_choices(s, CLINICIAN, search="émulsion")
        capped = series_choices(s, CLINICIAN, limit=50)
        one = series_choices(s, CLINICIAN, search="cnd-0069")
        literal = series_choices(s, CLINICIAN, search="CND_00")  # '_' is not a wildcard
        with pytest.raises(PermissionDenied):
            series_choices(s, Actor(user_id=None, email="x@test", role="consult_staff"))
    engine.dispose()
    assert len(every) == 70
    assert len(found) == len(lower) == 35
    assert {c.protocol_name for c in found} == {"Émulsion capillaire"}
    assert len(capped) == 50 and [c.patient_code for c in capped] == sorted(
        c.patient_code for c in capped
    )
    assert [c.patient_code for c in one] == ["CND-0069"]
    assert literal == []


def test_series_picker_keeps_the_current_choice_outside_the_search(db_url: str) -> None:
    engine = _clinic(db_url)
    with db.session_scope(engine) as s:
        last = series_choices(s, CLINICIAN, search="CND-0069")[0].series_id
        capped = series_choices(s, CLINICIAN, limit=10, include=last)
        other = series_choices(s, CLINICIAN, search="CND-0001", include=last)
    engine.dispose()
    assert last in [c.series_id for c in capped] and len(capped) == 11
    assert [c.patient_code for c in other] == ["CND-0069", "CND-0001"]


def test_series_search_is_two_statements_at_most(db_url: str) -> None:
    engine = _clinic(db_url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, *_a: statements.append(sql))
    with db.session_scope(engine) as s:
        statements.clear()
        series_choices(s, CLINICIAN, search="cnd", limit=51, include=1)
        picker = [q for q in statements if "series" in q.lower()]
    engine.dispose()
    assert 1 <= len(picker) <= 2


def test_patient_list_search_folds_case_beyond_ascii(db_url: str) -> None:
    engine = _clinic(db_url)
    with db.session_scope(engine) as s:
        df = list_patients(s, CLINICIAN, search="ÉMULSION", limit=10)
    engine.dispose()
    assert df.attrs["total_series"] == 35 and len(df) == 10
    assert set(df["protocol"]) == {"Émulsion capillaire"}


def test_patient_search_finds_a_status_by_the_words_shown(db_url: str) -> None:
    engine = _clinic(db_url)
    with db.session_scope(engine) as s:
        for series in s.query(Series).order_by(Series.id).limit(3):
            series.status = "dropped_out"
    with db.session_scope(engine) as s:
        shown = list_patients(s, CLINICIAN, search="Dropped out")
        stored = list_patients(s, CLINICIAN, search="dropped_out")
        part = list_patients(s, CLINICIAN, search="drop")
        nothing = list_patients(s, CLINICIAN, search="dropped outside")
    engine.dispose()
    assert len(shown) == len(stored) == len(part) == 3
    assert set(shown["status"]) == {"dropped_out"} and nothing.empty
