"""Per-check uncertainty and the three-state verdict (analysis.photos.uncertainty).

Metamorphic: the same measured change on a smaller face (fewer pixels between the pupils) gets a
wider range, and a change whose range straddles a tolerance is borderline (warn), not pass/fail.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from analysis.photos import uncertainty
from analysis.photos.compare import compare
from analysis.photos.types import Comparison, PhotoMeasurement

BASE = PhotoMeasurement(
    ok=True,
    face_found=True,
    view="face_frontal",
    width_px=4000,
    height_px=3000,
    yaw_deg=0.0,
    pitch_deg=0.0,
    roll_deg=0.0,
    ipd_px=400.0,
)


def _pair(ipd_px: float, zoom: float = 1.0, yaw: float = 0.0) -> Comparison:
    base = replace(BASE, ipd_px=ipd_px)
    return compare(base, replace(base, ipd_px=ipd_px * zoom, yaw_deg=yaw))


def test_a_smaller_face_gives_a_wider_range_for_distance_and_pose() -> None:
    big, small = _pair(400.0, 1.03, 4.0), _pair(40.0, 1.03, 4.0)
    for name in ("distance", "pose"):
        b, s = big.check(name), small.check(name)
        assert b.value == pytest.approx(s.value)
        assert s.uncertainty is not None and b.uncertainty is not None
        assert s.uncertainty > 5 * b.uncertainty > 0


def test_halving_the_face_size_doubles_the_sd() -> None:
    assert uncertainty.distance_sd_pct(50, 50) == pytest.approx(
        2 * uncertainty.distance_sd_pct(100, 100)
    )
    assert uncertainty.pose_sd_deg(50, 50) == pytest.approx(
        2 * uncertainty.pose_sd_deg(100, 100), rel=1e-3
    )


def test_a_precise_measurement_keeps_the_old_thresholds() -> None:
    assert uncertainty.grade(4.9, 0.0, 5.0, 10.0) == "pass"
    assert uncertainty.grade(5.1, 0.0, 5.0, 10.0) == "warn"
    assert uncertainty.grade(10.1, 0.0, 5.0, 10.0) == "fail"


def test_noise_turns_a_just_over_tolerance_zoom_into_pass_on_a_small_face_only() -> None:
    # 6 % zoom: over the 5 % warn line; within noise on a 25 px face, not on a 400 px face
    assert _pair(400.0, 1.06).check("distance").status == "warn"
    assert _pair(25.0, 1.06).check("distance").status == "pass"


def test_a_range_straddling_the_fail_line_is_borderline_with_its_range_in_the_message() -> None:
    check = _pair(25.0, 1.12).check("distance")  # 12 % -/+ ~3.5 % straddles 10 %
    assert check.status == "warn"
    assert "borderline" in check.message and "±" in check.message
    assert _pair(400.0, 1.12).check("distance").status == "fail"  # 12 % -/+ ~0.2 %


def test_json_keeps_its_fields_and_adds_uncertainty_and_range() -> None:
    out = json.loads(json.dumps(_pair(100.0, 1.03).to_json_dict()))
    dist = next(c for c in out["checks"] if c["name"] == "distance")
    assert {"name", "status", "value", "unit", "warn_at", "fail_at", "message", "details"} <= set(
        dist
    )
    assert dist["status"] in ("pass", "warn", "fail", "not_assessed")
    low, high = dist["range"]
    assert low < dist["value"] < high
    assert dist["uncertainty"] > 0


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="ipd_baseline_px"):
        uncertainty.distance_sd_pct(0.0, 10.0)
    with pytest.raises(ValueError, match="sd"):
        uncertainty.grade(1.0, float("nan"), 5.0, 10.0)
