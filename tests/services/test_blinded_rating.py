"""Blinded rating services on SQLite and PostgreSQL: the gate and its reasons, the stored
randomisation, roles, blinding (no identifier in the rater's view model or the images), one rating
per showing, no scores while open, the results and the CSV export; and the migration."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from PIL import Image
from sqlalchemy import Engine, inspect, select

from analysis.errors import FieldError
from analysis.outcomes import agreement
from analysis.services import rating, viewing
from analysis.store import db
from analysis.store.access import Actor, PermissionDenied
from analysis.store.images import ImageStore
from analysis.store.models import (
    AuditEvent,
    Base,
    EndpointDefinition,
    Patient,
    Photo,
    RatingAssignment,
    RatingPair,
    RatingStudy,
    Session,
)
from tests.support.rating_clinic import RatingClinic, seed_rating_clinic

RATING_TABLES = {"rating_studies", "rating_raters", "rating_pairs", "rating_assignments"}


class Clinic(RatingClinic):
    engine: Engine
    store: ImageStore


@pytest.fixture
def clinic(db_url: str, tmp_path: Path) -> Iterator[Clinic]:
    ids = seed_rating_clinic(db_url, tmp_path / "images")
    engine = db.make_engine(db_url)
    yield Clinic(**ids, engine=engine, store=ImageStore(tmp_path / "images"))
    engine.dispose()


def director(c: Clinic) -> Actor:
    return Actor(user_id=c["director_id"], email=c["director_email"], role="medical_director")


def rater(c: Clinic, i: int) -> Actor:
    return Actor(user_id=c["rater_ids"][i], email=c["rater_emails"][i], role="clinician")


def spec(c: Clinic, **kw: Any) -> rating.StudySpec:
    base = dict(
        title="Booster: baseline vs session 3",
        endpoint_code="gais_test",
        protocol_ids=(c["protocol_id"],),
        views=("face_frontal",),
        rater_ids=tuple(c["rater_ids"]),
        followup_session=3,
        repeat_share=0.34,
        seed=99,
    )
    return rating.StudySpec(**{**base, **kw})


def create(c: Clinic, **kw: Any) -> int:
    with db.session_scope(c["engine"]) as s:
        return rating.create_study(s, director(c), spec(c, **kw))


def rate_all(
    c: Clinic,
    study_id: int,
    answer: Callable[[int, rating.BlindedShowing, RatingAssignment], dict[str, Any]],
) -> None:
    """Every rater rates every showing with ``answer(rater_index, showing, assignment)``."""
    for i in range(len(c["rater_ids"])):
        while True:
            with db.session_scope(c["engine"]) as s:
                showing = rating.next_showing(s, rater(c, i), study_id=study_id)
                if showing is None:
                    break
                a = s.get_one(RatingAssignment, showing.assignment_id)
                rating.submit_rating(
                    s, rater(c, i), assignment_id=showing.assignment_id, **answer(i, showing, a)
                )


def test_only_gate_passing_pairs_are_used_and_the_rest_are_listed_with_reasons(
    clinic: Clinic,
) -> None:
    with db.session_scope(clinic["engine"]) as s:
        sel = rating.preview_pairs(s, director(clinic), spec(clinic))
        verdicts = {
            s.get_one(Photo, p).verdict
            for c in sel.pairs
            for p in (c.baseline_photo_id, c.followup_photo_id)
        }
    assert len(sel.pairs) == 6 and verdicts <= {"baseline", "pass"}
    reasons = {e["series_id"]: e["reason"] for e in sel.excluded}
    assert reasons == {
        clinic["no_consent_series"]: "no current clinical-record photo consent",
        clinic["failing_series"]: "follow-up photo did not pass the comparability gate (fail)",
    }
    with db.session_scope(clinic["engine"]) as s:  # no session 5: every series listed, none lost
        sel = rating.preview_pairs(s, director(clinic), spec(clinic, followup_session=5))
    assert not sel.pairs and len(sel.excluded) == 8
    assert all(
        "no session at the time point" in e["reason"] or "consent" in e["reason"]
        for e in sel.excluded
    )
    with db.session_scope(clinic["engine"]) as s:  # by days: session 3 is 56 days after baseline
        by_days = rating.preview_pairs(
            s,
            director(clinic),
            spec(clinic, followup_session=None, followup_days=60, window_days=7),
        )
        too_far = rating.preview_pairs(
            s,
            director(clinic),
            spec(clinic, followup_session=None, followup_days=90, window_days=7),
        )
    assert {c.followup_session for c in by_days.pairs} == {3} and len(by_days.pairs) == 6
    assert not too_far.pairs


def test_the_stored_assignment_reproduces_from_the_seed_and_is_audited(clinic: Clinic) -> None:
    study_id = create(clinic)
    with db.session_scope(clinic["engine"]) as s:
        study = s.get(RatingStudy, study_id)
        pairs = list(
            s.scalars(
                select(RatingPair)
                .where(RatingPair.study_id == study_id)
                .order_by(RatingPair.position)
            )
        )
        stored = sorted(
            (a.rater_id, a.pair_id, a.order_index, a.left_is_baseline, a.repeat)
            for a in s.scalars(
                select(RatingAssignment).where(RatingAssignment.study_id == study_id)
            )
        )
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "rating.study.create"))
        assert study is not None
        assert study.seed == 99 and study.status == "open" and len(study.exclusions) == 2
    plan = agreement.plan_assignments(
        99, n_pairs=len(pairs), rater_ids=clinic["rater_ids"], repeat_share=0.34
    )
    assert stored == sorted(
        (p.rater_id, pairs[p.pair_index].id, p.order_index, p.left_is_baseline, p.repeat)
        for p in plan
    )
    assert len(stored) == 3 * (6 + 2)  # every pair once plus 2 blinded repeats per rater
    assert event is not None
    assert event.details["seed"] == 99 and event.details["showings"] == 24


def test_a_sample_of_pairs_is_drawn_from_the_seed_and_the_rest_listed(clinic: Clinic) -> None:
    study_id = create(clinic, max_pairs=4)
    with db.session_scope(clinic["engine"]) as s:
        study = s.get(RatingStudy, study_id)
        assert study is not None
        kept = {p.series_id for p in study.pairs}
        assert study is not None
        sampled_out = [e for e in study.exclusions if "random sample of 4" in e["reason"]]
    assert study is not None
    assert len(kept) == 4 and len(sampled_out) == 2 and len(study.exclusions) == 4
    assert not kept & {e["series_id"] for e in sampled_out}
    with pytest.raises(FieldError) as err:
        create(clinic, max_pairs=1)
    assert err.value.field == "max_pairs"


def test_roles_and_invitations(clinic: Clinic) -> None:
    consult = Actor(user_id=None, email="c@test", role="consult_staff")
    clinician = rater(clinic, 0)
    with pytest.raises(PermissionDenied):
        with db.session_scope(clinic["engine"]) as s:
            rating.create_study(s, clinician, spec(clinic))
    with pytest.raises(PermissionDenied):
        with db.session_scope(clinic["engine"]) as s:
            rating.list_studies(s, consult)
    with pytest.raises(FieldError, match="raters must be"):
        create(clinic, rater_ids=(clinic["director_id"] + 1000,))
    study_id = create(clinic, rater_ids=tuple(clinic["rater_ids"][:2]))
    outsider = rater(clinic, 2)
    with db.session_scope(clinic["engine"]) as s:
        assert rating.list_studies(s, outsider) == []
        with pytest.raises(FieldError, match="not a rater"):
            rating.next_showing(s, outsider, study_id=study_id)
        mine = rating.next_showing(s, rater(clinic, 0), study_id=study_id)
        with pytest.raises(FieldError, match="not one of yours"):
            assert mine is not None
            rating.submit_rating(
                s, rater(clinic, 1), assignment_id=mine.assignment_id, better_side="none"
            )
        with pytest.raises(FieldError, match="not one of yours"):
            assert mine is not None
            rating.showing_images(
                s,
                rater(clinic, 1),
                assignment_id=mine.assignment_id,
                align=False,
                store=clinic["store"],
            )


def _identifiers(c: Clinic) -> list[str]:
    with db.session_scope(c["engine"]) as s:
        codes = [p.code for p in s.scalars(select(Patient))]
        dates = [v.performed_on.isoformat() for v in s.scalars(select(Session))]
        hashes = [p.sha256 for p in s.scalars(select(Photo))]
    return codes + dates + hashes + ["session 3", "Session 3", "sha256", ".jpg", "RT-"]


def test_the_raters_view_model_and_images_carry_no_identifiers(clinic: Clinic) -> None:
    study_id = create(clinic)
    secrets = _identifiers(clinic)
    with db.session_scope(clinic["engine"]) as s:
        listed = rating.list_studies(s, rater(clinic, 0))
        showing = rating.next_showing(s, rater(clinic, 0), study_id=study_id)
        assert showing is not None
        text = repr(showing) + repr(asdict(showing)) + repr(listed)
        for secret in secrets:
            assert secret not in text, secret
        assert set(asdict(showing)) == {
            "assignment_id",
            "study_label",
            "number",
            "total",
            "view",
            "endpoint_name",
            "mode",
            "choices",
            "question",
        }
        assert showing is not None
        a = s.get_one(RatingAssignment, showing.assignment_id)
        pair = a.pair
        base_bytes = clinic["store"].get(s.get_one(Photo, pair.baseline_photo_id).sha256)
        follow_bytes = clinic["store"].get(s.get_one(Photo, pair.followup_photo_id).sha256)
        assert showing is not None
        images = rating.showing_images(
            s,
            rater(clinic, 0),
            assignment_id=showing.assignment_id,
            align=False,
            store=clinic["store"],
        )
        left_is_baseline = a.left_is_baseline
    for png in (images.left_png, images.right_png):
        with Image.open(io.BytesIO(png)) as im:
            assert im.format == "PNG" and not im.info.get("exif") and not im.getexif()
            assert not {k for k in im.info if k not in ("dpi", "gamma", "srgb")}
        for secret in secrets:
            assert secret.encode() not in png
    left = np.asarray(Image.open(io.BytesIO(images.left_png)).convert("RGB"))
    base = viewing.decode_for_display(base_bytes, max_side=900)
    follow = viewing.decode_for_display(follow_bytes, max_side=900)
    expected_left = base if left_is_baseline else follow
    other = follow if left_is_baseline else base
    assert np.array_equal(left, expected_left)  # the recorded side is the side shown
    assert not np.array_equal(left, other)
    with db.session_scope(clinic["engine"]) as s:  # the read went through the audited door
        compare = s.scalar(
            select(AuditEvent)
            .where(AuditEvent.action == "photo.compare")
            .order_by(AuditEvent.id.desc())
        )
        assert compare is not None
        assert compare.actor_email == clinic["rater_emails"][0] and compare.outcome == "success"


def test_a_showing_is_rated_once_and_bad_input_is_named(clinic: Clinic) -> None:
    study_id = create(clinic)
    r0 = rater(clinic, 0)
    with db.session_scope(clinic["engine"]) as s:
        showing = rating.next_showing(s, r0, study_id=study_id)
        assert showing is not None
        assert showing.mode == "against_other"
        assert showing is not None
        assert [v for v, _ in showing.choices] == [1.0, 2.0]  # improving half, no-change excluded
        with pytest.raises(FieldError) as err:
            assert showing is not None
            rating.submit_rating(s, r0, assignment_id=showing.assignment_id, better_side="left")
        assert err.value.field == "grade"
        with pytest.raises(FieldError) as err:
            assert showing is not None
            rating.submit_rating(s, r0, assignment_id=showing.assignment_id, better_side="up")
        assert err.value.field == "better_side"
    with db.session_scope(clinic["engine"]) as s:
        assert showing is not None
        rating.submit_rating(
            s, r0, assignment_id=showing.assignment_id, better_side="left", grade=1.0
        )
    with db.session_scope(clinic["engine"]) as s:
        assert showing is not None
        a = s.get_one(RatingAssignment, showing.assignment_id)
        assert a.change == (-2.0 if a.left_is_baseline else 2.0)
        with pytest.raises(FieldError, match="already rated"):
            assert showing is not None
            rating.submit_rating(s, r0, assignment_id=showing.assignment_id, better_side="none")
        nxt = rating.next_showing(s, r0, study_id=study_id)
        assert nxt is not None and showing is not None
        assert nxt.number == 2 and nxt.assignment_id != showing.assignment_id
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "rating.rate"))
        assert event is not None
        assert event.actor_email == clinic["rater_emails"][0] and event.patient_id is not None
        assert event is not None and showing is not None
        assert event.object_id == str(showing.assignment_id)


def test_no_scores_while_open_then_results_with_known_agreement(clinic: Clinic) -> None:
    study_id = create(clinic)
    truth: dict[int, float] = {}  # pair id -> true blinded change, from the recorded GAIS

    def answer(i: int, showing: rating.BlindedShowing, a: RatingAssignment) -> dict[str, Any]:
        true_change = {1: 2, 2: 1, 3: 0, 4: 1, 5: 2, 0: -1}[a.pair.position % 6]
        change = true_change if i < 2 else 0  # raters 0 and 1 agree; rater 2 sees no change
        truth[a.pair_id] = true_change
        if change == 0:
            return {"better_side": "none"}
        follow_side = "right" if a.left_is_baseline else "left"
        base_side = "left" if a.left_is_baseline else "right"
        return {"better_side": follow_side if change > 0 else base_side, "grade": 3.0 - abs(change)}

    rate_all(clinic, study_id, answer)
    from analysis.services.series import series_overview
    from analysis.store.blinding import BlindedRater

    with db.session_scope(clinic["engine"]) as s:  # rater 1 tries a study series' record
        pair_series = s.scalars(
            select(RatingPair.series_id).where(RatingPair.study_id == study_id)
        ).first()
        assert pair_series is not None
        with pytest.raises(BlindedRater):
            series_overview(s, rater(clinic, 1), pair_series)
        series_overview(s, rater(clinic, 1), clinic["failing_series"])  # not in the study
    d = director(clinic)
    with db.session_scope(clinic["engine"]) as s:
        with pytest.raises(FieldError, match="once the study is closed"):
            rating.study_results(s, d, study_id=study_id)
        row = rating.list_studies(s, d)[0]
        assert set(row.progress.values()) == {(8, 8)}  # counts only
        assert not hasattr(row, "ratings")
        with pytest.raises(FieldError):
            rating.export_ratings_csv(s, d, study_id=study_id)
    with db.session_scope(clinic["engine"]) as s:
        rating.close_study(s, d, study_id=study_id)
    with db.session_scope(clinic["engine"]) as s:
        with pytest.raises(FieldError, match="closed"):
            rating.next_showing(s, rater(clinic, 0), study_id=study_id)
        r = rating.study_results(s, d, study_id=study_id)
    kappa = {(x.rater_a, x.rater_b): x.kappa for x in r.pairwise_kappa.itertuples()}
    names = list(r.raters.values())
    assert kappa[(names[0], names[1])] == pytest.approx(1.0)
    assert kappa[(names[0], names[2])] < 0.5
    assert list(r.per_rater["record_views_while_open"]) == [0, 0, 0]  # refused, not counted
    assert r.intra_pooled.value == pytest.approx(1.0)  # every rater repeated themselves exactly
    assert set(r.intra["same_rating"]) == {1.0}
    assert r.icc.value is not None and 0 < r.icc.value < 1
    assert r.icc.low is not None and r.icc.high is not None and r.icc.low < r.icc.high
    assert r.alpha.value is not None and r.alpha.value < 1
    # the pooled blinded change is the raters' median: the two agreeing raters' value
    got = dict(zip(r.pairs["pair_id"], r.pairs["blinded_change"], strict=True))
    assert got == {p: float(v) for p, v in truth.items()}
    # unblinded = clinic-recorded GAIS at session 3 (1 -> +2, 2 -> +1, 3 -> 0, 4 -> -1)
    assert sorted(r.pairs["unblinded_change"]) == [-1.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    row = r.responders.iloc[0]
    assert row["pairs"] == 6 and row["blinded_share"] == pytest.approx(4 / 6)
    assert row["blinded_low"] < 4 / 6 < row["blinded_high"]
    with db.session_scope(clinic["engine"]) as s:
        csv = rating.export_ratings_csv(s, d, study_id=study_id)
        table = rating.blinded_by_protocol(s, d)
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "rating.export")) is not None
    frame = pd.read_csv(io.BytesIO(csv))
    assert len(frame) == 24 and set(frame["seed"]) == {99}
    assert {
        "rater",
        "left_is_baseline",
        "repeat",
        "better_side",
        "grade",
        "change",
        "rated_at",
    } <= set(frame.columns)
    assert len(table) == 1 and table.iloc[0]["blinded"].startswith("67% (")


def test_a_stand_alone_scale_is_scored_per_photo(clinic: Clinic) -> None:
    study_id = create(clinic, endpoint_code="severity_test", repeat_share=0.0)
    r0 = rater(clinic, 0)
    with db.session_scope(clinic["engine"]) as s:
        showing = rating.next_showing(s, r0, study_id=study_id)
        assert showing is not None
        assert showing.mode == "each_photo" and [v for v, _ in showing.choices] == [0, 1, 2, 3, 4]
        with pytest.raises(FieldError) as err:
            assert showing is not None
            rating.submit_rating(
                s, r0, assignment_id=showing.assignment_id, left_score=9, right_score=1
            )
        assert err.value.field == "left_score"
    with db.session_scope(clinic["engine"]) as s:
        assert showing is not None
        rating.submit_rating(
            s, r0, assignment_id=showing.assignment_id, left_score=3, right_score=1
        )
    with db.session_scope(clinic["engine"]) as s:
        assert showing is not None
        a = s.get_one(RatingAssignment, showing.assignment_id)
        assert a.change == (2.0 if a.left_is_baseline else -2.0)  # lower severity is better


def test_creating_a_study_needs_valid_choices_and_writes_nothing_otherwise(clinic: Clinic) -> None:
    for bad, field in (
        (dict(title=" "), "title"),
        (dict(views=()), "views"),
        (dict(followup_session=None), "followup"),
        (dict(followup_days=30), "followup"),
        (dict(repeat_share=0.9), "repeat_share"),
        (dict(endpoint_code="nope"), "endpoint_code"),
        (dict(followup_session=5), "pairs"),
    ):
        with pytest.raises(FieldError) as err:
            create(clinic, **bad)
        assert err.value.field == field
    with db.session_scope(clinic["engine"]) as s:
        assert s.scalar(select(RatingStudy.id)) is None


def test_migration_0006_matches_the_models_and_downgrades(db_url: str) -> None:
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diffs if any(t in repr(d) for t in RATING_TABLES)]
    assert ours == []
    db.downgrade(engine, "0006")
    assert not RATING_TABLES & set(inspect(engine).get_table_names())
    db.upgrade(engine)
    assert RATING_TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_the_demo_study_has_the_documented_ground_truth(clinic: Clinic) -> None:
    from analysis.demo import rating_study as demo

    with db.session_scope(clinic["engine"]) as s:
        note = demo.seed_demo_rating_study(
            s,
            director(clinic),
            protocol_name="Booster test",
            endpoint_code="gais_test",
            min_pairs=4,
        )
    assert note.startswith("demo blinded rating study: 6 pairs at session 3")
    with db.session_scope(clinic["engine"]) as s:
        study = s.scalar(select(RatingStudy))
        assert study is not None
        assert study.status == "closed" and study.seed == demo.STUDY_SEED
        unblinded = rating.unblinded_changes(
            s,
            study,
            s.scalars(
                select(EndpointDefinition).where(EndpointDefinition.code == "gais_test")
            ).one(),
        )
        rows = list(s.scalars(select(RatingAssignment).order_by(RatingAssignment.id)))
        assert study is not None
        r = rating.study_results(s, director(clinic), study_id=study.id)
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "rating.rate")).all()
    assert all(a.rated_at is not None for a in rows) and len(events) == len(rows)
    truth = {p: float(np.sign(u) * max(abs(u) - 1, 0)) for p, u in unblinded.items()}
    rater_a = clinic["rater_ids"][0]
    assert {a.pair_id: a.change for a in rows if a.rater_id == rater_a} == truth  # A is exact
    a_intra = r.intra.set_index("rater").iloc[0]
    assert a_intra["same_rating"] == 1.0
    # the gap: unblinded minus blinded is one step on every improved pair, 0 elsewhere
    gaps = (r.pairs["unblinded_change"] - truth_series(r, truth)).tolist()
    assert r.gap.value == pytest.approx(np.mean(gaps))


def truth_series(r: rating.StudyResults, truth: dict[int, float]) -> pd.Series:
    return r.pairs["pair_id"].map(truth)


def test_inner_box_lies_wholly_inside_the_covered_area() -> None:
    yy, xx = np.mgrid[0:200, 0:300]
    mask = ((yy - 100) / 90.0) ** 2 + ((xx - 150) / 140.0) ** 2 <= 1  # an ellipse
    top, bottom, left, right = rating.inner_box(mask)
    assert mask[top:bottom, left:right].all()
    assert (bottom - top) * (right - left) > 0.4 * mask.sum()  # not a sliver
    with pytest.raises(ValueError):
        rating.inner_box(np.zeros((5, 5), dtype=bool))


def test_aligned_photos_are_cropped_so_the_warp_margin_cannot_tell_which_is_later() -> None:
    """A closer follow-up, aligned onto the baseline, leaves black margins in the baseline's
    frame: a rater would know it is the follow-up. Both photos are cropped to the shared area."""
    from tests.support.clinician_clinic import astronaut_jpeg

    base = astronaut_jpeg()
    with Image.open(io.BytesIO(base)) as im:
        closer = im.crop((40, 40, 472, 472)).resize((512, 512))
        out = io.BytesIO()
        closer.save(out, format="JPEG", quality=92)
    follow = out.getvalue()
    b_rgb, f_rgb, aligned, note = rating._aligned_and_cropped(
        base, follow, view="face_frontal", align=True, cache=None, max_side=512
    )
    assert aligned and "cropped" in note
    assert b_rgb.shape == f_rgb.shape and b_rgb.shape[0] < 512 and b_rgb.shape[1] < 512
    # the follow-up shows exactly the baseline's [40, 472) square: the shared area, no more
    assert 380 <= b_rgb.shape[0] <= 440 and 380 <= b_rgb.shape[1] <= 440
    # and the two crops show the same scene (aligned), so nothing but the change tells them apart
    diff = np.abs(b_rgb.astype(float) - f_rgb.astype(float)).mean()
    assert diff < 20, diff


def test_a_rater_cannot_open_the_record_of_a_study_series_until_it_closes(clinic: Clinic) -> None:
    """While the study is open its raters are refused (and audited) the clinic record of its
    series, in Series review, Capture photos and Record visit; others are not; closing the
    study gives the record back."""
    from analysis.services.capture import capture_context
    from analysis.services.series import series_overview
    from analysis.store.blinding import BlindedRater

    study_id = create(clinic)
    with db.session_scope(clinic["engine"]) as s:
        pair_series = s.scalars(
            select(RatingPair.series_id).where(RatingPair.study_id == study_id)
        ).first()
        assert pair_series is not None
    for open_record in (series_overview, lambda s, a, i: capture_context(s, a, series_id=i)):
        with pytest.raises(BlindedRater, match=f"study {study_id}"):
            with db.session_scope(clinic["engine"]) as s:
                open_record(s, rater(clinic, 0), pair_series)
    with db.session_scope(clinic["engine"]) as s:
        denied = s.scalars(
            select(AuditEvent).where(
                AuditEvent.outcome == "denied", AuditEvent.object_type == "series"
            )
        ).all()
        assert len(denied) == 2 and all(e.details["studies"] == [study_id] for e in denied)
        assert {e.actor_email for e in denied} == {clinic["rater_emails"][0]}
        not_rating = Actor(user_id=None, email="other@test", role="clinician")
        assert series_overview(s, not_rating, pair_series).series["series_id"] == pair_series
    with db.session_scope(clinic["engine"]) as s:
        rating.close_study(s, director(clinic), study_id=study_id)
    with db.session_scope(clinic["engine"]) as s:
        assert series_overview(s, rater(clinic, 0), pair_series) is not None
