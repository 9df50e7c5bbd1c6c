"""Loaders that read the clinic database: patient list, series review, lot trace, frames and
representative photo pairs, on a small clinic written through ``records.*`` (SQLite)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypedDict

import pandas as pd
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as DbSession

from analysis.outcomes.frames import aggregate_photo_sets
from analysis.outcomes.pairs import Candidate, pick_typical
from analysis.services import records
from analysis.services.frames import load_frames
from analysis.services.pairs import representative_pairs
from analysis.services.safety import trace_lot
from analysis.services.series import list_patients, series_overview
from analysis.store import db
from analysis.store.access import Actor, PermissionDenied
from analysis.store.images import ImageStore, sha256_hex
from analysis.store.models import AuditEvent, EndpointDefinition, Photo, ProductLot, Protocol, User

CLINICIAN = Actor(user_id=None, email="clin@test", role="clinician")
DIRECTOR = Actor(user_id=None, email="md@test", role="medical_director")
CONSULT = Actor(user_id=None, email="desk@test", role="consult_staff")
START = date(2026, 2, 2)
# wrinkle improvement at session 3 (baseline 4, lower is better) per patient 1..7.
# P6's last photo only warns; P7 never consented to consult display.
IMPROVEMENT = {1: 0.0, 2: 0.5, 3: 1.0, 4: 1.5, 5: 2.0, 6: 2.5, 7: 3.0}


def _photo(data: bytes, verdict: str) -> records.PhotoInput:
    return records.PhotoInput(
        data=data,
        original_sha256="0" * 64,
        media_type="image/jpeg",
        width_px=10,
        height_px=10,
        view="face_frontal",
        verdict=verdict,
        measurements={},
        checks=[],
    )


class ClinicIds(TypedDict):
    protocol: int
    operator: int
    patients: dict[int, int]  # patient number -> id
    series: dict[int, int]


def write_clinic(engine: Engine, store: ImageStore) -> ClinicIds:
    """Seven patients on one protocol (see IMPROVEMENT), written through ``records.*``."""
    patients: dict[int, int] = {}
    series: dict[int, int] = {}
    with db.session_scope(engine) as s:
        s.add(
            EndpointDefinition(
                code="wrinkle",
                name="Wrinkle grade",
                kind="numeric",
                unit="grade",
                scale_min=0,
                scale_max=5,
                higher_is_better=False,
                mcid=1.0,
                noise_sd=0.3,
            )
        )
        op = User(email="ada@test", display_name="Dr Ada", role="clinician")
        s.add(op)
        proto = Protocol(
            name="Meso face",
            modality="mesotherapy",
            target_area="face",
            planned_sessions=3,
            interval_days=28,
            required_views=["face_frontal"],
            endpoint_codes=["wrinkle"],
            primary_endpoint="wrinkle",
            expected_course={"wrinkle": {"2": -0.5, "3": -1.0}},
        )
        s.add(proto)
        s.flush()
        ids = ClinicIds(protocol=proto.id, operator=op.id, patients=patients, series=series)
        for i, imp in IMPROVEMENT.items():
            p = records.create_patient(
                s, CLINICIAN, code=f"MF-{i:03d}", birth_year=1975 + i, sex="female", fitzpatrick=2
            )
            ids["patients"][i] = p.id
            records.give_consent(
                s,
                CLINICIAN,
                patient_id=p.id,
                scope="clinical_record",
                at=datetime(2026, 1, 1, tzinfo=UTC),
            )
            if i != 7:
                records.give_consent(
                    s,
                    CLINICIAN,
                    patient_id=p.id,
                    scope="consult_display",
                    at=datetime(2026, 1, 1, tzinfo=UTC),
                )
            se = records.create_series(
                s,
                CLINICIAN,
                patient_id=p.id,
                protocol_id=proto.id,
                started_on=START,
                status="completed" if i < 7 else "active",
                goal="forehead lines",
            )
            ids["series"][i] = se.id
            for k in (1, 2, 3):
                v = records.add_session(
                    s,
                    CLINICIAN,
                    series_id=se.id,
                    performed_on=START + timedelta(days=28 * (k - 1)),
                    operator_id=op.id,
                    number=k,
                )
                # number given explicitly: add_session reads series.sessions, which is stale
                # within one transaction (the new Session is not appended to the relationship)
                lot, expiry, why = "L-100", date(2026, 12, 31), ""
                if i == 1 and k == 2:
                    lot, expiry, why = "L-OLD", date(2026, 2, 20), "only stock; patient informed"
                records.record_treatment(
                    s,
                    CLINICIAN,
                    session_id=v.id,
                    product="Meso X",
                    lot_number=lot,
                    expiry_on=expiry,
                    volume_ml=2.0,
                    override_reason=why,
                )
                value = 4.0 - {1: 0.0, 2: imp / 2, 3: imp}[k]
                records.record_measurement(
                    s, CLINICIAN, session_id=v.id, endpoint_code="wrinkle", value=value
                )
                verdict = "baseline" if k == 1 else ("warn" if (i, k) == (6, 3) else "pass")
                records.store_photo(
                    s,
                    CLINICIAN,
                    store,
                    session_id=v.id,
                    photo=_photo(f"P{i}-S{k}".encode(), verdict),
                )
                if i == 1 and k == 2:
                    records.record_reaction(
                        s,
                        CLINICIAN,
                        session_id=v.id,
                        kind="expected",
                        term="erythema",
                        severity="mild",
                        duration_days=2,
                    )
                    records.record_reaction(
                        s,
                        CLINICIAN,
                        session_id=v.id,
                        kind="adverse",
                        term="blanching",
                        severity="moderate",
                        escalation="hyaluronidase given; resolved",
                    )
        records.add_confounder(
            s,
            CLINICIAN,
            series_id=ids["series"][1],
            kind="retinoid",
            started_on=START + timedelta(days=40),
        )
        for old in s.scalars(select(ProductLot).where(ProductLot.lot_number == "L-OLD")):
            old.recalled = True
    return ids


@pytest.fixture(scope="module")
def clinic_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ClinicIds]:
    """The clinic is written once per module; each test gets its own copy of the SQLite file."""
    root = tmp_path_factory.mktemp("clinic")
    engine = db.make_engine(f"sqlite:///{root / 'template.sqlite3'}")
    db.upgrade(engine)
    ids = write_clinic(engine, ImageStore(root / "img"))
    engine.dispose()  # last connection closed: the WAL is checkpointed into the file
    return root / "template.sqlite3", ids


@pytest.fixture
def clinic(
    clinic_template: tuple[Path, ClinicIds],
    tmp_path: Path,
) -> Iterator[tuple[Engine, ClinicIds]]:
    template, ids = clinic_template
    copy = tmp_path / "candor.sqlite3"
    shutil.copyfile(template, copy)
    engine = db.make_engine(f"sqlite:///{copy}")
    yield engine, ids
    engine.dispose()


def _actions(session: DbSession) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_patient_list_rows_search_and_audit(clinic: tuple[Engine, ClinicIds]) -> None:
    engine, ids = clinic
    with db.session_scope(engine) as s:
        df = list_patients(s, CLINICIAN)
        assert len(df) == 7
        r = df[df["patient_code"] == "MF-006"].iloc[0]
        assert (r["sessions_done"], r["sessions_planned"], r["last_visit_on"]) == (
            3,
            3,
            START + timedelta(days=56),
        )
        assert r["photo_compliance"] == pytest.approx(2 / 3)  # the session-3 photo only warns
        assert r["age_band"] == "40-49" and r["protocol"] == "Meso face"
        assert list(list_patients(s, CLINICIAN, search="mf-007")["patient_code"]) == ["MF-007"]
        assert len(list_patients(s, CLINICIAN, search="MESO")) == 7
        assert len(list_patients(s, CLINICIAN, search="Active")) == 1
        assert _actions(s)[-1] == "patient.list"
        with pytest.raises(PermissionDenied):
            list_patients(s, CONSULT)


def test_series_overview_flags_lots_reactions_confounders_and_noise(
    clinic: tuple[Engine, ClinicIds],
) -> None:
    engine, ids = clinic
    with db.session_scope(engine) as s:
        o = series_overview(s, CLINICIAN, ids["series"][1])
        assert list(o.sessions["number"]) == [1, 2, 3]
        assert list(o.sessions["operator"]) == ["Dr Ada"] * 3
        old = o.treatments[o.treatments["lot_number"] == "L-OLD"].iloc[0]
        assert bool(old["expired_at_use"]) and bool(old["recalled"])
        assert old["override_reason"].startswith("only stock")
        assert o.red_flags == 1
        assert set(o.reactions["term"]) == {"erythema", "blanching"}
        # retinoid from day 40: between sessions 2 (day 28) and 3 (day 56), ongoing
        assert list(o.comparisons["spans_confounder"]) == [False, True]
        assert o.comparisons.iloc[1]["confounders"] == ["retinoid"]
        assert o.photo_grid.loc["face_frontal"].tolist() == ["baseline", "pass", "pass"]
        m = o.measurements.set_index("session_number")
        assert m.loc[3, "change"] == pytest.approx(0.0) and m.loc[3, "noise_band"] == 0.6
        assert bool(m.loc[3, "within_noise"]) and m.loc[3, "expected_change"] == -1.0
        o7 = series_overview(s, CLINICIAN, ids["series"][7])
        m7 = o7.measurements.set_index("session_number")
        assert m7.loc[3, "change"] == pytest.approx(-3.0) and not bool(m7.loc[3, "within_noise"])
        assert m7.loc[3, "improvement"] == pytest.approx(3.0)
        assert _actions(s)[-1] == "series.view"
        with pytest.raises(LookupError):
            series_overview(s, CLINICIAN, 9999)
        with pytest.raises(PermissionDenied):
            series_overview(s, CONSULT, ids["series"][1])


def test_trace_lot_finds_every_exposure_with_flags(clinic: tuple[Engine, ClinicIds]) -> None:
    engine, ids = clinic
    with db.session_scope(engine) as s:
        t = trace_lot(s, DIRECTOR, lot_number="l-old")
        assert t.patients == 1 and t.sessions == 1 and t.recalled and t.expired_at_use == 1
        assert t.exposures.iloc[0]["patient_code"] == "MF-001"
        assert set(t.reactions["term"]) == {"erythema", "blanching"}
        assert bool(t.reactions["red_flag"].any())
        assert t.outcomes.iloc[0]["change"] == pytest.approx(0.0)
        common = trace_lot(s, DIRECTOR, lot_number="L-100", product="meso x")
        assert common.patients == 7 and common.sessions == 20 and not common.recalled
        assert trace_lot(s, DIRECTOR, lot_number="nope").patients == 0
        assert _actions(s)[-1] == "lot.trace"
        with pytest.raises(PermissionDenied):
            trace_lot(s, CLINICIAN, lot_number="L-OLD")


def test_load_frames_reads_the_record_without_codes(clinic: tuple[Engine, ClinicIds]) -> None:
    engine, ids = clinic
    with db.session_scope(engine) as s:
        f = load_frames(s, DIRECTOR)
        assert len(f.series) == 7 and len(f.sessions) == 21 and len(f.photo_sets) == 21
        assert "code" not in f.patients.columns and "patient_code" not in f.series.columns
        m = f.measurements
        last = m[(m["series_id"] == ids["series"][5]) & (m["session_number"] == 3)].iloc[0]
        assert (last["change"], last["improvement"]) == (pytest.approx(-2.0), pytest.approx(2.0))
        assert _actions(s)[-1] == "frames.load"
        assert len(load_frames(s, CONSULT, purpose="timeline.read").series) == 7
        with pytest.raises(PermissionDenied):
            load_frames(s, CONSULT)  # cohort.read is the medical director's


def test_photo_sets_aggregated_by_the_database_match_row_by_row(
    clinic: tuple[Engine, ClinicIds],
) -> None:
    """The database's per-session photo figures equal the same aggregation done in pandas."""
    engine, ids = clinic
    with db.session_scope(engine) as s:
        f = load_frames(s, DIRECTOR)
        rows = pd.DataFrame(
            [(p.session_id, p.view, p.verdict) for p in s.scalars(select(Photo))],
            columns=["session_id", "view", "verdict"],
        )
    expected = aggregate_photo_sets(rows).sort_values("session_id").reset_index(drop=True)
    got = f.photo_sets[["session_id", "photos", "passing", "views"]].sort_values("session_id")
    for df in (expected, got):  # the database lists a session's views in any order
        df["views"] = [sorted(v.split(",")) for v in df["views"]]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)
    assert set(f.photo_sets["passing"]) != {1}  # the fixture has photos that do not pass


def test_load_frames_for_chosen_protocols_reads_only_their_series(
    clinic: tuple[Engine, ClinicIds],
) -> None:
    engine, ids = clinic
    with db.session_scope(engine) as s:
        whole = load_frames(s, DIRECTOR)
        none = load_frames(s, DIRECTOR, protocol_ids=[ids["protocol"] + 99])
        one = load_frames(s, DIRECTOR, protocol_ids=[ids["protocol"]])
        details = s.scalars(select(AuditEvent.details).order_by(AuditEvent.id.desc())).first()
        assert details is not None and details["protocol_ids"] == [ids["protocol"]]
    assert len(none.series) == len(none.sessions) == len(none.measurements) == 0
    assert len(none.patients) == len(none.photo_sets) == 0
    assert len(none.protocols) == len(whole.protocols)  # the small tables stay whole
    pd.testing.assert_frame_equal(one.measurements, whole.measurements)
    pd.testing.assert_frame_equal(one.photo_sets, whole.photo_sets)


def test_representative_pairs_pick_median_and_lower_quartile_never_best(
    clinic: tuple[Engine, ClinicIds],
) -> None:
    engine, ids = clinic
    with db.session_scope(engine) as s:
        pairs = representative_pairs(s, CONSULT, protocol_id=ids["protocol"], view="face_frontal")
    # eligible: P1..P5 (P6's last photo warns, P7 has no consult consent): 0, .5, 1, 1.5, 2
    assert [p.role for p in pairs] == ["median", "lower_quartile"]
    assert [p.improvement for p in pairs] == [1.0, 0.5]
    assert pairs[0].followup_sha256 == sha256_hex(b"P3-S3")
    assert pairs[0].baseline_sha256 == sha256_hex(b"P3-S1")
    assert pairs[1].followup_sha256 == sha256_hex(b"P2-S3")
    assert all(p.pool_size == 5 and p.followup_session == 3 for p in pairs)
    best = {sha256_hex(f"P{i}-S3".encode()) for i in (5, 6, 7)}
    assert not best & {p.followup_sha256 for p in pairs}
    for p in pairs:  # nothing identifying in what is returned
        assert not any("MF-" in str(v) for v in asdict(p).values())


def test_consent_withdrawal_excludes_a_patient_immediately(
    clinic: tuple[Engine, ClinicIds],
) -> None:
    engine, ids = clinic
    with db.session_scope(engine) as s:
        records.withdraw_consent(
            s, CLINICIAN, patient_id=ids["patients"][3], scope="consult_display"
        )
        assert (
            representative_pairs(s, CONSULT, protocol_id=ids["protocol"], view="face_frontal") == []
        )  # 4 left < 5
        pairs = representative_pairs(
            s, CONSULT, protocol_id=ids["protocol"], view="face_frontal", min_candidates=3
        )
    shown = {p.followup_sha256 for p in pairs} | {p.baseline_sha256 for p in pairs}
    assert sha256_hex(b"P3-S3") not in shown and sha256_hex(b"P3-S1") not in shown
    # pool 0, .5, 1.5, 2: median 1.0 ties .5/1.5 -> the smaller; lower quartile .375 -> 0
    assert [p.improvement for p in pairs] == [0.5, 0.0]
    with db.session_scope(engine) as s:
        with pytest.raises(PermissionDenied):
            representative_pairs(
                s, Actor(None, "a@test", "admin"), protocol_id=ids["protocol"], view="face_frontal"
            )


def _pool(*improvements: float) -> list[Candidate]:
    return [(i, i, "b", "f", 3, v) for i, v in enumerate(improvements, start=1)]


@pytest.mark.parametrize(
    "improvements",
    [
        (0.0, 0.5, 1.0, 1.5, 2.0),
        (1.0, 2.0, 3.0),
        (3.0, 3.0, 0.0),
        (5.0, 1.0, 1.0, 1.0),
        (0.2, 0.2, 0.2),
        (-1.0, 0.0, 4.0, 9.0, 9.0, 2.0),
    ],
)
def test_pick_typical_never_shows_the_best_or_a_better_lower_quartile(
    improvements: tuple[float, ...],
) -> None:
    picks = dict(pick_typical(_pool(*improvements)))
    best = max(improvements)
    assert picks["median"][5] < best or len(set(improvements)) == 1
    if "lower_quartile" in picks:
        assert picks["lower_quartile"][5] <= picks["median"][5]
        assert picks["lower_quartile"][0] != picks["median"][0]


def test_pick_typical_hand_computed() -> None:
    # median of (1, 2, 3) is 2; lower quartile 1.5 -> the 1
    picks = dict(pick_typical(_pool(1.0, 2.0, 3.0)))
    assert (picks["median"][5], picks["lower_quartile"][5]) == (2.0, 1.0)


def test_every_loader_runs_on_both_databases(db_url: str, tmp_path: Path) -> None:
    engine = db.make_engine(db_url)
    ids = write_clinic(engine, ImageStore(tmp_path / "img"))
    with db.session_scope(engine) as s:
        assert len(list_patients(s, CLINICIAN, search="mf-00")) == 7
        assert series_overview(s, CLINICIAN, ids["series"][1]).comparisons[
            "spans_confounder"
        ].tolist() == [False, True]
        assert trace_lot(s, DIRECTOR, lot_number="l-old", product="MESO X").patients == 1
        f = load_frames(s, DIRECTOR)
        assert f.measurements["improvement"].max() == pytest.approx(3.0)
        pairs = representative_pairs(s, CONSULT, protocol_id=ids["protocol"], view="face_frontal")
        assert [p.improvement for p in pairs] == [1.0, 0.5]
    engine.dispose()


def test_series_overview_reads_a_rating_made_against_baseline_from_its_anchor(
    clinic: tuple[Engine, ClinicIds],
) -> None:
    """GAIS is rated at follow-ups only; its change comes from the no-change anchor (4)."""
    engine, ids = clinic
    with db.session_scope(engine) as s:
        s.add(
            EndpointDefinition(
                code="gais",
                name="GAIS",
                kind="ordinal",
                scale_min=1,
                scale_max=5,
                higher_is_better=False,
                mcid=1.0,
                noise_sd=0.45,
                neutral=4.0,
            )
        )
        s.flush()
        sessions = series_overview(s, CLINICIAN, ids["series"][2]).sessions
        session3 = int(sessions[sessions["number"] == 3]["session_id"].iloc[0])
        records.record_measurement(s, CLINICIAN, session_id=session3, endpoint_code="gais", value=2)
    with db.session_scope(engine) as s:
        o = series_overview(s, CLINICIAN, ids["series"][2])
    g = o.measurements[o.measurements["endpoint_code"] == "gais"].iloc[0]
    assert (g["baseline"], g["change"], g["improvement"]) == (4.0, -2.0, 2.0)
    assert not [n for n in o.notes if n.startswith("gais")]


def test_load_frames_reads_only_the_tables_asked_for(clinic: tuple[Engine, ClinicIds]) -> None:
    """tables=: the unread tables are empty and named as unread; the read ones equal a whole
    read's; the lot list comes from the database without the treatment rows."""
    from analysis.services.frames import lots_used

    engine, ids = clinic
    with db.session_scope(engine) as s:
        whole = load_frames(s, DIRECTOR)
        part = load_frames(s, DIRECTOR, tables={"reactions"})
        lots = lots_used(s, DIRECTOR, purpose="cohort.read", protocol_ids=[ids["protocol"]])
        with pytest.raises(ValueError, match="unknown table"):
            load_frames(s, DIRECTOR, tables={"photos"})
        with pytest.raises(PermissionDenied):
            lots_used(s, CONSULT, purpose="cohort.read", protocol_ids=[ids["protocol"]])
    assert part.loaded == {"reactions"} and whole.loaded == {
        "treatments",
        "measurements",
        "reactions",
        "photo_sets",
        "confounders",
    }
    assert part.measurements.empty and part.photo_sets.empty and part.treatments.empty
    pd.testing.assert_frame_equal(part.reactions, whole.reactions)
    pd.testing.assert_frame_equal(part.sessions, whole.sessions)
    assert len(whole.reactions) and len(whole.treatments)
    used = whole.treatments.drop_duplicates("lot_id")[["lot_id", "product", "lot_number"]]
    assert sorted(lots["lot_id"]) == sorted(used["lot_id"])
