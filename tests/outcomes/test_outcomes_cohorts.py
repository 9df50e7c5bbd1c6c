"""Protocol comparison and consult timelines on a hand-made clinic whose answers were worked out by
hand (see ``hand_clinic``)."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from analysis.outcomes.cohorts import compare_protocols
from analysis.outcomes.frames import ClinicFrames, build_frames, frame, to_csv_bytes
from analysis.outcomes.stats import poisson_ci, wilson_ci
from analysis.outcomes.timelines import consult_timeline, plain_language_summary

START = date(2026, 1, 5)
# Protocol 1 "Meso face": endpoint "wrinkle" (lower is better, MCID 1), 6 courses.
# improvement (= baseline - value) per session 2 and 3; course 6 dropped out after session 2.
IMPROVEMENT = {1: (1, 2), 2: (0, 1), 3: (1, 1), 4: (0, 0), 5: (0, 0.5), 6: (3,)}
BASELINE = {1: 4, 2: 3, 3: 4, 4: 2, 5: 3, 6: 4}
# Expected erythema (series, session number, duration days) and one adverse bruise.
ERYTHEMA = [(1, 1, 1), (1, 2, 2), (2, 1, 1), (3, 1, 3), (5, 2, 2), (6, 1, 1)]


def hand_clinic(*, improvement: dict[int, tuple[float, ...]] = IMPROVEMENT) -> ClinicFrames:
    protocols = frame(
        [
            (
                1,
                "Meso face",
                "mesotherapy",
                "face",
                3,
                28,
                ["face_frontal"],
                ["wrinkle"],
                "wrinkle",
                {},
            ),
            (2, "PRP scalp", "prp", "scalp", 4, 28, ["scalp_vertex"], ["density"], "density", {}),
        ],
        "protocols",
    )
    endpoints = frame(
        [
            ("wrinkle", "Wrinkle grade", "numeric", "grade", False, 1.0, 0.25, 0, 5, None),
            ("density", "Hair density", "numeric", "hairs/cm2", True, 10.0, 4.0, None, None, None),
        ],
        "endpoints",
    )
    patients: list[tuple[object, ...]] = []
    series: list[tuple[object, ...]] = []
    sessions: list[tuple[object, ...]] = []
    raw: list[tuple[object, ...]] = []
    treatments: list[tuple[object, ...]] = []
    reactions: list[tuple[object, ...]] = []
    photos: list[tuple[object, ...]] = []
    vid = 0
    for sid, imps in improvement.items():
        patients.append((sid, 1980 + sid, "female", 2))
        series.append(
            (sid, sid, 1, "smoother forehead", "dropped_out" if sid == 6 else "completed", START)
        )
        operator = 10 if sid <= 3 else 11
        for k, imp in enumerate((0.0, *imps), start=1):
            vid += 1
            day = 28 * (k - 1) + (2 if sid == 2 and k == 2 else 0)
            sessions.append((vid, sid, k, START + timedelta(days=day), operator))
            raw.append((sid, vid, "wrinkle", BASELINE[sid] - imp))
            lot = ("A1", "Meso X") if sid <= 3 else ("B2", "Meso X")
            treatments.append(
                (
                    vid,
                    vid,
                    sid,
                    1 if sid <= 3 else 2,
                    lot[1],
                    lot[0],
                    date(2027, 1, 1),
                    False,
                    False,
                    2.0,
                    None,
                )
            )
            verdict = "baseline" if k == 1 else "pass"
            if (sid, k) == (4, 2):
                verdict = "warn"
            if (sid, k) == (5, 3):
                verdict = "fail"
            photos.append((vid, vid, sid, k, "face_frontal", verdict))
            for s_, k_, dur in ERYTHEMA:
                if (s_, k_) == (sid, k):
                    reactions.append(
                        (
                            len(reactions) + 1,
                            vid,
                            sid,
                            "expected",
                            "erythema",
                            "mild",
                            0,
                            dur,
                            True,
                            False,
                        )
                    )
            if (sid, k) == (4, 2):
                reactions.append(
                    (
                        len(reactions) + 1,
                        vid,
                        sid,
                        "adverse",
                        "bruising",
                        "moderate",
                        1,
                        5,
                        True,
                        False,
                    )
                )
    for j, sid in enumerate((7, 8, 9)):  # protocol 2: only three patients
        patients.append((sid, 1970, "male", 3))
        series.append((sid, sid, 2, "", "active", START))
        for k in (1, 2):
            vid += 1
            sessions.append((vid, sid, k, START + timedelta(days=28 * (k - 1)), 10))
            raw.append((sid, vid, "density", 100.0 + 12 * (k - 1) + j))
    return build_frames(
        patients=frame(patients, "patients"),
        protocols=protocols,
        endpoints=endpoints,
        series=frame(series, "series"),
        sessions=pd.DataFrame(
            sessions, columns=["session_id", "series_id", "number", "performed_on", "operator_id"]
        ),
        raw_measurements=frame(raw, "raw_measurements"),
        operators=frame([(10, "Dr Ada"), (11, "Dr Ben")], "operators"),
        treatments=frame(treatments, "treatments"),
        reactions=frame(reactions, "reactions"),
        photos=frame(photos, "photos"),
    )


def _row(df: pd.DataFrame, **where: object) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for k, v in where.items():
        mask &= df[k] == v
    assert mask.sum() == 1, (where, df)
    return df[mask].iloc[0]


def test_measurements_carry_baseline_change_and_improvement_signs() -> None:
    m = hand_clinic().measurements
    r = _row(m, series_id=1, session_number=3)
    assert (r["baseline"], r["value"], r["change"], r["improvement"]) == (4, 2, -2, 2)
    assert _row(m, series_id=2, session_number=2)["days_since_start"] == 30


def test_completion_and_sessions_done_vs_planned() -> None:
    c = compare_protocols(hand_clinic(), protocol_ids=[1])
    s = _row(c.summary, protocol_id=1)
    assert (s["series"], s["patients"], s["sessions_done"], s["sessions_planned"]) == (6, 6, 17, 18)
    assert s["completion_value"] == pytest.approx(5 / 6)
    assert (s["completion_ci_low"], s["completion_ci_high"]) == pytest.approx(wilson_ci(5, 6))
    assert s["dropout_value"] == pytest.approx(1 / 6)


def test_trajectory_by_session_hand_computed() -> None:
    c = compare_protocols(hand_clinic(), protocol_ids=[1, 2])
    s3 = _row(c.by_session, protocol_id=1, session_number=3)
    assert s3["n"] == 5 and s3["value"] == pytest.approx(-0.9)
    assert (s3["ci_low"], s3["ci_high"]) == pytest.approx((-1.82085, 0.02085), abs=1e-4)
    assert _row(c.by_session, protocol_id=1, session_number=2)["value"] == pytest.approx(-5 / 6)
    # the three-patient protocol shows the marker, not a number
    p2 = _row(c.by_session, protocol_id=2, session_number=2)
    assert p2["insufficient"] and pd.isna(p2["value"]) and p2["label"] == "insufficient data (n=3)"


def test_trajectory_by_week_bins_to_four_weeks() -> None:
    c = compare_protocols(hand_clinic(), protocol_ids=[1])
    weeks = sorted(c.by_week.loc[c.by_week["protocol_id"] == 1, "week"])
    assert weeks == [0, 4, 8]  # day 30 (4.3 weeks) falls in the week-4 bin
    assert _row(c.by_week, protocol_id=1, week=4)["n"] == 6


def test_responder_share_with_stated_definition_and_wilson_ci() -> None:
    c = compare_protocols(hand_clinic(), protocol_ids=[1, 2])
    r = _row(c.responders, protocol_id=1, endpoint_code="wrinkle")
    # last improvements 2, 1, 1, 0, 0.5, 3 against MCID 1 -> 4 of 6
    assert (r["responders"], r["share_n"]) == (4, 6)
    assert r["share_value"] == pytest.approx(4 / 6)
    assert (r["share_ci_low"], r["share_ci_high"]) == pytest.approx(wilson_ci(4, 6))
    assert "MCID" in c.definitions["responder"] and "last session" in c.definitions["responder"]
    p2 = _row(c.responders, protocol_id=2)
    assert p2["share_insufficient"] and pd.isna(p2["responders"])


def test_reaction_rates_per_100_sessions() -> None:
    c = compare_protocols(hand_clinic(), protocol_ids=[1])
    exp = _row(c.reactions, protocol_id=1, kind="expected", severity="any")
    assert (exp["events"], exp["sessions"]) == (6, 17)
    assert exp["rate_value"] == pytest.approx(600 / 17)
    ae = _row(c.reactions, protocol_id=1, kind="adverse", severity="moderate")
    low, high = poisson_ci(1)
    assert ae["rate_value"] == pytest.approx(100 / 17)
    assert (ae["rate_ci_low"], ae["rate_ci_high"]) == pytest.approx(
        (low * 100 / 17, high * 100 / 17)
    )
    assert _row(c.reactions, protocol_id=1, kind="adverse", severity="severe")["events"] == 0


def test_photo_compliance_per_operator() -> None:
    c = compare_protocols(hand_clinic(), protocol_ids=[1], min_n=3)
    ada = _row(c.photo_compliance, operator="Dr Ada")
    ben = _row(c.photo_compliance, operator="Dr Ben")
    assert (ada["photo_sets"], ada["compliant"]) == (9, 9)
    assert (ben["photo_sets"], ben["compliant"]) == (8, 6)  # one warn, one fail
    assert ben["share_value"] == pytest.approx(6 / 8)
    # default minimum of 5 patients: each operator has 3
    c5 = compare_protocols(hand_clinic(), protocol_ids=[1])
    assert c5.photo_compliance["share_insufficient"].all()


def test_gate_passing_only_restricts_outcomes_to_clean_series() -> None:
    c = compare_protocols(hand_clinic(), protocol_ids=[1], gate_passing_only=True, min_n=3)
    r = _row(c.responders, protocol_id=1)
    assert (r["responders"], r["share_n"]) == (4, 4)  # series 4 (warn) and 5 (fail) left out
    assert _row(c.summary, protocol_id=1)["series"] == 6  # completion still counts every series


def test_filters_lot_and_baseline_severity() -> None:
    lot = compare_protocols(hand_clinic(), protocol_ids=[1], lot="b2", min_n=1)
    assert _row(lot.summary, protocol_id=1)["series"] == 3
    sev = compare_protocols(hand_clinic(), protocol_ids=[1], baseline_severity=(3, 4))
    assert _row(sev.summary, protocol_id=1)["series"] == 5  # baseline 2 excluded
    op = compare_protocols(hand_clinic(), protocol_ids=[1], operator_id=10, min_n=1)
    assert _row(op.summary, protocol_id=1)["series"] == 3
    with pytest.raises(ValueError, match="unknown protocol"):
        compare_protocols(hand_clinic(), protocol_ids=[99])
    with pytest.raises(ValueError, match="at least one protocol"):
        compare_protocols(hand_clinic(), protocol_ids=[])
    nobody = compare_protocols(hand_clinic(), protocol_ids=[1], lot="no such lot")
    assert nobody.by_session.empty and "endpoint_code" in nobody.by_session.columns
    with pytest.raises(ValueError, match="low end is above the high end"):
        compare_protocols(hand_clinic(), protocol_ids=[1], baseline_severity=(4, 1))


def test_consult_timeline_quartiles_and_shares() -> None:
    t = consult_timeline(hand_clinic(), protocol_id=1)
    s3 = _row(t.by_session, session_number=3)
    # improvements at session 3: 2, 1, 1, 0, 0.5
    assert (s3["n"], s3["median"], s3["q1"], s3["q3"]) == (5, 1.0, 0.5, 1.0)
    assert s3["share_mcid_value"] == pytest.approx(3 / 5)
    assert t.responders.value == pytest.approx(4 / 6)
    assert t.non_responders.value == pytest.approx(2 / 6)
    assert (t.sessions_done.median, t.sessions_done.q1, t.sessions_done.q3) == (3, 3, 3)
    ery = _row(t.reactions, term="erythema")
    assert (ery["patients_with"], ery["patients"]) == (5, 6)
    assert (ery["sessions_with"], ery["sessions"]) == (6, 17)
    assert ery["median_duration_days"] == pytest.approx(1.5)


def test_consult_timeline_filters_and_minimum_n() -> None:
    assert consult_timeline(hand_clinic(), protocol_id=1, goal="FOREHEAD").n_series == 6
    assert consult_timeline(hand_clinic(), protocol_id=1, goal="lips").n_series == 0
    small = consult_timeline(hand_clinic(), protocol_id=2)
    assert small.insufficient and small.responders.insufficient
    lines = plain_language_summary(small)
    assert lines[0].startswith("Not enough patients") and "n=3" in lines[0]


def test_plain_language_summary_follows_the_numbers() -> None:
    lines = plain_language_summary(consult_timeline(hand_clinic(), protocol_id=1))
    text = " ".join(lines)
    # 3 of 5 at session 3 -> "more than half", 6 in 10 (rounded down)
    assert "More than half of patients (6 in 10)" in text and "by session 3" in text
    # 2 of 6 non-responders = 0.33 -> rounded up to 4 in 10
    assert "About 4 in 10 saw little or no change" in text
    assert "individual results vary" in text and "6 patients" in text
    # erythema median 1.5 days, rounded up; 6 of 17 sessions = 0.35, rounded up to 4 in 10
    assert "Erythema followed up to about 4 in 10 sessions, usually lasting about 2 days" in text
    # everyone improving by 2 changes the wording: nothing is hard-coded
    better = hand_clinic(improvement={i: (2.0, 2.5) for i in range(1, 7)})
    text2 = " ".join(plain_language_summary(consult_timeline(better, protocol_id=1)))
    assert "Nearly all patients (10 in 10)" in text2
    assert "Few patients saw little or no change" in text2


def test_csv_export_round_trips_and_defuses_formulas() -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["=HYPERLINK(1)", "ok"]})
    out = to_csv_bytes(df).decode()
    assert out.splitlines() == ["a,b", "1,'=HYPERLINK(1)", "2,ok"]


def test_ratings_made_against_baseline_use_their_no_change_anchor() -> None:
    """GAIS (1 = exceptional ... 3 = improved, 4 = no change, 5 = worse; lower is better) is rated at
    follow-ups only. With its neutral anchor 4 it has a change (4 - rating, signed better-positive)
    and responders (rated "improved" or better), where a session-1 baseline would leave it empty."""
    from analysis.outcomes.endpoints import responders

    endpoints = frame(
        [
            ("gais", "GAIS", "ordinal", None, False, 1.0, 0.45, 1, 5, 4.0),
            ("density", "Hair density", "numeric", "hairs/cm2", True, 10.0, 4.0, None, None, None),
        ],
        "endpoints",
    )
    series = frame([(s, s, 1, "", "completed", date(2026, 1, 1)) for s in (1, 2, 3)], "series")
    sessions = pd.DataFrame(
        [
            (10 * s + k, s, k, date(2026, 1, 1) + timedelta(days=28 * (k - 1)))
            for s in (1, 2, 3)
            for k in (1, 2, 3)
        ],
        columns=["session_id", "series_id", "number", "performed_on"],
    )
    gais = {1: (3, 2), 2: (4, 4), 3: (4, 5)}  # sessions 2 and 3
    raw = pd.DataFrame(
        [
            (s, 10 * s + k, "gais", float(v))
            for s, vals in gais.items()
            for k, v in zip((2, 3), vals, strict=True)
        ]
        + [(1, 11, "density", 120.0), (1, 13, "density", 131.0)],
        columns=["series_id", "session_id", "endpoint_code", "value"],
    )
    f = build_frames(
        patients=frame([(s, 1980, "female", 3) for s in (1, 2, 3)], "patients"),
        protocols=frame([(1, "PRP", "prp", "scalp", 3, 28, [], ["gais"], "gais", {})], "protocols"),
        endpoints=endpoints,
        series=series,
        sessions=sessions,
        raw_measurements=raw,
    )
    m = f.measurements
    g = m[m["endpoint_code"] == "gais"].set_index(["series_id", "session_number"])
    assert (g["baseline"] == 4.0).all()
    assert g.loc[(1, 3), "improvement"] == 2.0 and g.loc[(3, 3), "improvement"] == -1.0
    r = responders(m, endpoint_code="gais", mcid=1.0).set_index("series_id")["responder"]
    assert r.to_dict() == {1: True, 2: False, 3: False}
    d = m[
        m["endpoint_code"] == "density"
    ]  # measured at every session: session 1 stays the baseline
    assert list(d["baseline"]) == [120.0, 120.0] and list(d["improvement"]) == [0.0, 11.0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trajectory_points_equal_mean_estimate_per_group(seed: int) -> None:
    """The one-pass trajectory gives, per point, what mean_estimate gives on that point's values
    (mean, Student-t CI, n; insufficient below min_n values or min_n patients)."""
    import numpy as np

    from analysis.outcomes.cohorts import _trajectory
    from analysis.outcomes.stats import Estimate, mean_estimate

    rng = np.random.default_rng(seed)
    rows = 400
    m = pd.DataFrame(
        {
            "series_id": rng.integers(1, 60, rows),
            "session_number": rng.integers(1, 9, rows),
            "change": rng.normal(1.0, 2.0, rows),
        }
    )
    rare = pd.DataFrame(
        {
            "series_id": [1, 2, 3, 4],
            "session_number": 9,  # 2 patients only
            "change": rng.normal(1.0, 2.0, 4),
        }
    )
    m = pd.concat([m, rare], ignore_index=True).drop_duplicates(["series_id", "session_number"])
    m["weeks_since_start"] = m["session_number"] * 3.0
    patient_of = pd.Series({sid: sid // 2 for sid in range(1, 60)})  # two series per patient
    got = _trajectory(m, patient_of, endpoint_code="x", by="session_number", week_bin=4, min_n=5)
    for _, row in got.iterrows():
        g = m[m["session_number"] == row["session_number"]]
        est = mean_estimate(g["change"].to_numpy(), min_n=5)
        if g["series_id"].map(patient_of).nunique() < 5:
            est = Estimate(None, None, None, n=est.n, insufficient=True)
        assert row["n"] == est.n and bool(row["insufficient"]) == est.insufficient
        assert row["label"] == est.label()
        if not est.insufficient:
            assert row["value"] == pytest.approx(est.value)
            assert (row["ci_low"], row["ci_high"]) == (
                pytest.approx(est.low),
                pytest.approx(est.high),
            )
    assert got["insufficient"].any() and not got["insufficient"].all()


@pytest.mark.parametrize("gate", [False, True])
def test_the_comparison_names_the_series_its_outcomes_use(gate: bool) -> None:
    """``outcome_series`` is the filters' selection (and the gate's when asked), so the analyst
    tables export exactly the series the outcome figures rest on."""
    from analysis.outcomes.filters import select_series

    frames = hand_clinic()
    c = compare_protocols(frames, protocol_ids=[1, 2], gate_passing_only=gate)
    assert c.outcome_series == select_series(frames, protocol_ids=[1, 2], gate_passing_only=gate)
    assert c.outcome_series


def test_each_part_and_endpoint_alone_gives_the_same_figures_as_the_whole() -> None:
    """A page computes one section (and one endpoint) at a time: each slice equals the same
    figures of the full comparison, and the parts not asked for stay empty."""
    from analysis.outcomes.cohorts import PARTS, outcome_endpoints

    frames = hand_clinic()
    whole = compare_protocols(frames, protocol_ids=[1, 2])
    summary = compare_protocols(frames, protocol_ids=[1, 2], parts=())
    pd.testing.assert_frame_equal(summary.summary, whole.summary)
    assert summary.by_session.empty and summary.reactions.empty and summary.responders.empty
    assert summary.photo_compliance.empty and summary.parts == frozenset()
    codes = outcome_endpoints(frames, summary)
    assert codes == list(dict.fromkeys(whole.by_session["endpoint_code"]))
    for code in codes:
        one = compare_protocols(
            frames, protocol_ids=[1, 2], parts=["outcomes"], endpoint_codes=[code]
        )
        for name in ("by_session", "by_week", "responders"):
            full, got = getattr(whole, name), getattr(one, name)
            want = full[full["endpoint_code"] == code].reset_index(drop=True)
            if name == "responders":  # None where withheld: object or float by the mix
                want, got = want.astype({name: float}), got.astype({name: float})
            pd.testing.assert_frame_equal(got.reset_index(drop=True), want)
    for part, name in (("reactions", "reactions"), ("photo_compliance", "photo_compliance")):
        one = compare_protocols(frames, protocol_ids=[1, 2], parts=[part])
        pd.testing.assert_frame_equal(getattr(one, name), getattr(whole, name))
    assert set(PARTS) == {"outcomes", "reactions", "photo_compliance"}
    with pytest.raises(ValueError, match="unknown part"):
        compare_protocols(frames, protocol_ids=[1, 2], parts=["everything"])


def test_frames_without_a_table_refuse_the_figures_that_need_it() -> None:
    """An unread table is not a clinic with none: reaction rates from frames whose reactions
    were not read are refused, not shown as zero."""
    from dataclasses import replace

    from analysis.outcomes.cohorts import tables_needed

    frames = hand_clinic()
    spine = replace(frames, reactions=frame([], "reactions"), loaded=frozenset({"measurements"}))
    with pytest.raises(ValueError, match="reactions"):
        compare_protocols(spine, protocol_ids=[1, 2], parts=["reactions"])
    with pytest.raises(ValueError, match="photo_sets"):
        compare_protocols(spine, protocol_ids=[1, 2], parts=[], gate_passing_only=True)
    assert compare_protocols(spine, protocol_ids=[1, 2], parts=["outcomes"]).by_session.size
    assert tables_needed(["outcomes"], lot="X") == {"measurements", "treatments"}


def test_a_table_read_later_joins_only_the_sessions_read_first() -> None:
    """with_tables: reactions read after a visit was recorded keep only the sessions the first
    read holds, so one view never mixes two states of the record."""
    from dataclasses import replace

    from analysis.outcomes.frames import with_tables

    frames = hand_clinic()
    first = replace(
        frames,
        sessions=frames.sessions[
            frames.sessions["session_id"] != frames.sessions["session_id"].max()
        ],
        reactions=frame([], "reactions"),
        loaded=frozenset(),
    )
    joined = with_tables(first, frames, ["reactions"])
    assert joined.loaded == {"reactions"}
    assert set(joined.reactions["session_id"]) <= set(first.sessions["session_id"])
    dropped = set(frames.reactions["session_id"]) - set(first.sessions["session_id"])
    kept = frames.reactions[~frames.reactions["session_id"].isin(dropped)]
    assert len(joined.reactions) == len(kept)
    with pytest.raises(ValueError, match="photo_sets"):
        with_tables(first, replace(frames, loaded=frozenset()), ["photo_sets"])


@pytest.mark.parametrize("seed", [0, 1])
def test_derived_measurements_equal_a_row_by_row_derivation(seed: int) -> None:
    """derive_measurements (integer-keyed, vectorised) against the conventions written out one
    row at a time: per-visit mean, session-1 baseline (or the anchor), change, improvement."""
    import numpy as np

    from analysis.outcomes.frames import derive_measurements

    rng = np.random.default_rng(seed)
    sessions = pd.DataFrame(
        [(sid * 10 + k, sid, k, 7 * (k - 1)) for sid in range(1, 30) for k in range(1, 5)],
        columns=["session_id", "series_id", "number", "days_since_start"],
    )
    endpoints = pd.DataFrame(
        {
            "endpoint_code": ["zeta", "alpha", "gais"],
            "higher_is_better": [True, False, True],
            "neutral": [None, None, 3.0],
        }
    )
    rows = sessions.sample(n=200, replace=True, random_state=seed)
    raw = pd.DataFrame(
        {
            "series_id": rows["series_id"].to_numpy(),
            "session_id": rows["session_id"].to_numpy(),
            "endpoint_code": rng.choice(["zeta", "alpha", "gais"], len(rows)),
            "value": np.round(rng.normal(5, 2, len(rows)), 2),
        }
    )
    raw.loc[raw.index[:5], "value"] = None
    got = derive_measurements(raw, sessions=sessions, endpoints=endpoints)
    ok = raw.dropna(subset=["value"])
    visit = ok.groupby(["series_id", "session_id", "endpoint_code"])["value"].mean()
    number = sessions.set_index("session_id")["number"]
    expected = []
    for (series, sess, code), value in visit.items():
        base_key = [k for k in visit.index if k[0] == series and k[2] == code and number[k[1]] == 1]
        baseline = 3.0 if code == "gais" else (visit[base_key[0]] if base_key else np.nan)
        change = value - baseline
        sign = -1.0 if code == "alpha" else 1.0
        expected.append(
            (series, code, int(number[sess]), value, baseline, change, change * sign + 0.0)
        )
    want = pd.DataFrame(
        expected,
        columns=[
            "series_id",
            "endpoint_code",
            "session_number",
            "value",
            "baseline",
            "change",
            "improvement",
        ],
    ).sort_values(["series_id", "endpoint_code", "session_number"], ignore_index=True)
    cols = list(want.columns)
    pd.testing.assert_frame_equal(got[cols], want, check_dtype=False)
    assert list(got["endpoint_code"]) == list(want["endpoint_code"]), "row order by code string"
