"""Patient record: registering a patient with consent, giving and withdrawing consent, starting a
series with its contraindication screen, and closing a series (service and page, real database)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypedDict

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from analysis.errors import FieldError
from analysis.services import capture, records
from analysis.services import patient_record as pr
from analysis.services import users as user_admin
from analysis.store import db
from analysis.store.access import Actor, PermissionDenied
from analysis.store.models import (
    SCREENING_ITEMS,
    AuditEvent,
    Patient,
    Protocol,
    ScreeningAnswer,
    Series,
)
from tests.conftest import PROJECT_ROOT
from ui.frame import ACTOR_KEY

APP = str(PROJECT_ROOT / "app.py")
ALL_NO = {item: False for item in SCREENING_ITEMS}


class EmptyClinic(TypedDict):
    actor: Actor
    protocol_id: int


@pytest.fixture
def clinic(candor_env: Path) -> EmptyClinic:
    """An empty clinic: the demo accounts and one protocol."""
    db.upgrade(db.get_engine())
    with db.session_scope() as s:
        clinician = next(u for u in user_admin.seed_demo_accounts(s) if u.role == "clinician")
        protocol = Protocol(
            name="PRP, scalp",
            modality="PRP",
            target_area="scalp",
            planned_sessions=3,
            interval_days=28,
            required_views=["scalp_vertex"],
            endpoint_codes=[],
            tolerances={},
            expected_course={},
        )
        s.add(protocol)
        s.flush()
        return {
            "actor": Actor(user_id=clinician.id, email=clinician.email, role="clinician"),
            "protocol_id": protocol.id,
        }


def _events(action: str) -> int:
    with db.session_scope() as s:
        return s.scalars(select(func.count(AuditEvent.id)).where(AuditEvent.action == action)).one()


def test_registration_saves_the_patient_and_its_consents_together(clinic: EmptyClinic) -> None:
    actor = clinic["actor"]
    with db.session_scope() as s:
        pid = pr.register_patient(
            s,
            actor,
            code=" P-0107 ",
            birth_year=1984,
            sex="female",
            fitzpatrick=4,
            consent_scopes=["clinical_record", "teaching"],
        )
    with db.session_scope() as s:
        record = pr.patient_record(s, actor, patient_id=pid)
    assert record.code == "P-0107" and record.fitzpatrick == 4
    assert {c.scope for c in record.consents if c.active} == {"clinical_record", "teaching"}
    assert _events("patient.create") == 1 and _events("consent.give") == 2
    # a bad scope rolls the whole registration back: no half-registered patient
    with pytest.raises(FieldError) as err, db.session_scope() as s:
        pr.register_patient(
            s,
            actor,
            code="P-0108",
            birth_year=1990,
            sex="male",
            fitzpatrick=2,
            consent_scopes=["clinical_record", "billboards"],
        )
    assert err.value.field == "scope"
    with db.session_scope() as s:
        assert s.scalar(select(func.count(Patient.id))) == 1
    for missing, field in (
        ({"birth_year": None}, "birth_year"),
        ({"sex": None}, "sex"),
        ({"fitzpatrick": None}, "fitzpatrick"),
        ({"code": "P-0107"}, "code"),
        ({"code": "  "}, "code"),
    ):
        values: dict[str, Any] = {
            "code": "P-0109",
            "birth_year": 1990,
            "sex": "male",
            "fitzpatrick": 2,
        } | missing
        with pytest.raises(FieldError) as err, db.session_scope() as s:
            pr.register_patient(s, actor, **values)
        assert err.value.field == field


def test_consent_is_given_and_withdrawn_once_and_audited(clinic: EmptyClinic) -> None:
    actor = clinic["actor"]
    with db.session_scope() as s:
        pid = pr.register_patient(s, actor, code="P-1", birth_year=1980, sex="other", fitzpatrick=3)
    with db.session_scope() as s:
        assert pr.set_consent(s, actor, patient_id=pid, scope="consult_display", given=True)
        assert not pr.set_consent(s, actor, patient_id=pid, scope="consult_display", given=True)
    with db.session_scope() as s:
        assert records.consent_scopes(s, pid) == {"consult_display"}
        assert pr.set_consent(s, actor, patient_id=pid, scope="consult_display", given=False)
    with db.session_scope() as s:
        state = pr.patient_record(s, actor, patient_id=pid).consent("consult_display")
        assert records.consent_scopes(s, pid) == set()
    assert not state.active and state.withdrawn_at is not None
    assert _events("consent.give") == 1 and _events("consent.withdraw") == 1
    consult = Actor(user_id=None, email="c@test", role="consult_staff")
    with pytest.raises(PermissionDenied), db.session_scope() as s:
        pr.set_consent(s, consult, patient_id=pid, scope="teaching", given=True)


def test_a_series_needs_every_screening_answer_and_a_reviewed_note_for_each_flag(
    clinic: EmptyClinic,
) -> None:
    actor, protocol_id = clinic["actor"], clinic["protocol_id"]
    with db.session_scope() as s:
        pid = pr.register_patient(
            s,
            actor,
            code="P-2",
            birth_year=1970,
            sex="male",
            fitzpatrick=2,
            consent_scopes=["clinical_record"],
        )
    start: dict[str, Any] = {
        "patient_id": pid,
        "protocol_id": protocol_id,
        "started_on": date.today(),
        "goal": "less shedding",
    }
    half = dict(ALL_NO) | {"allergies": None}
    flagged = dict(ALL_NO) | {"anticoagulants_or_antiplatelets": True}
    cases = (
        ({"answers": half}, "screening", "allergies"),
        ({"answers": flagged}, "screening", "note"),
        (
            {"answers": flagged, "details": {"anticoagulants_or_antiplatelets": "aspirin 100 mg"}},
            "flags_reviewed",
            "anticoagulants",
        ),
        ({"answers": ALL_NO, "protocol_id": None}, "protocol_id", "protocol"),
    )
    extra: dict[str, Any]
    for extra, field, words in cases:
        with pytest.raises(FieldError) as err, db.session_scope() as s:
            pr.start_series(s, actor, **(start | extra))
        assert err.value.field == field and words in str(err.value), str(err.value)
    with db.session_scope() as s:
        assert s.scalar(select(func.count(Series.id))) == 0  # nothing half-saved
        series_id = pr.start_series(
            s,
            actor,
            **start,
            answers=flagged,
            flags_reviewed=True,
            details={"anticoagulants_or_antiplatelets": "aspirin 100 mg"},
        )
    with db.session_scope() as s:
        rows = s.scalars(
            select(ScreeningAnswer).where(ScreeningAnswer.series_id == series_id)
        ).all()
        assert len(rows) == len(SCREENING_ITEMS)
        assert [(r.item, r.details) for r in rows if r.present] == [
            ("anticoagulants_or_antiplatelets", "aspirin 100 mg")
        ]
        record = pr.patient_record(s, actor, patient_id=pid)
    assert [(x.status, x.screening_flags) for x in record.series] == [
        ("active", ("anticoagulants_or_antiplatelets",))
    ]


def test_only_an_active_series_takes_a_new_session(clinic: EmptyClinic) -> None:
    actor, protocol_id = clinic["actor"], clinic["protocol_id"]
    with db.session_scope() as s:
        pid = pr.register_patient(
            s,
            actor,
            code="P-3",
            birth_year=1990,
            sex="female",
            fitzpatrick=5,
            consent_scopes=["clinical_record"],
        )
        series_id = pr.start_series(
            s,
            actor,
            patient_id=pid,
            protocol_id=protocol_id,
            started_on=date.today() - timedelta(days=60),
            goal="",
            answers=ALL_NO,
        )
        capture.start_next_session(
            s, actor, series_id=series_id, performed_on=date.today() - timedelta(days=60)
        )
    with db.session_scope() as s:
        assert pr.change_series_status(s, actor, series_id=series_id, status="completed")
        assert not pr.change_series_status(s, actor, series_id=series_id, status="completed")
    with db.session_scope() as s:
        assert not capture.capture_context(s, actor, series_id=series_id).open_for_sessions
        with pytest.raises(FieldError, match="completed: set it back to active"):
            capture.start_next_session(s, actor, series_id=series_id, performed_on=date.today())
    assert _events("series.status") == 1
    with db.session_scope() as s:
        pr.change_series_status(s, actor, series_id=series_id, status="active")
        capture.start_next_session(s, actor, series_id=series_id, performed_on=date.today())
    with db.session_scope() as s:
        assert pr.patient_record(s, actor, patient_id=pid).series[0].sessions_done == 2
        with pytest.raises(FieldError):
            pr.change_series_status(s, actor, series_id=series_id, status="finished")


# --- the page, through the real router --------------------------------------------------------


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _page(clinic: EmptyClinic) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[ACTOR_KEY] = clinic["actor"]
    _run(at)
    at.switch_page("views/patient_record.py")
    return _run(at)


def _errors(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in at.error)


def test_page_registers_a_patient_keeps_input_on_error_and_starts_a_series(
    clinic: EmptyClinic,
) -> None:
    at = _page(clinic)
    at.text_input(key="reg_code").input("P-0200")
    at.number_input(key="reg_birth_year").set_value(1988)
    at.multiselect(key="reg_scopes").select("clinical_record")
    at.button(key="FormSubmitter:register_patient-Register patient").click()
    _run(at)
    assert "**Sex**" in _errors(at)  # names the missing field...
    assert at.text_input(key="reg_code").value == "P-0200"  # ...and keeps what was typed
    at.selectbox(key="reg_sex").select("female")
    at.selectbox(key="reg_fitz").select(3)
    at.button(key="FormSubmitter:register_patient-Register patient").click()
    _run(at)
    assert not _errors(at), _errors(at)
    assert "Patient P-0200 registered." in [str(m.value) for m in at.success]
    consent_table = at.dataframe[0].value
    assert list(consent_table["Status"]) == ["Given", "Not given", "Not given", "Not given"]

    # start a series: a flagged answer without the review tick is refused, answers are kept
    at.selectbox(key="ns_protocol").select(clinic["protocol_id"])
    at.text_input(key="ns_goal").input("fuller crown")
    for item in SCREENING_ITEMS:
        at.radio(key=f"ns_{item}").set_value("Yes" if item == "allergies" else "No")
    at.text_input(key="ns_allergies_note").input("lidocaine")
    at.button(key="FormSubmitter:start_series-Start series").click()
    _run(at)
    assert "**Screening**" in _errors(at) and "allergies" in _errors(at)
    assert at.radio(key="ns_allergies").value == "Yes"
    at.checkbox(key="ns_reviewed").check()
    at.button(key="FormSubmitter:start_series-Start series").click()
    _run(at)
    assert not _errors(at), _errors(at)
    series_table = at.dataframe[1].value
    assert list(series_table["Status"]) == ["Active"]
    assert list(series_table["Screening flags"]) == ["Allergies relevant to the products"]
    with db.session_scope() as s:
        series_id = s.scalar(select(Series.id))
    assert at.session_state["candor_series_id"] == series_id  # Capture photos opens this series

    # complete it; Capture photos then offers no new session
    at.selectbox(key=f"status_value_{series_id}").select("completed")
    _run(at)  # the browser reruns on the change, which enables "Save status"
    at.button(key="status_save").click()
    _run(at)
    assert list(at.dataframe[1].value["Status"]) == ["Completed"]
    at.switch_page("views/capture_photos.py")
    _run(at)
    assert "capture_start_session" not in [b.key for b in at.button]
    assert any("takes no new sessions" in str(i.value) for i in at.info)


def test_page_withdraws_consent_only_after_confirmation(clinic: EmptyClinic) -> None:
    with db.session_scope() as s:
        pr.register_patient(
            s,
            clinic["actor"],
            code="P-0300",
            birth_year=1979,
            sex="male",
            fitzpatrick=2,
            consent_scopes=["clinical_record"],
        )
    at = _page(clinic)
    at.selectbox[0].select_index(0)  # the patient picker
    _run(at)
    assert at.button(key="consent_withdraw").disabled
    at.checkbox(key="consent_confirm").check()
    _run(at)
    at.button(key="consent_withdraw").click()
    _run(at)
    assert list(at.dataframe[0].value["Status"])[0] == "Withdrawn"
    assert _events("consent.withdraw") == 1


def test_consult_staff_neither_see_nor_open_the_page(clinic: EmptyClinic) -> None:
    consult = Actor(user_id=None, email="c@test", role="consult_staff")
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[ACTOR_KEY] = consult
    _run(at)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/patient_record.py")  # not in their navigation
    direct = AppTest.from_file(
        str(PROJECT_ROOT / "views" / "patient_record.py"), default_timeout=60
    )
    direct.session_state[ACTOR_KEY] = consult
    _run(direct)  # and the page itself refuses when reached anyway
    assert "cannot open this page" in _errors(direct)
    assert not direct.text_input


def test_a_correction_needs_a_reason_and_the_audit_keeps_the_old_values(
    clinic: EmptyClinic,
) -> None:
    actor = clinic["actor"]
    with db.session_scope() as s:
        pid = pr.register_patient(
            s, actor, code="P-4", birth_year=1891 + 100, sex="female", fitzpatrick=2
        )
    fix: dict[str, Any] = {"patient_id": pid, "birth_year": 1981, "sex": "female", "fitzpatrick": 3}
    with pytest.raises(FieldError) as err, db.session_scope() as s:
        pr.correct_patient(s, actor, **fix, reason=" ")
    assert err.value.field == "reason"
    with pytest.raises(FieldError) as err, db.session_scope() as s:
        pr.correct_patient(s, actor, **(fix | {"fitzpatrick": 7}), reason="typo")
    assert err.value.field == "fitzpatrick"
    with db.session_scope() as s:
        assert pr.correct_patient(s, actor, **fix, reason="typed 1991") == [
            "birth_year",
            "fitzpatrick",
        ]
        assert pr.correct_patient(s, actor, **fix, reason="") == []  # nothing to change
    with db.session_scope() as s:
        record = pr.patient_record(s, actor, patient_id=pid)
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "patient.correct")).one()
    assert (record.birth_year, record.fitzpatrick) == (1981, 3)
    assert event.details == {
        "changed": {"birth_year": [1991, 1981], "fitzpatrick": [2, 3]},
        "reason": "typed 1991",
    }
    assert _events("patient.correct") == 1


def test_page_corrects_the_details_with_a_reason(clinic: EmptyClinic) -> None:
    with db.session_scope() as s:
        pid = pr.register_patient(
            s, clinic["actor"], code="P-0400", birth_year=1991, sex="male", fitzpatrick=2
        )
    at = _page(clinic)
    at.selectbox[0].select(pid)
    _run(at)
    at.number_input(key=f"fix_year_{pid}").set_value(1981)
    at.button(key=f"FormSubmitter:correct_{pid}-Save correction").click()
    _run(at)
    assert "**Reason for the correction**" in _errors(at)
    at.text_input(key=f"fix_reason_{pid}").input("typed 1991 at registration")
    at.button(key=f"FormSubmitter:correct_{pid}-Save correction").click()
    _run(at)
    assert "Corrected: birth year." in [str(m.value) for m in at.success]
    assert any("Born 1981" in str(c.value) for c in at.caption)


@pytest.mark.parametrize(
    "code", ["Anna Kowalska", "**P-1**", "[x](javascript:alert(1))", "P/1", "-P1", "P" * 33, "P–1"]
)
def test_patient_codes_are_plain_pseudonyms(clinic: EmptyClinic, code: str) -> None:
    with pytest.raises(FieldError) as err, db.session_scope() as s:
        pr.register_patient(
            s, clinic["actor"], code=code, birth_year=1980, sex="female", fitzpatrick=2
        )
    assert err.value.field == "code" and "never a name" in str(err.value)


def test_a_patient_code_can_be_corrected_and_the_audit_keeps_old_and_new(clinic) -> None:
    actor = clinic["actor"]
    with db.session_scope() as s:
        pid = pr.register_patient(
            s, actor, code="P-0500", birth_year=1980, sex="female", fitzpatrick=2
        )
        pr.register_patient(s, actor, code="P-0501", birth_year=1982, sex="male", fitzpatrick=3)
    same = {"patient_id": pid, "birth_year": 1980, "sex": "female", "fitzpatrick": 2}
    for bad, why in (("P-0501", "already in use"), ("Anna K", "never a name"), ("", "required")):
        with pytest.raises(FieldError) as err, db.session_scope() as s:
            pr.correct_patient(s, actor, **same, code=bad, reason="mistyped")
        assert err.value.field == "code" and why in str(err.value)
    with pytest.raises(FieldError) as err, db.session_scope() as s:
        pr.correct_patient(s, actor, **same, code="P-0550", reason="")
    assert err.value.field == "reason"
    with db.session_scope() as s:
        assert pr.correct_patient(s, actor, **same, code=" P-0550 ", reason="mistyped") == ["code"]
        assert pr.correct_patient(s, actor, **same, code="P-0550", reason="") == []
        assert pr.correct_patient(s, actor, **same, reason="") == []  # None keeps the code
    with db.session_scope() as s:
        assert pr.patient_record(s, actor, patient_id=pid).code == "P-0550"
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "patient.correct"))
    assert event.details == {"changed": {"code": ["P-0500", "P-0550"]}, "reason": "mistyped"}
    assert event.patient_id == pid


def test_page_corrects_a_patient_code(clinic) -> None:
    with db.session_scope() as s:
        pid = pr.register_patient(
            s, clinic["actor"], code="P-0600", birth_year=1991, sex="male", fitzpatrick=2
        )
    at = _page(clinic)
    at.selectbox[0].select(pid)
    _run(at)
    at.text_input(key=f"fix_code_{pid}").input("P-0601")
    at.text_input(key=f"fix_reason_{pid}").input("two digits swapped")
    at.button(key=f"FormSubmitter:correct_{pid}-Save correction").click()
    _run(at)
    assert "Corrected: patient code." in [str(m.value) for m in at.success]
    assert any("### P-0601" in str(m.value) for m in at.markdown)


def test_consent_times_are_shown_in_the_clinic_time_zone(clinic, monkeypatch) -> None:
    monkeypatch.setenv("CANDOR_TIMEZONE", "Asia/Tokyo")  # UTC+9 all year: no daylight saving
    with db.session_scope() as s:
        pid = pr.register_patient(
            s,
            clinic["actor"],
            code="P-0700",
            birth_year=1991,
            sex="male",
            fitzpatrick=2,
            consent_scopes=("clinical_record",),
        )
        given = (
            pr.patient_record(s, clinic["actor"], patient_id=pid)
            .consent("clinical_record")
            .given_at
        )
    at = _page(clinic)
    at.selectbox[0].select(pid)
    _run(at)
    table = at.dataframe[0].value
    shown = table.loc[table["Status"] == "Given", "Since"].iloc[0]
    assert shown.endswith(" JST")
    assert shown.startswith((given + timedelta(hours=9)).strftime("%Y-%m-%d %H:%M"))
    monkeypatch.setenv("CANDOR_TIMEZONE", "Mars/Olympus")
    from analysis.services.common import clinic_zone

    with pytest.raises(ValueError, match="IANA time zone"):
        clinic_zone()
