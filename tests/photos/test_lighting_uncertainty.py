"""Measurement uncertainty of the lighting checks (direction, exposure, white balance).

Metamorphic, on scikit-image's astronaut(): a smaller face (the photo downscaled, fewer pixels per
vertex sample and in the skin region) or more pixel noise gives every lighting figure a wider
range; the verdicts of ``compare`` use that range (pass / borderline warn / fail beyond doubt)
and the JSON keeps its fields, adding ``uncertainty`` and ``range`` per check.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from typing import Any

import cv2
import numpy as np
import pytest
from skimage import data

from analysis.photos import lighting
from analysis.photos.compare import compare
from analysis.photos.lighting import light_side_sd, measure_lighting, pixel_noise_rgb, shading_fit
from analysis.photos.types import Check, PhotoMeasurement
from tests.support.faces import astronaut_landmarks


@cache
def _measured(factor: float, noise: float) -> lighting.LightingMeasure:
    """astronaut() downscaled by ``factor`` with Gaussian noise of ``noise`` 8-bit levels."""
    rgb = np.ascontiguousarray(data.astronaut())
    lm = astronaut_landmarks() * factor
    small = (
        rgb
        if factor == 1.0
        else cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    )
    rng = np.random.default_rng(7)
    noisy = np.clip(small + rng.normal(0.0, noise, small.shape), 0, 255).astype(np.uint8)
    return measure_lighting(noisy, landmarks_px=lm)


def _as_photo(m: lighting.LightingMeasure, **changes: Any) -> PhotoMeasurement:
    photo = PhotoMeasurement(
        ok=True,
        face_found=True,
        view="face_frontal",
        width_px=512,
        height_px=512,
        ipd_px=42.0,
        exposure_l=m.exposure_l,
        clipped_share=m.clipped_share,
        lab_median=m.lab_median,
        light_side=m.light_side,
        light_side_sd=m.light_side_sd,
        exposure_sd_l=m.exposure_sd_l,
        color_sd_ab=m.color_sd_ab,
    )
    return replace(photo, **changes)


FIGURES = ("light_side_sd", "exposure_sd_l", "color_sd_ab")


@pytest.mark.parametrize("noise", [10.0, 40.0])
def test_a_smaller_face_gives_every_lighting_figure_a_wider_range(noise: float) -> None:
    big, small = _measured(1.0, noise), _measured(0.25, noise)
    assert small.region_px < big.region_px / 10
    for name in FIGURES:
        assert getattr(small, name) > getattr(big, name) > 0, name


@pytest.mark.parametrize("factor", [1.0, 0.25])
def test_more_noise_gives_every_lighting_figure_a_wider_range(factor: float) -> None:
    clean, noisy = _measured(factor, 0.0), _measured(factor, 40.0)
    assert noisy.noise_sd_l > 2 * clean.noise_sd_l
    for name in FIGURES:
        assert getattr(noisy, name) > getattr(clean, name) > 0, name


def test_the_noise_term_follows_face_size_and_noise_exactly() -> None:
    rgb = np.ascontiguousarray(data.astronaut())
    fit = shading_fit(rgb, landmarks_px=astronaut_landmarks())
    assert fit.xtx_inv is not None and fit.ipd_px > 0
    no_noise = light_side_sd(fit, 0.0)
    assert no_noise == pytest.approx(lighting.LIGHT_SIDE_SE_GAIN * fit.light_side_se())
    noise_only = [light_side_sd(fit, s, gain=0.0) for s in (2.0, 4.0)]
    assert noise_only[1] == pytest.approx(2 * noise_only[0])  # linear in the pixel noise
    half_face = replace(fit, ipd_px=fit.ipd_px / 2)  # a vertex box covers half the pixels a side
    assert light_side_sd(half_face, 2.0, gain=0.0) == pytest.approx(2 * noise_only[0])
    assert light_side_sd(half_face, 4.0) > light_side_sd(fit, 4.0) > no_noise


def test_pixel_noise_estimate_recovers_added_noise_on_a_flat_image() -> None:
    rng = np.random.default_rng(3)
    flat = np.clip(128 + rng.normal(0.0, 6.0, (300, 400, 3)), 0, 255).astype(np.uint8)
    assert pixel_noise_rgb(flat) == pytest.approx([6.0, 6.0, 6.0], rel=0.1)
    assert pixel_noise_rgb(np.full((50, 60, 3), 90, np.uint8)) == pytest.approx([0, 0, 0])
    with pytest.raises(ValueError, match="RGB uint8"):
        pixel_noise_rgb(flat.astype(float))


def test_the_same_light_change_on_a_smaller_noisier_face_gets_a_wider_range() -> None:
    big, small = _measured(1.0, 10.0), _measured(0.25, 40.0)
    ranges = []
    for m in (big, small):
        base = _as_photo(m)
        assert base.light_side is not None
        follow = replace(base, light_side=base.light_side + 0.10)
        check = compare(base, follow).check("lighting")
        assert check.value == pytest.approx(0.10)
        low, high = check.to_json_dict()["range"]
        ranges.append(high - low)
    assert ranges[1] > ranges[0] > 0


def test_verdicts_use_the_range_pass_borderline_fail() -> None:
    base = _as_photo(_measured(1.0, 10.0), light_side=0.0, light_side_sd=0.02)
    k_sd = 1.645 * np.sqrt(2) * 0.02  # both photos' s.d. in quadrature
    just_over = 0.22 + 0.5 * k_sd  # over the warn line, but within doubt of it

    def lighting_of(fv: float, sd: float = 0.02) -> Check:
        return compare(base, replace(base, light_side=fv, light_side_sd=sd)).check("lighting")

    assert lighting_of(just_over).status == "pass"
    old_rule = compare(
        replace(base, light_side_sd=None), replace(base, light_side=just_over, light_side_sd=None)
    ).check("lighting")
    assert old_rule.status == "warn" and old_rule.uncertainty is None  # the plain thresholds
    straddling = lighting_of(0.44 + 0.5 * k_sd)
    assert straddling.status == "warn"
    assert "borderline" in straddling.message and "±" in straddling.message
    assert lighting_of(0.44 + 2 * k_sd).status == "fail"
    assert lighting_of(-(0.22 + 2 * k_sd)).status == "warn"  # beyond warn beyond doubt, either side
    assert lighting_of(0.0).status == "pass"


def test_exposure_and_colour_are_graded_on_their_ranges() -> None:
    base = _as_photo(_measured(1.0, 10.0))
    assert base.exposure_sd_l is not None
    sd_l = np.hypot(base.exposure_sd_l, base.exposure_sd_l)
    assert base.exposure_l is not None
    just_over = replace(base, exposure_l=base.exposure_l + 6.0 + 0.5 * 1.645 * sd_l)
    assert compare(base, just_over).check("exposure").status == "pass"
    assert (
        compare(replace(base, exposure_sd_l=None), replace(just_over, exposure_sd_l=None))
        .check("exposure")
        .status
        == "warn"
    )
    assert base.exposure_l is not None
    far = replace(base, exposure_l=base.exposure_l + 12.0 + 3 * sd_l)
    assert compare(base, far).check("exposure").status == "fail"
    assert base.lab_median is not None
    cast = replace(
        base, lab_median=(base.lab_median[0], base.lab_median[1], base.lab_median[2] + 30.0)
    )
    color = compare(base, cast).check("color")
    assert color.status is not None and color.uncertainty is not None
    assert color.status == "fail" and color.uncertainty > 0


def test_json_keeps_its_fields_and_adds_uncertainty_per_lighting_check() -> None:
    m = _measured(1.0, 10.0)
    base = _as_photo(m)
    assert base.light_side is not None and base.exposure_l is not None
    follow = replace(base, light_side=base.light_side + 0.05, exposure_l=base.exposure_l + 2.0)
    out = json.loads(json.dumps(compare(base, follow).to_json_dict()))
    checks = {c["name"]: c for c in out["checks"]}
    for name in ("lighting", "exposure", "color"):
        c = checks[name]
        assert {
            "name",
            "status",
            "value",
            "unit",
            "warn_at",
            "fail_at",
            "message",
            "details",
        } <= set(c)
        assert c["status"] == "pass"
        assert c["uncertainty"] > 0
        low, high = c["range"]
        assert low < c["value"] < high
    photo = json.loads(json.dumps(base.to_json_dict()))
    assert photo["light_side_sd"] == pytest.approx(m.light_side_sd, abs=1e-4)
    assert photo["exposure_sd_l"] > 0 and photo["color_sd_ab"] > 0


def test_measure_photo_fills_the_lighting_uncertainty() -> None:
    from analysis.photos.ingest import IngestedPhoto
    from analysis.photos.measure import measure_photo

    astronaut_landmarks()  # skips without the landmark backend
    face = np.ascontiguousarray(data.astronaut())
    h, w = face.shape[:2]
    photo = IngestedPhoto("0" * 64, "PNG", w, h, face, 1.0, None, None, None, 1)
    m = measure_photo(photo, view="face_frontal")
    assert m.ok and m.face_found
    for name in FIGURES:
        value = getattr(m, name)
        assert value is not None and 0 < value < 5, name


def test_older_records_without_uncertainty_keep_the_plain_rule() -> None:
    base = _as_photo(_measured(1.0, 10.0), light_side_sd=None, exposure_sd_l=None, color_sd_ab=None)
    assert base.light_side is not None
    result = compare(base, replace(base, light_side=base.light_side + 0.23))
    check = result.check("lighting")
    assert check.status == "warn" and check.uncertainty is None
    assert check.to_json_dict()["range"] is None
