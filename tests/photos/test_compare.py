"""compare(): statuses, verdicts and the direction each message names, on hand-built measurements.

Sign conventions under test (types.py): yaw > 0 = nose toward the image right = the patient's left
for a patient facing the camera; pitch > 0 = chin up; roll > 0 = clockwise in the image = head
tilted toward the patient's left shoulder; light_side > 0 = image-right half brighter.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from analysis.photos.compare import Tolerances, compare
from analysis.photos.types import PhotoMeasurement

YAW, PITCH, ROLL = 2.0, -1.0, 0.5  # the baseline's pose
BASE = PhotoMeasurement(
    path="baseline.jpg",
    ok=True,
    view="face_frontal",
    face_found=True,
    width_px=3000,
    height_px=4000,
    yaw_deg=YAW,
    pitch_deg=PITCH,
    roll_deg=ROLL,
    ipd_px=300.0,
    face_box=(1000.0, 1200.0, 2000.0, 2600.0),
    face_in_frame=True,
    exposure_l=62.0,
    clipped_share=0.001,
    lab_median=(62.0, 12.0, 16.0),
    light_side=0.02,
    backlight_dl=8.0,
    eye_open=0.30,
    mouth_open=0.02,
    smile=0.0,
    sharpness=40.0,
)


def follow(**changes: Any) -> PhotoMeasurement:
    return replace(BASE, path="followup.jpg", **changes)


def test_identical_photos_pass_every_check() -> None:
    result = compare(BASE, follow())
    assert result.verdict == "pass"
    assert {c.name for c in result.checks} >= {
        "pose",
        "distance",
        "lighting",
        "exposure",
        "color",
        "expression",
        "sharpness",
        "framing",
    }
    assert all(c.status == "pass" for c in result.checks), [c for c in result.checks]
    assert result.reasons == []
    assert "\n" not in result.summary and result.summary.startswith("PASS")


@pytest.mark.parametrize(
    ("delta", "status", "says"),
    [
        (+7.0, "warn", ["further to the patient's left", "image right", "turn ~7° to their right"]),
        (-7.0, "warn", ["further to the patient's right", "image left", "turn ~7° to their left"]),
        (+12.0, "fail", ["patient's left", "turn ~12° to their right"]),
        (-12.0, "fail", ["patient's right", "turn ~12° to their left"]),
        (+4.0, "pass", ["pose matches"]),
    ],
)
def test_yaw_message_names_the_patients_side(delta: float, status: str, says: list[str]) -> None:
    check = compare(BASE, follow(yaw_deg=YAW + delta)).check("pose")
    assert check.status == status
    assert check.value == pytest.approx(delta)
    for text in says:
        assert text in check.message, check.message


@pytest.mark.parametrize(
    ("delta", "says"),
    [
        (+8.0, "chin ~8° higher than baseline — ask them to lower"),
        (-8.0, "chin ~8° lower than baseline — ask them to raise"),
    ],
)
def test_pitch_message(delta: float, says: str) -> None:
    check = compare(BASE, follow(pitch_deg=PITCH + delta)).check("pose")
    assert check.status == "warn" and says in check.message


@pytest.mark.parametrize(
    ("delta", "says"),
    [
        (+4.0, ["clockwise", "patient's left shoulder", "toward their right shoulder"]),
        (-4.0, ["counter-clockwise", "patient's right shoulder", "toward their left shoulder"]),
    ],
)
def test_roll_message_and_its_tighter_threshold(delta: float, says: list[str]) -> None:
    check = compare(BASE, follow(roll_deg=ROLL + delta)).check("pose")
    assert check.status == "warn" and check.warn_at == Tolerances().roll_warn_deg
    for text in says:
        assert text in check.message


def test_pose_reports_every_axis_out_of_tolerance_and_grades_the_worst() -> None:
    turned = follow(yaw_deg=YAW + 6, roll_deg=ROLL - 7)
    check = compare(BASE, turned).check("pose")
    assert check.status == "fail"  # roll 7 > 6 fails; yaw 6 only warns
    assert check.details["worst_axis"] == "roll"
    assert "patient's left" in check.message and "counter-clockwise" in check.message


def test_camera_closer_and_farther() -> None:
    closer = compare(BASE, follow(ipd_px=336.0)).check("distance")  # face 12% larger
    assert closer.status == "fail" and closer.value == pytest.approx(12.0)
    assert "closer" in closer.message and "step back ~12%" in closer.message
    farther = compare(BASE, follow(ipd_px=279.0)).check("distance")  # 7% smaller
    assert farther.status == "warn" and farther.value == pytest.approx(-7.0)
    assert "farther" in farther.message and "move ~7% closer" in farther.message
    assert compare(BASE, follow(ipd_px=310.0)).check("distance").status == "pass"


def test_distance_is_normalised_by_width_when_resolutions_differ() -> None:
    half = follow(
        width_px=1500, height_px=2000, ipd_px=150.0, face_box=(500.0, 600.0, 1000.0, 1300.0)
    )
    check = compare(BASE, half).check("distance")
    assert check.status == "pass" and check.value == pytest.approx(0.0, abs=1e-9)
    assert check.details["normalised_by"] == "image width"
    assert "resolutions differ" in check.details["resolution_note"]


def test_zoom_change_is_mentioned_with_the_size_change() -> None:
    check = compare(
        replace(BASE, focal_length_35mm=26.0), follow(ipd_px=345.0, focal_length_35mm=52.0)
    ).check("distance")
    assert check.status == "fail" and "focal length differs" in check.message


def test_lighting_direction_message_both_ways() -> None:
    to_image_right = compare(BASE, follow(light_side=0.30)).check("lighting")
    assert to_image_right.status == "warn"
    assert "patient's left (image right)" in to_image_right.message
    to_image_left = compare(BASE, follow(light_side=-0.50)).check("lighting")
    assert to_image_left.status == "fail"
    assert "patient's right (image left)" in to_image_left.message


def test_exposure_in_ev_and_direction() -> None:
    darker = compare(BASE, follow(exposure_l=47.0, lab_median=(47.0, 12.0, 16.0))).check("exposure")
    assert darker.status == "fail" and darker.value == pytest.approx(-15.0)

    def y(lstar: float) -> float:  # CIE L* -> Y
        return float(((lstar + 16) / 116) ** 3)

    ev = math.log2(y(47.0) / y(62.0))
    assert darker.details["delta_ev"] == pytest.approx(ev)
    assert f"{abs(ev):.1f} EV darker" in darker.message
    brighter = compare(BASE, follow(exposure_l=70.0)).check("exposure")
    assert brighter.status == "warn" and "brighter" in brighter.message


def test_clipping_increase_flags_exposure_even_at_equal_median() -> None:
    check = compare(BASE, follow(clipped_share=0.15)).check("exposure")
    assert check.status == "fail" and "clipped" in check.message


def test_color_ignores_a_pure_exposure_change_and_names_the_cast() -> None:
    from skimage.color import lab2xyz, xyz2lab

    xyz = lab2xyz(np.array(BASE.lab_median).reshape(1, 1, 3))
    darker = tuple(float(v) for v in xyz2lab(xyz * 0.4).reshape(3))  # one stop and a third
    assert darker[0] < 45
    same_chroma = compare(BASE, follow(lab_median=darker)).check("color")
    assert same_chroma.status == "pass" and same_chroma.value == pytest.approx(0.0, abs=1e-6)
    warm = compare(BASE, follow(lab_median=(62.0, 13.0, 28.0))).check("color")
    assert warm.status in ("warn", "fail") and "warmer" in warm.message
    cool = compare(BASE, follow(lab_median=(62.0, 11.0, 4.0))).check("color")
    assert cool.status in ("warn", "fail") and "cooler" in cool.message


@pytest.mark.parametrize(
    ("changes", "status", "says"),
    [
        ({"smile": 0.10}, "fail", "smiling more"),
        ({"smile": -0.05}, "warn", "less smile"),
        ({"eye_open": 0.20}, "warn", "eyes more closed"),
        ({"eye_open": 0.45}, "fail", "eyes wider open"),
        ({"mouth_open": 0.15}, "warn", "mouth more open"),
    ],
)
def test_expression_messages(changes: dict[str, float], status: str, says: str) -> None:
    check = compare(BASE, follow(**changes)).check("expression")
    assert check.status == status and says in check.message


def test_sharpness_ratio_grades_blur_and_only_warns_when_sharper() -> None:
    assert compare(BASE, follow(sharpness=30.0)).check("sharpness").status == "pass"
    blur = compare(BASE, follow(sharpness=22.0)).check("sharpness")
    assert blur.status == "warn" and blur.value == pytest.approx(0.55)
    assert "blurrier" in blur.message
    assert compare(BASE, follow(sharpness=16.0)).check("sharpness").status == "fail"
    sharper = compare(BASE, follow(sharpness=400.0)).check("sharpness")
    assert sharper.status == "warn" and "sharper" in sharper.message


def test_face_cut_off_and_face_moved() -> None:
    assert compare(BASE, follow(face_in_frame=False)).check("framing").status == "fail"
    moved = compare(BASE, follow(face_box=(1700.0, 1200.0, 2700.0, 2600.0))).check("framing")
    assert moved.status == "fail" and "further right" in moved.message


def test_verdict_is_the_worst_status() -> None:
    result = compare(BASE, follow(yaw_deg=YAW + 7, ipd_px=345.0))
    assert result.verdict == "fail"
    assert result.check("pose").status == "warn" and result.check("distance").status == "fail"
    assert result.reasons[0] == result.check("distance").message  # worst first
    assert "distance" in result.summary and "pose" in result.summary


def test_missing_figures_are_not_assessed_and_do_not_fail() -> None:
    result = compare(BASE, follow(yaw_deg=None, pitch_deg=None, roll_deg=None, sharpness=None))
    pose = result.check("pose")
    assert pose.status == "not_assessed" and "follow-up" in pose.message
    assert result.check("sharpness").status == "not_assessed"
    assert result.verdict == "pass"
    partial = compare(BASE, follow(roll_deg=None, yaw_deg=YAW + 7)).check("pose")
    assert partial.status == "warn" and "roll not measured" in partial.message


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"ok": False, "error": "not an image"}, "could not be measured: not an image"),
        ({"face_found": False, "error": "face too small"}, "no face was found on the follow-up"),
    ],
)
def test_a_failed_measurement_fails_the_comparison_with_its_reason(
    changes: dict[str, Any], reason: str
) -> None:
    result = compare(BASE, follow(**changes))
    assert result.verdict == "fail"
    assert reason in result.check("measurement").message
    assert reason in result.reasons[0]
    assert all(c.status == "not_assessed" for c in result.checks if c.name != "measurement")


def test_view_mismatch_fails() -> None:
    result = compare(BASE, follow(view="face_oblique_left"))
    assert result.verdict == "fail" and "face_oblique_left" in result.check("view").message


def test_scalp_view_without_face_is_not_a_failure_and_skips_pose() -> None:
    scalp = PhotoMeasurement(
        ok=True,
        view="scalp_vertex",
        face_found=False,
        exposure_l=50.0,
        lab_median=(50.0, 8.0, 12.0),
        light_side=0.3,
        sharpness=20.0,
    )
    result = compare(scalp, replace(scalp, light_side=-0.3))
    assert result.verdict == "pass"
    for name in ("pose", "expression", "lighting"):
        assert result.check(name).status == "not_assessed"
    assert "not assessed on scalp views" in result.check("pose").message


def test_tolerance_overrides_and_validation() -> None:
    turned = follow(yaw_deg=YAW + 7)
    assert compare(BASE, turned).check("pose").status == "warn"
    loose = Tolerances.from_dict({"yaw_warn_deg": 8, "yaw_fail_deg": 15})
    assert loose.yaw_warn_deg == 8.0 and loose.roll_warn_deg == Tolerances().roll_warn_deg
    assert compare(BASE, turned, tolerances=loose).check("pose").status == "pass"
    strict = Tolerances.from_dict({"yaw_fail_deg": 6})
    assert compare(BASE, turned, tolerances=strict).check("pose").status == "fail"
    assert Tolerances.from_dict(None) == Tolerances()
    with pytest.raises(ValueError, match="unknown tolerance.*yaw_warn"):
        Tolerances.from_dict({"yaw_warn": 3})
    with pytest.raises(ValueError, match="must not exceed"):
        Tolerances.from_dict({"yaw_warn_deg": 12})
    with pytest.raises(ValueError, match="positive number"):
        Tolerances.from_dict({"roll_warn_deg": "3"})
    with pytest.raises(ValueError, match="positive number"):
        Tolerances.from_dict({"roll_warn_deg": -1})
    with pytest.raises(ValueError, match="positive number"):
        Tolerances.from_dict({"roll_warn_deg": True})
    with pytest.raises(ValueError, match="sharpness_warn_ratio"):
        Tolerances.from_dict({"sharpness_warn_ratio": 0.3})  # looser than the fail ratio


def test_comparison_serialises_to_json() -> None:
    result = compare(BASE, follow(yaw_deg=9.0, light_side=0.5, exposure_l=40.0))
    text = json.dumps(result.to_json_dict())
    assert json.loads(text)["verdict"] == "fail"


def test_a_near_black_face_is_not_vouched_for_by_the_lighting_check() -> None:
    dark = compare(BASE, follow(exposure_l=6.0)).check("lighting")
    assert dark.status == "warn" and "too dark" in dark.message
    lenient = Tolerances.from_dict({"lighting_min_exposure_l": 5.0})
    lenient_check = compare(BASE, follow(exposure_l=6.0), tolerances=lenient).check("lighting")
    assert lenient_check.status == "pass"
    # a clear direction change is still reported with its side, however dark
    sided = compare(BASE, follow(exposure_l=6.0, light_side=-0.5)).check("lighting")
    assert sided.status == "fail" and "patient's right" in sided.message


def test_resolution_check_flags_a_follow_up_with_far_fewer_pixels_across_the_face() -> None:
    same = compare(BASE, follow()).check("resolution")
    assert same.status == "pass" and same.value == 1.0
    # the same framing from a photo shrunk to half and to a quarter of the pixels: the distance
    # check normalises by the frame width and passes, the resolution check does not
    half = compare(BASE, follow(width_px=1500, height_px=2000, ipd_px=150.0))
    assert half.check("distance").status == "pass"
    assert half.check("resolution").status == "warn"
    assert "2.0x fewer pixels across the face" in half.check("resolution").message
    quarter = compare(BASE, follow(width_px=750, height_px=1000, ipd_px=75.0))
    assert quarter.check("resolution").status == "fail" and quarter.verdict == "fail"


def test_a_face_too_small_to_show_texture_fails_whatever_the_baseline() -> None:
    tiny_base = replace(BASE, ipd_px=36.0)
    result = compare(tiny_base, follow(ipd_px=35.0))
    check = result.check("resolution")
    assert check.status == "fail" and "too small" in check.message
    assert "at least 40 px" in check.message
    looser = compare(
        tiny_base, follow(ipd_px=35.0), tolerances=Tolerances.from_dict({"min_ipd_px": 30})
    )
    assert looser.check("resolution").status == "pass"


def test_scalp_resolution_compares_frame_pixels() -> None:
    base = replace(BASE, view="scalp_vertex", face_found=False, ipd_px=None)
    small = compare(base, replace(base, path="f.jpg", width_px=1000, height_px=1333))
    assert small.check("resolution").status == "fail"
    assert "across the frame" in small.check("resolution").message
