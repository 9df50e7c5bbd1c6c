"""AppTest specifications of the Insights pages: Protocols (medical director) and Timelines
(consult staff).

The clinic is seeded once per module into a temporary data directory by
:func:`tests.support.insights_clinic.seed_insights_clinic`: a deterministic synthetic clinic written through the
record services (so every row passes the validation a page would apply) whose lots, consents and
photos the assertions can name. One
more test renders both pages on ``python -m analysis demo --patients 12 --no-photos`` (the demo
with photos takes minutes; the small clinic covers photos).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from analysis.store.access import Actor
from tests.conftest import PROJECT_ROOT
from tests.support.insights_clinic import PATIENT_CODE_PREFIX, seed_insights_clinic


@pytest.fixture(scope="module")
def seeded_clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary data directory holding :func:`seed_insights_clinic`; env points at it meanwhile."""
    data = tmp_path_factory.mktemp("insights") / "data"
    with _data_dir(data):
        seed_insights_clinic()
        yield data


@contextmanager
def _data_dir(data: Path) -> Iterator[None]:
    data.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in ("CANDOR_DATA_DIR", "CANDOR_DATABASE_URL")}
    os.environ["CANDOR_DATA_DIR"] = str(data)
    os.environ.pop("CANDOR_DATABASE_URL", None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- helpers -------------------------------------------------------------------------------------

DIRECTOR = ("director@demo.candor", "medical_director")
CONSULT = ("consult@demo.candor", "consult_staff")
CLINICIAN = ("clinician@demo.candor", "clinician")


def _submit(at: AppTest) -> None:
    """Press the page's (first) form submit button and rerun."""
    button = at.get("form_submit_button")[0]
    assert isinstance(button, Element)
    button.click().run()


def _actor(email: str, role: str) -> Actor:
    from analysis.store import db
    from analysis.store.access import Actor
    from analysis.store.models import User

    with db.session_scope() as s:
        uid = s.scalar(select(User.id).where(User.email == email))
    return Actor(user_id=uid, email=email, role=role)


def _open(page: str, who: tuple[str, str]) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "views" / page), default_timeout=120)
    at.session_state["candor_actor"] = _actor(*who)
    at.run()
    assert not at.exception, at.exception
    return at


def rendered_text(at: AppTest) -> str:
    """Everything the page sent to the browser (text, tables, chart specs), as one string."""
    parts = []
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
    return "\n".join(parts)


def _chart_specs(at: AppTest) -> list[str]:
    return [c.proto.spec for c in at.get("plotly_chart")]


@pytest.fixture(scope="module")
def director_protocols(seeded_clinic: Path) -> AppTest:
    """The Protocols page as the medical director first sees it (read-only assertions only)."""
    return _open("protocols.py", DIRECTOR)


@pytest.fixture(scope="module")
def consult_timelines(seeded_clinic: Path) -> AppTest:
    """The Timelines page as consult staff first see it (read-only assertions only)."""
    return _open("timelines.py", CONSULT)


# --- Protocols -----------------------------------------------------------------------------------


def _section(at: AppTest, name: str) -> AppTest:
    """Open one of the comparison's section tabs (as a click on it would) and rerun."""
    at.session_state["protocols.section"] = name
    at.run()
    assert not at.exception, at.exception
    return at


def test_protocols_renders_for_the_medical_director(director_protocols: AppTest) -> None:
    at = director_protocols
    assert [t.value for t in at.title] == ["Protocols"]
    heads = [s.value for s in at.subheader]
    for expected in ("Patients and completion", "Outcomes", "Lot traceability"):
        assert expected in heads
    specs = _chart_specs(at)
    assert len(specs) == 2  # the open trajectory tab's chart and the responders; nothing hidden
    assert all("n=" in spec for spec in specs), "every chart labels its n"


def test_each_protocols_section_draws_when_opened(seeded_clinic: Path) -> None:
    at = _open("protocols.py", DIRECTOR)
    for section, heading, charts in (
        ("Safety", "Reactions and adverse events", 1),
        ("Photo compliance", "Photo compliance by operator", 1),
        ("Model", "Model-based comparison (mixed model)", 0),
        ("Export", "Export", 0),
        ("Outcomes", "Outcomes", 2),
    ):
        _section(at, section)
        heads = [s.value for s in at.subheader]
        assert heading in heads, (section, heads)
        others = {"Reactions and adverse events", "Photo compliance by operator", "Export"}
        assert not (others - {heading}) & set(heads), "a closed section draws nothing"
        specs = _chart_specs(at)
        assert len(specs) == charts, section
        assert all("n=" in spec for spec in specs)
    _section(at, "Export")
    labels = [b.proto.label for b in at.download_button]
    assert "Summary (CSV)" in labels and "Charts (HTML)" in labels
    at.session_state["protocols.x"] = "By weeks since start"
    _section(at, "Outcomes")
    assert len(_chart_specs(at)) == 2 and "Weeks since start" in _chart_specs(at)[0]


def test_protocols_first_render_reads_only_what_it_shows(seeded_clinic: Path) -> None:
    """The Outcomes section opens first: its render reads no reaction, photo or treatment row;
    opening Safety reads the reactions then."""
    from sqlalchemy import event

    from analysis.store import db

    seen: list[str] = []

    def log(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement.lower())

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", log)
    try:
        at = _open("protocols.py", DIRECTOR)
        first = list(seen)
        seen.clear()
        _section(at, "Safety")
        safety = list(seen)
    finally:
        event.remove(engine, "before_cursor_execute", log)
    # row reads, told by a column only they select (the record-revision check reads max(id)s)
    assert any("endpoint_measurements.value_num" in q for q in first)
    for column in ("reactions.severity", "photos.verdict", "confounders.kind"):
        assert not any(column in q for q in first), column
    assert not any("treatments.volume_ml" in q for q in first), "no treatment rows"
    assert any("reactions.severity" in q for q in safety)
    assert not any("endpoint_measurements.value_num" in q for q in safety), "kept from the first"


def test_protocols_filters_narrow_the_comparison(seeded_clinic: Path) -> None:
    at = _open("protocols.py", DIRECTOR)
    first = at.dataframe[0].value
    assert len(first) >= 2
    keep = at.multiselect[0].value[:1]
    at.multiselect[0].set_value(keep).run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 1
    at.toggle[0].set_value(True).run()
    assert not at.exception
    assert any("Restricted to gate-passing series" in c.value for c in at.caption)


def test_protocols_model_section_shows_estimate_or_the_failure(seeded_clinic: Path) -> None:
    at = _section(_open("protocols.py", DIRECTOR), "Model")
    metrics = {m.label: m.value for m in at.metric}
    failed = [e.value for e in at.error if "did not converge" in e.value]
    assert ("95% CI" in metrics) != bool(failed)
    assert any("not a trial" in i.value for i in at.info), "the caveat is shown"


def test_consult_staff_opening_protocols_is_told_not_allowed(seeded_clinic: Path) -> None:
    at = _open("protocols.py", CONSULT)
    assert any("cannot open this page" in e.value for e in at.error)
    assert not at.get("plotly_chart") and not at.dataframe and not at.download_button


def test_lot_trace_highlights_recalled_and_expired_lots(seeded_clinic: Path) -> None:
    at = _open("protocols.py", DIRECTOR)
    at.text_input[0].input("hb-recall-9")
    _submit(at)
    assert not at.exception
    assert any("RECALLED" in e.value for e in at.error)
    assert "CND-0004" in rendered_text(at), "the medical director sees who received the lot"
    at.text_input[0].input("HB-OLD-1")
    _submit(at)
    assert any("after its expiry date" in w.value for w in at.warning)


def test_a_visit_recorded_elsewhere_shows_on_the_next_run_without_reload(
    seeded_clinic: Path,
) -> None:
    """The session's cached frames are dropped when the record changes (a visit recorded by a
    clinician in another session); a rerun with no change reads nothing again."""
    from analysis.services import records
    from analysis.store import db
    from analysis.store.models import AuditEvent, Series

    at = _open("protocols.py", DIRECTOR)

    def done() -> int:
        return int(at.dataframe[0].value["Sessions done"].sum())

    def loads() -> int:
        with db.session_scope() as s:
            return len(
                list(s.scalars(select(AuditEvent.id).where(AuditEvent.action == "frames.load")))
            )

    before, n_loads = done(), loads()
    at.run()
    assert loads() == n_loads and done() == before, "an unchanged record is not read again"
    with db.session_scope() as s:
        first = int(at.multiselect[0].value[0])
        series = s.scalars(select(Series).where(Series.protocol_id == first)).first()
        assert series is not None
        records.add_session(s, _actor(*CLINICIAN), series_id=series.id, performed_on=date.today())
    at.run()
    assert not at.exception
    assert done() == before + 1, "the new visit is counted on the next run"
    assert loads() > n_loads


# --- Timelines -----------------------------------------------------------------------------------


def test_timelines_renders_for_consult_staff_without_identifiers(
    consult_timelines: AppTest,
) -> None:
    at = consult_timelines
    assert [t.value for t in at.title] == ["Timelines"]
    assert "What to expect" in [s.value for s in at.subheader]
    assert at.get("plotly_chart"), "the timeline chart is drawn"
    labels = [b.proto.label for b in at.download_button]
    assert "Handout (PDF)" in labels and "Timeline figures (CSV)" in labels
    assert all("n=" in m.label for m in at.metric if m.label != "Patients"), "figures carry n"
    text = rendered_text(at)
    assert PATIENT_CODE_PREFIX not in text
    assert "@" not in "".join(m.value for m in at.markdown), "no operator or patient contact"


def test_rendered_text_would_catch_a_patient_code(seeded_clinic: Path) -> None:
    """Positive control for the identifier check above: the same walker finds codes where the
    medical director is meant to see them (a lot trace)."""
    at = _open("protocols.py", DIRECTOR)
    assert PATIENT_CODE_PREFIX not in rendered_text(at), "the comparison itself is de-identified"
    at.text_input[0].input("HB-2401")
    _submit(at)
    assert PATIENT_CODE_PREFIX in rendered_text(at)


def test_timelines_follow_the_chosen_protocol(seeded_clinic: Path) -> None:
    at = _open("timelines.py", CONSULT)
    first = " ".join(m.value for m in at.markdown)
    options = at.selectbox[0].options
    assert len(options) >= 2
    at.selectbox[0].select_index(1).run()
    assert not at.exception
    summary = " ".join(m.value for m in at.markdown)
    assert options[1] in summary and options[0] not in summary
    assert options[0] in first, "the plain-language summary names the protocol shown"


def test_timelines_open_for_clinicians_too(seeded_clinic: Path) -> None:
    at = _open("timelines.py", CLINICIAN)
    assert not at.error


def test_photo_pairs_are_chosen_again_when_the_record_changes(seeded_clinic: Path) -> None:
    """The typical pairs are cached with the frames: an unchanged record chooses nothing again on
    a rerun, and a visit recorded elsewhere has them chosen afresh on the next run."""
    from analysis.services import records
    from analysis.store import db
    from analysis.store.models import AuditEvent, Series

    def choices() -> int:
        with db.session_scope() as s:
            return len(
                list(s.scalars(select(AuditEvent.id).where(AuditEvent.action == "pairs.show")))
            )

    at = _open("timelines.py", CONSULT)
    n = choices()
    assert n > 0, "the first render chose and showed pairs"
    at.run()
    assert choices() == n, "a rerun of an unchanged record chooses nothing again"
    with db.session_scope() as s:
        series = s.scalars(select(Series)).first()
        assert series is not None
        records.add_session(s, _actor(*CLINICIAN), series_id=series.id, performed_on=date.today())
    at.run()
    assert not at.exception
    assert choices() > n, "a recorded visit has the pairs chosen again"


def test_photo_pairs_respect_a_consent_withdrawal_on_the_next_run(seeded_clinic: Path) -> None:
    """Pairs are shown only while the patient's consult-display consent is current: withdrawing
    it hides the photo on the very next rerun, even though the pair list is cached."""
    from analysis.services import records
    from analysis.store import db
    from analysis.store.models import Consent

    at = _open("timelines.py", CONSULT)
    shown = sum(len(img.proto.imgs) for img in at.image)
    assert shown == 4, "two pairs, before and after"
    clinician = _actor(*CLINICIAN)
    with db.session_scope() as s:
        withdrawn = {
            c.patient_id
            for c in s.scalars(
                select(Consent).where(
                    Consent.scope == "consult_display", Consent.withdrawn_at.is_(None)
                )
            )
        }
        for pid in withdrawn:
            records.withdraw_consent(s, clinician, patient_id=pid, scope="consult_display")
    try:
        at.run()
        assert not at.exception
        assert sum(len(img.proto.imgs) for img in at.image) == 0
        assert any("photo not available" in w.value for w in at.warning)
    finally:
        with db.session_scope() as s:
            for pid in withdrawn:
                records.give_consent(s, clinician, patient_id=pid, scope="consult_display")


# --- exports -------------------------------------------------------------------------------------


def test_exports_are_audited_before_the_bytes_are_returned(seeded_clinic: Path) -> None:
    from analysis.services.insights import audited_bytes
    from analysis.store import db
    from analysis.store.access import PermissionDenied
    from analysis.store.models import AuditEvent

    made: list[bytes] = []

    def make() -> bytes:
        made.append(b"a,b\n1,2\n")
        return made[-1]

    with pytest.raises(PermissionDenied):
        audited_bytes(
            _actor(*CONSULT),
            make=make,
            action="cohort.export",
            object_type="protocol_comparison",
            object_id="1+2",
        )
    data = audited_bytes(
        _actor(*DIRECTOR),
        make=make,
        action="cohort.export",
        object_type="protocol_comparison",
        object_id="1+2",
        details={
            "table": "summary",
            "filters": {"date_from": date(2025, 1, 1), "baseline_severity": (1.0, 3.0)},
        },
    )
    assert data == b"a,b\n1,2\n"
    with db.session_scope() as s:
        events = list(
            s.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "cohort.export")
                .order_by(AuditEvent.id.desc())
                .limit(2)
            )
        )
    assert [e.outcome for e in events] == ["success", "denied"]
    assert events[0].details["size_bytes"] == len(data)
    assert events[0].details["table"] == "summary"
    assert events[0].details["filters"] == {
        "date_from": "2025-01-01",
        "baseline_severity": [1.0, 3.0],
    }


# --- the demo clinic -----------------------------------------------------------------------------


def test_both_pages_render_on_the_demo_clinic(tmp_path: Path) -> None:
    """The seeded demo (12 patients, no photos: the photo render takes minutes) renders for each
    role; the consult page carries no patient code."""
    data = tmp_path / "data"
    with _data_dir(data):
        run = subprocess.run(
            [sys.executable, "-m", "analysis", "demo", "--patients", "12", "--no-photos"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ},
        )
        assert run.returncode == 0, run.stderr
        from analysis.store import db

        db.dispose_engines()
        at = _open("protocols.py", DIRECTOR)
        assert at.get("plotly_chart")
        assert _section(at, "Export").download_button
        for who in (CONSULT, CLINICIAN):
            at = _open("timelines.py", who)
            assert [t.value for t in at.title] == ["Timelines"]
            assert PATIENT_CODE_PREFIX not in rendered_text(at)


# --- figure builders (ui.insight_charts) -------------------------------------------------------


def _trajectory_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "protocol_id": [1, 1, 1, 2, 2],
            "session_number": [1, 2, 3, 1, 2],
            "value": [0.0, -0.5, float("nan"), 0.0, -1.0],
            "ci_low": [0.0, -0.9, float("nan"), 0.0, -1.4],
            "ci_high": [0.0, -0.1, float("nan"), 0.0, -0.6],
            "n": [8, 7, 2, 6, 6],
            "insufficient": [False, False, True, False, False],
            "label": [
                "0.0 (n=8)",
                "-0.5 (n=7)",
                "insufficient data (n=2)",
                "0.0 (n=6)",
                "-1.0 (n=6)",
            ],
        }
    )


def test_trajectory_figure_draws_no_number_for_too_few_patients() -> None:
    from ui import insight_charts as charts

    df = _trajectory_rows()
    fig = charts.trajectory_figure(
        df,
        x="session_number",
        protocol_names={1: "A", 2: "B"},
        endpoint_name="Grade",
        unit="grade",
        higher_is_better=False,
        x_title="Session",
    )
    lines = {t.name: t for t in fig.data if t.mode == "lines+markers+text"}
    assert list(lines["A"].x) == [1, 2], "session 3 (n=2) is not drawn"
    assert list(lines["A"].text) == ["n=8", "n=7"] and list(lines["B"].text) == ["n=6", "n=6"]
    assert "lower is better" in fig.layout.title.text
    assert charts.withheld_points(df, x="session_number", group="protocol_id", names={1: "A"}) == [
        "A: session number 3 (n=2)"
    ]


def test_share_figure_writes_each_label_beside_its_bar() -> None:
    from ui import insight_charts as charts

    df = pd.DataFrame(
        {
            "operator": ["X", "Y"],
            "share_value": [0.8, float("nan")],
            "share_ci_low": [0.6, float("nan")],
            "share_ci_high": [0.9, float("nan")],
            "share_n": [30, 3],
            "share_insufficient": [False, True],
            "share_label": ["80.0% (95% CI 60.0% to 90.0%; n=30)", "insufficient data (n=3)"],
        }
    )
    fig = charts.share_figure(
        df, category="operator", prefix="share_", title="t", category_title=""
    )
    assert [a.text for a in fig.layout.annotations] == list(df["share_label"])
    assert list(fig.data[0].x) == [80.0, 0.0], "no bar for the insufficient row"


def test_chart_export_is_self_contained_with_plotly_embedded_once() -> None:
    import plotly.graph_objects as go

    from ui import insight_charts as charts

    html = charts.charts_html(
        [("One <b>", go.Figure()), ("Two", go.Figure())], title="T & U", notes=["n=5"]
    ).decode()
    assert html.count("plotly.js v") == 1, "the library is inlined once (works offline)"
    assert not re.search(r"<script[^>]*\ssrc=", html), "no script is fetched from anywhere"
    assert html.count("Plotly.newPlot") == 2
    assert "<h2>One &lt;b&gt;</h2>" in html and "<h1>T &amp; U</h1>" in html


def test_units_missing_in_the_database_are_not_shown_as_nan() -> None:
    from ui import insight_charts as charts

    assert charts.with_unit("Improvement", float("nan")) == "Improvement"
    assert charts.with_unit("Improvement", "nan") == "Improvement"
    assert charts.with_unit("Improvement", "grade") == "Improvement (grade)"
