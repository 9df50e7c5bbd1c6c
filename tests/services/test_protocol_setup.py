"""Protocol setup: the medical director defines a protocol and its photo standard (service and page,
real database); the overrides reach the capture check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from analysis.errors import FieldError
from analysis.photos.compare import Tolerances
from analysis.services import capture
from analysis.services import protocol_setup as ps
from analysis.services import users as user_admin
from analysis.store import db
from analysis.store.access import Actor, PermissionDenied
from analysis.store.models import AuditEvent, EndpointDefinition, Protocol
from tests.conftest import PROJECT_ROOT
from ui.frame import ACTOR_KEY

APP = str(PROJECT_ROOT / "app.py")
DIRECTOR = Actor(user_id=None, email="director@test.candor", role="medical_director")
GOOD = ps.ProtocolForm(
    name="PRP, scalp",
    modality="PRP",
    target_area="scalp",
    planned_sessions=4,
    interval_days=28,
    required_views=("scalp_vertex", "scalp_frontal_hairline"),
    endpoint_codes=("density",),
    primary_endpoint="density",
)


@pytest.fixture
def clinic(candor_env: Path) -> None:
    db.upgrade(db.get_engine())
    with db.session_scope() as s:
        user_admin.seed_demo_accounts(s)
        s.add(
            EndpointDefinition(
                code="density",
                name="Hair density",
                kind="numeric",
                unit="hairs/cm2",
                higher_is_better=True,
                mcid=10.0,
            )
        )


def _save(form: ps.ProtocolForm) -> int:
    with db.session_scope() as s:
        return ps.save_protocol(s, DIRECTOR, form)


def _events(action: str) -> int:
    with db.session_scope() as s:
        return s.scalars(select(func.count(AuditEvent.id)).where(AuditEvent.action == action)).one()


def test_a_protocol_is_created_updated_and_audited_with_what_changed(clinic: None) -> None:
    pid = _save(GOOD)
    _save(
        GOOD.__class__(
            **{
                **vars(GOOD),
                "protocol_id": pid,
                "interval_days": 21,
                "tolerances": {"yaw_warn_deg": 3.0, "yaw_fail_deg": 6.0},
            }
        )
    )
    _save(
        GOOD.__class__(
            **{
                **vars(GOOD),
                "protocol_id": pid,
                "interval_days": 21,
                "tolerances": {"yaw_warn_deg": 3.0, "yaw_fail_deg": 6.0},
            }
        )
    )  # no change
    with db.session_scope() as s:
        form = ps.protocol_form(s, DIRECTOR, protocol_id=pid)
        update = s.scalars(select(AuditEvent).where(AuditEvent.action == "protocol.update")).all()
    assert form.interval_days == 21 and form.tolerances == {
        "yaw_warn_deg": 3.0,
        "yaw_fail_deg": 6.0,
    }
    assert _events("protocol.create") == 1 and len(update) == 1
    assert update[0].details == {"changed": ["interval_days", "tolerances"]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "  "}, "name"),
        ({"modality": ""}, "modality"),
        ({"target_area": ""}, "target_area"),
        ({"planned_sessions": 0}, "planned_sessions"),
        ({"planned_sessions": None}, "planned_sessions"),
        ({"interval_days": 400}, "interval_days"),
        ({"required_views": ()}, "required_views"),
        ({"required_views": ("selfie",)}, "required_views"),
        ({"endpoint_codes": ("nope",)}, "endpoint_codes"),
        ({"endpoint_codes": (), "primary_endpoint": "density"}, "primary_endpoint"),
        ({"tolerances": {"yaw_warn_deg": 12.0}}, "tolerances"),  # warn above the default fail (10)
        ({"tolerances": {"speed": 1.0}}, "tolerances"),
    ],
)
def test_bad_input_names_the_field_and_saves_nothing(
    clinic: None, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(FieldError) as err:
        _save(GOOD.__class__(**{**vars(GOOD), **change}))
    assert err.value.field == field
    with db.session_scope() as s:
        assert s.scalar(select(func.count(Protocol.id))) == 0


def test_duplicate_names_and_other_roles_are_refused(clinic: None) -> None:
    _save(GOOD)
    with pytest.raises(FieldError, match="already exists"):
        _save(GOOD)
    clinician = Actor(user_id=None, email="c@test", role="clinician")
    with pytest.raises(PermissionDenied), db.session_scope() as s:
        ps.save_protocol(s, clinician, GOOD.__class__(**{**vars(GOOD), "name": "Other"}))


def test_table_overrides_are_cleaned_and_checked() -> None:
    rows = [vars(r) for r in ps.tolerance_rows({})]
    assert {r["name"] for r in rows} == set(vars(Tolerances()))
    assert all(r["override"] is None and r["meaning"] != r["name"] for r in rows)
    edited = [dict(r) for r in rows]
    by_name = {r["name"]: r for r in edited}
    by_name["distance_warn_pct"]["override"] = 3.0
    by_name["distance_fail_pct"]["override"] = 10.0  # equal to the default: not an override
    by_name["yaw_warn_deg"]["override"] = float("nan")  # an emptied cell
    assert ps.clean_overrides(edited) == {"distance_warn_pct": 3.0}
    by_name["distance_warn_pct"]["override"] = 30.0
    with pytest.raises(FieldError, match="distance_warn_pct must not exceed distance_fail_pct"):
        ps.clean_overrides(edited)


def test_the_protocols_tolerances_reach_the_capture_check(clinic: None) -> None:
    pid = _save(
        GOOD.__class__(
            **{
                **vars(GOOD),
                "required_views": ("face_frontal",),
                "target_area": "face",
                "tolerances": {"distance_warn_pct": 2.0},
            }
        )
    )
    from analysis.services.patient_record import register_patient, start_series
    from analysis.store.models import SCREENING_ITEMS

    clinician = Actor(user_id=None, email="c@test", role="clinician")
    with db.session_scope() as s:
        patient = register_patient(
            s,
            clinician,
            code="P-1",
            birth_year=1980,
            sex="female",
            fitzpatrick=2,
            consent_scopes=["clinical_record"],
        )
        series = start_series(
            s,
            clinician,
            patient_id=patient,
            protocol_id=pid,
            started_on=__import__("datetime").date.today(),
            goal="",
            answers={i: False for i in SCREENING_ITEMS},
        )
        ctx = capture.capture_context(s, clinician, series_id=series)
    assert ctx.tolerances == {"distance_warn_pct": 2.0}
    assert ctx.required_views == ("face_frontal",)


def test_page_creates_a_protocol_and_keeps_input_on_error(clinic: None) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[ACTOR_KEY] = DIRECTOR
    at.run()
    at.switch_page("views/protocol_setup.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.text_input(key="ps_name_new").input("Microneedling, face")
    at.text_input(key="ps_modality_new").input("microneedling")
    at.text_input(key="ps_area_new").input("face")
    at.number_input(key="ps_planned_new").set_value(3)
    at.button(key="FormSubmitter:protocol_new-Save protocol").click().run()
    assert "**Interval (days)**" in "\n".join(str(e.value) for e in at.error)
    assert at.text_input(key="ps_name_new").value == "Microneedling, face"
    at.number_input(key="ps_interval_new").set_value(28)
    at.multiselect(key="ps_views_new").select("face_frontal")
    at.button(key="FormSubmitter:protocol_new-Save protocol").click().run()
    assert not at.error, [e.value for e in at.error]
    assert "Protocol saved: Microneedling, face." in [str(m.value) for m in at.success]
    with db.session_scope() as s:
        p = s.scalars(select(Protocol)).one()
        assert (p.name, p.planned_sessions, p.interval_days, p.required_views, p.tolerances) == (
            "Microneedling, face",
            3,
            28,
            ["face_frontal"],
            {},
        )
    # the saved protocol is now chosen, with its values in the form
    assert at.text_input(key=f"ps_name_{p.id}").value == "Microneedling, face"


# --- endpoints ------------------------------------------------------------------------------------

WSRS = ps.EndpointForm(
    code="wsrs",
    name="Wrinkle severity (WSRS)",
    kind="ordinal",
    scale_min=1,
    scale_max=5,
    higher_is_better=False,
    mcid=1.0,
    noise_sd=0.4,
)


def _save_endpoint(form: ps.EndpointForm) -> str:
    with db.session_scope() as s:
        return ps.save_endpoint(s, DIRECTOR, form)


def test_the_standard_library_is_added_once_and_reads_gais_from_its_anchor(clinic: None) -> None:
    from analysis.outcomes.endpoint_library import ENDPOINTS

    with db.session_scope() as s:
        assert len(ps.missing_standard_endpoints(s, DIRECTOR)) == len(ENDPOINTS)
        assert ps.add_standard_endpoints(s, DIRECTOR) == len(ENDPOINTS)
    with db.session_scope() as s:
        assert ps.missing_standard_endpoints(s, DIRECTOR) == []
        assert ps.add_standard_endpoints(s, DIRECTOR) == 0
        gais = s.scalars(
            select(EndpointDefinition).where(EndpointDefinition.code == "gais_clinician")
        ).one()
        rows = {r["code"]: r for r in ps.endpoint_table(s, DIRECTOR)}
    assert gais.neutral == 4.0 and gais.anchors is not None and gais.anchors["3"] == "improved"
    assert (
        rows["gais_clinician"]["rated_against_baseline"]
        and not rows["hair_density"]["rated_against_baseline"]
    )
    assert _events("endpoint.create") == 1


def test_a_clinic_endpoint_is_validated_and_saved(clinic: None) -> None:
    assert _save_endpoint(WSRS) == "wsrs"
    bad: dict[str, list[dict[str, Any]]] = {
        "code": [{"code": "WSRS 2"}, {"code": "wsrs"}, {"code": "x"}],
        "name": [{"name": " "}],
        "kind": [{"kind": None}, {"kind": "text", "scale_min": None, "scale_max": None}],
        "scale_min": [{"scale_min": None, "scale_max": None}],
        "scale_max": [{"scale_max": 1}, {"scale_min": 1, "scale_max": None, "kind": "numeric"}],
        "mcid": [{"mcid": -1.0}, {"neutral": 3.0, "mcid": None}],
        "noise_sd": [{"noise_sd": 0.0}],
        "neutral": [{"neutral": 9.0}],
    }
    for field, changes in bad.items():
        for change in changes:
            form = ps.EndpointForm(**{**vars(WSRS), "code": "wsrs_2", **change})
            with pytest.raises(FieldError) as err:
                _save_endpoint(form)
            assert err.value.field == field, (change, err.value.field, str(err.value))
    _save_endpoint(ps.EndpointForm(code="notes", name="Notes", kind="text"))
    with db.session_scope() as s:
        assert {r["code"] for r in ps.endpoint_table(s, DIRECTOR)} == {"density", "wsrs", "notes"}


def test_page_adds_the_library_and_a_clinic_endpoint(clinic: None) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[ACTOR_KEY] = DIRECTOR
    at.run()
    at.switch_page("views/protocol_setup.py").run()
    at.button(key="ep_library").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("standard endpoint(s) added" in str(m.value) for m in at.success)
    at.text_input(key="ep_code").input("wsrs")
    at.text_input(key="ep_name").input("Wrinkle severity (WSRS)")
    at.selectbox(key="ep_kind").select("ordinal")
    at.button(key="FormSubmitter:new_endpoint-Add endpoint").click().run()
    assert "**Scale from**" in "\n".join(str(e.value) for e in at.error)
    assert at.text_input(key="ep_name").value == "Wrinkle severity (WSRS)"  # kept
    at.number_input(key="ep_low").set_value(1)
    at.number_input(key="ep_high").set_value(5)
    at.button(key="FormSubmitter:new_endpoint-Add endpoint").click().run()
    assert "Endpoint added: wsrs." in [str(m.value) for m in at.success]
    tables = [d.value for d in at.dataframe if "code" in d.value.columns]
    assert len(tables) == 1 and "wsrs" in list(tables[0]["code"])


def test_expected_course_round_trips_and_is_checked(clinic: None) -> None:
    pid = _save(GOOD)
    with db.session_scope() as s:
        form = ps.protocol_form(s, DIRECTOR, protocol_id=pid)
    rows = ps.course_rows(form)
    assert rows == [{"endpoint": "density", "s2": None, "s3": None, "s4": None}]
    rows[0]["s3"], rows[0]["s4"] = 8.0, float("nan")  # an emptied cell
    course = ps.course_from_rows(rows)
    assert course == {"density": {3: 8.0}}
    _save(GOOD.__class__(**{**vars(GOOD), "protocol_id": pid, "expected_course": course}))
    with db.session_scope() as s:
        stored = s.get_one(Protocol, pid).expected_course
        assert stored == {"density": {"3": 8.0}}
        assert ps.protocol_form(s, DIRECTOR, protocol_id=pid).expected_course == {
            "density": {3: 8.0}
        }
    with pytest.raises(FieldError) as err:
        _save(
            GOOD.__class__(
                **{**vars(GOOD), "protocol_id": pid, "expected_course": {"density": {9: 1.0}}}
            )
        )
    assert err.value.field == "expected_course" and "session 9" in str(err.value)
    with pytest.raises(FieldError, match="not a number"):
        ps.course_from_rows([{"endpoint": "density", "s2": "lots"}])
    # taking the endpoint off the protocol takes its course with it
    _save(
        GOOD.__class__(
            **{
                **vars(GOOD),
                "protocol_id": pid,
                "endpoint_codes": (),
                "primary_endpoint": None,
                "expected_course": course,
            }
        )
    )
    with db.session_scope() as s:
        assert s.get_one(Protocol, pid).expected_course == {}


def test_page_offers_the_course_of_each_endpoint_of_a_saved_protocol(clinic: None) -> None:
    pid = _save(GOOD.__class__(**{**vars(GOOD), "expected_course": {"density": {4: 12.0}}}))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[ACTOR_KEY] = DIRECTOR
    at.session_state["setup_protocol_id"] = pid
    at.run()
    at.switch_page("views/protocol_setup.py").run()
    assert not at.exception, [e.value for e in at.exception]
    course = [d.value for d in at.dataframe if "endpoint" in d.value.columns]
    assert len(course) == 1
    assert list(course[0].columns) == ["endpoint", "s2", "s3", "s4"]
    assert course[0].iloc[0]["s4"] == 12.0 and course[0].iloc[0]["endpoint"] == "density"


def _record_value(code: str, value: float) -> None:
    """One recorded value on endpoint ``code`` (a patient, series and session around it)."""
    from datetime import date

    from analysis.store.models import EndpointMeasurement, Patient, Series, Session

    pid = _save(
        GOOD.__class__(
            **{
                **vars(GOOD),
                "name": f"values of {code}",
                "endpoint_codes": (code,),
                "primary_endpoint": code,
            }
        )
    )
    with db.session_scope() as s:
        patient = Patient(code=f"P-{code}", birth_year=1980, sex="female", fitzpatrick=2)
        series = Series(patient=patient, protocol_id=pid, started_on=date(2026, 1, 5))
        visit = Session(series=series, number=1, performed_on=date(2026, 1, 5))
        endpoint = s.scalar(select(EndpointDefinition).where(EndpointDefinition.code == code))
        s.add(EndpointMeasurement(session=visit, endpoint_id=endpoint.id, value_num=value))


def test_an_endpoint_is_edited_but_its_scale_is_fixed_once_values_exist(clinic) -> None:
    _save_endpoint(WSRS)
    with db.session_scope() as s:
        form = ps.endpoint_form(s, DIRECTOR, code="wsrs")
        assert form == WSRS
        # no values yet: everything but the code may change
        assert ps.update_endpoint(
            s, DIRECTOR, ps.EndpointForm(**{**vars(WSRS), "scale_max": 6.0, "mcid": 0.5})
        ) == ["mcid", "scale_max"]
        assert ps.update_endpoint(s, DIRECTOR, ps.endpoint_form(s, DIRECTOR, code="wsrs")) == []
    with pytest.raises(FieldError) as err, db.session_scope() as s:
        ps.update_endpoint(s, DIRECTOR, ps.EndpointForm(**{**vars(WSRS), "name": " "}))
    assert err.value.field == "name"
    _record_value("wsrs", 3.0)
    edited = ps.EndpointForm(**{**vars(WSRS), "scale_max": 6.0, "mcid": 1.0, "name": "WSRS v2"})
    with db.session_scope() as s:
        assert ps.update_endpoint(s, DIRECTOR, edited) == ["mcid", "name"]
    for change in (
        {"scale_max": 9.0},
        {"unit": "grade"},
        {"higher_is_better": True},
        {"kind": "numeric"},
        {"neutral": 3.0},
    ):
        with pytest.raises(FieldError) as err, db.session_scope() as s:
            ps.update_endpoint(s, DIRECTOR, ps.EndpointForm(**{**vars(edited), **change}))
        assert "1 value(s) are recorded" in str(err.value), change
        assert err.value.field == next(iter(k for k in change if k in ps.SCALE_FIELDS)), change
    with db.session_scope() as s:
        stored = s.scalar(select(EndpointDefinition).where(EndpointDefinition.code == "wsrs"))
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "endpoint.update")).all()
        table = {r["code"]: r for r in ps.endpoint_table(s, DIRECTOR)}
    assert (stored.name, stored.mcid, stored.scale_max) == ("WSRS v2", 1.0, 6.0)
    assert events[-1].details == {"changed": {"mcid": [0.5, 1.0], "name": [WSRS.name, "WSRS v2"]}}
    assert table["wsrs"]["values"] == 1 and table["density"]["values"] == 0


def test_a_retired_endpoint_keeps_its_history_and_is_no_longer_offered(clinic) -> None:
    _save_endpoint(WSRS)
    _record_value("wsrs", 2.0)  # a protocol now lists wsrs
    with pytest.raises(FieldError, match="values of wsrs still list"), db.session_scope() as s:
        ps.retire_endpoint(s, DIRECTOR, code="wsrs")
    with db.session_scope() as s:
        p = s.scalar(select(Protocol).where(Protocol.name == "values of wsrs"))
        p.endpoint_codes, p.primary_endpoint = ["density"], "density"
    with db.session_scope() as s:
        assert ps.retire_endpoint(s, DIRECTOR, code="wsrs") is True
        assert ps.retire_endpoint(s, DIRECTOR, code="wsrs") is False  # already retired
        offered = dict(ps.endpoint_choices(s, DIRECTOR))
        kept = dict(ps.endpoint_choices(s, DIRECTOR, keep=("wsrs",)))
        table = {r["code"]: r for r in ps.endpoint_table(s, DIRECTOR)}
    assert "wsrs" not in offered and "density" in offered
    assert kept["wsrs"].endswith("· retired")
    assert table["wsrs"]["retired"] and table["wsrs"]["values"] == 1  # history kept
    with pytest.raises(FieldError, match="retired endpoint"):
        _save(
            GOOD.__class__(**{**vars(GOOD), "name": "new", "endpoint_codes": ("density", "wsrs")})
        )
    with db.session_scope() as s:
        assert ps.retire_endpoint(s, DIRECTOR, code="wsrs", retired=False) is True
        assert "wsrs" in dict(ps.endpoint_choices(s, DIRECTOR))
    assert _events("endpoint.retire") == 1 and _events("endpoint.reinstate") == 1


def test_page_edits_and_retires_an_endpoint(clinic) -> None:
    _save_endpoint(WSRS)
    _record_value("density", 150.0)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[ACTOR_KEY] = DIRECTOR
    at.run()
    at.switch_page("views/protocol_setup.py").run()
    at.selectbox(key="epe_pick").select("density").run()
    assert any("1 value(s) are recorded" in str(c.value) for c in at.caption)
    assert at.number_input(key="epe_density_low").disabled
    at.number_input(key="epe_density_mcid").set_value(12.0)
    at.button(key="FormSubmitter:edit_endpoint_density-Save changes").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Hair density: saved (mcid)." in [str(m.value) for m in at.success]
    at.selectbox(key="epe_pick").select("wsrs").run()
    at.button(key="epe_retire_wsrs").click().run()
    assert any("retired" in str(m.value) for m in at.success)
    with db.session_scope() as s:
        assert "wsrs" not in dict(ps.endpoint_choices(s, DIRECTOR))
