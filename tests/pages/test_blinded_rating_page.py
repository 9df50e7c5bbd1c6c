"""The Blinded rating page through the real router (AppTest): the director creates a study, a
rater rates a masked pair (no patient code, date or session number on the screen), the director
closes the study and reads the results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from analysis.store import db
from analysis.store.access import Actor
from analysis.store.models import Patient, RatingAssignment, RatingStudy, Session
from tests.conftest import PROJECT_ROOT
from tests.support.rating_clinic import RatingClinic, seed_rating_clinic
from ui.frame import ACTOR_KEY

APP = str(PROJECT_ROOT / "app.py")
PAGE = "views/blinded_rating.py"


@pytest.fixture
def clinic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RatingClinic]:
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("CANDOR_DATA_DIR", str(data))
    monkeypatch.delenv("CANDOR_DATABASE_URL", raising=False)
    db.dispose_engines()
    ids = seed_rating_clinic(f"sqlite:///{data / 'candor.sqlite3'}", data / "images")
    yield ids
    db.dispose_engines()


def _open(actor: Actor) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[ACTOR_KEY] = actor
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    return "\n".join(
        str(e.value)
        for kind in (
            "title",
            "subheader",
            "markdown",
            "caption",
            "error",
            "warning",
            "success",
            "info",
        )
        for e in getattr(at, kind)
    )


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_director_creates_a_rater_rates_and_the_director_reads_the_results(
    clinic: RatingClinic,
) -> None:
    director = Actor(
        user_id=clinic["director_id"], email=clinic["director_email"], role="medical_director"
    )
    at = _open(director)
    assert [t.label for t in at.tabs] == ["Studies", "New study", "Rate"]
    at.text_input(key="ns_title").input("Booster: baseline vs session 3")
    at.multiselect(key="ns_protocols").select(clinic["protocol_id"])
    at.selectbox(key="ns_endpoint").select("gais_test")
    at.multiselect(key="ns_views").select("face_frontal")
    at.number_input(key="ns_session").set_value(3)
    for rid in clinic["rater_ids"]:
        at.multiselect(key="ns_raters").select(rid)
    _ok(at.run())
    _ok(at.button[[b.label for b in at.button].index("Preview pairs")].click().run())
    assert "6 pairs pass the comparability gate; 2 left out" in _texts(at)
    _ok(at.button[[b.label for b in at.button].index("Create study")].click().run())
    assert "Study 1 created" in _texts(at)
    with db.session_scope() as s:
        assert s.scalar(select(func.count(RatingAssignment.id))) == 3 * (6 + 1)

    rater = Actor(user_id=clinic["clinician_id"], email=clinic["clinician_email"], role="clinician")
    at = _open(rater)
    assert [t.label for t in at.tabs] == ["Rate"]
    assert "Pair 1 of 7" in _texts(at)
    images = [image for image in at.get("image") if isinstance(image, Element)]
    assert [c for image in images for c in image.captions] == ["Left photo", "Right photo"]
    with db.session_scope() as s:
        secrets = [p.code for p in s.scalars(select(Patient))] + [
            v.performed_on.isoformat() for v in s.scalars(select(Session))
        ]
    screen = _texts(at) + " ".join(str(o) for sb in at.selectbox for o in sb.options)
    for secret in secrets + ["session 3", "Booster: baseline"]:
        assert secret not in screen, secret
    side = next(r for r in at.radio if r.key and r.key.startswith("side_"))
    grade = next(r for r in at.radio if r.key and r.key.startswith("grade_"))
    side.set_value("right")
    grade.set_value(1.0)
    _ok(at.button[[b.label for b in at.button].index("Save rating")].click().run())
    assert "Rating saved (1 of 7)" in _texts(at)
    assert "Pair 2 of 7" in _texts(at)
    with db.session_scope() as s:
        done = list(
            s.scalars(select(RatingAssignment).where(RatingAssignment.rated_at.is_not(None)))
        )
    assert len(done) == 1 and done[0].rater_id == clinic["clinician_id"]
    assert done[0].change == (2.0 if done[0].left_is_baseline else -2.0)

    at = _open(director)
    assert "Scores stay hidden until the study is closed" in _texts(at)
    _ok(at.button[[b.label for b in at.button].index("Close study")].click().run())
    assert "Study closed" in _texts(at)
    with db.session_scope() as s:
        assert s.scalar(select(RatingStudy.status)) == "closed"
    texts = _texts(at)
    assert "Results: Booster: baseline vs session 3" in texts
    assert "Agreement between raters" in texts and "Responders by protocol" in texts
    assert any(d.value.shape[0] >= 1 for d in at.dataframe)

    at = AppTest.from_file(APP, default_timeout=180)  # Protocols shows the blinded column
    at.session_state[ACTOR_KEY] = director
    _ok(at.run())
    _ok(at.switch_page("views/protocols.py").run())
    assert "Responders: unblinded and blinded" in _texts(at)
    table = next(d.value for d in at.dataframe if "Blinded" in d.value.columns)
    assert list(table["Study"]) == ["Booster: baseline vs session 3"]
    assert table["Blinded"].iloc[0].endswith("n=1)")  # only the one rated pair counts
    assert "Unblinded (same pairs)" in table.columns


def test_a_missing_choice_is_named_and_nothing_is_saved(clinic: RatingClinic) -> None:
    from analysis.services import rating
    from analysis.store.access import Actor as A

    with db.session_scope() as s:
        rating.create_study(
            s,
            A(clinic["director_id"], clinic["director_email"], "medical_director"),
            rating.StudySpec(
                title="t",
                endpoint_code="gais_test",
                protocol_ids=(clinic["protocol_id"],),
                views=("face_frontal",),
                rater_ids=(clinic["clinician_id"],),
                followup_session=3,
                seed=5,
            ),
        )
    at = _open(
        Actor(user_id=clinic["clinician_id"], email=clinic["clinician_email"], role="clinician")
    )
    _ok(at.button[[b.label for b in at.button].index("Save rating")].click().run())
    assert "Which photo looks better" in " ".join(str(e.value) for e in at.error)
    with db.session_scope() as s:
        assert s.scalar(select(func.count(RatingAssignment.rated_at))) == 0
