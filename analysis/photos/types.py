"""Shared value types of the photo engine.

Conventions (used everywhere in ``analysis.photos``)
----------------------------------------------------
* Images are ``numpy.ndarray`` of dtype ``uint8``, shape ``(H, W, 3)``, RGB, already EXIF-oriented.
* Pixel coordinates are ``(x, y)`` with the origin at the top-left, x to the right, y down, in the
  **original file's pixels** unless a name says otherwise (``*_analysis_px``).
* ``yaw_deg > 0``   when the nose points toward the image's right side.
* ``pitch_deg > 0`` when the chin is raised (looking up).
* ``roll_deg > 0``  when the head is rotated clockwise as seen in the image.
* ``light_side > 0`` when the face's half on the image's right is the brighter one; it is a
  normalised difference in ``[-1, 1]``.
* ``exposure_l`` is the median CIE L* (0-100) of the face (of the whole frame for scalp views).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeGuard

import numpy as np

FACE_VIEWS: tuple[str, ...] = (
    "face_frontal",
    "face_oblique_left",
    "face_oblique_right",
    "face_lateral_left",
    "face_lateral_right",
)
SCALP_VIEWS: tuple[str, ...] = (
    "scalp_vertex",
    "scalp_midline_part",
    "scalp_frontal_hairline",
    "scalp_temporal_left",
    "scalp_temporal_right",
    # a dermoscope / trichoscope close-up of a marked scalp site (follicle counts, analysis.hair)
    "scalp_trichoscopy",
)
ALL_VIEWS: tuple[str, ...] = FACE_VIEWS + SCALP_VIEWS

Status = Literal["pass", "warn", "fail", "not_assessed"]
Verdict = Literal["pass", "warn", "fail"]


def is_scalp_view(view: str | None) -> TypeGuard[str]:
    return view is not None and view.startswith("scalp_")


def is_trichoscopy_view(view: str | None) -> bool:
    """A trichoscopy close-up: a scalp view (no face mesh; compared by registration, exposure and
    sharpness) whose follicles are counted by :mod:`analysis.hair`."""
    return view == "scalp_trichoscopy"


@dataclass(frozen=True)
class PhotoMeasurement:
    """Everything measured on one photo. ``None`` means "not measured / not applicable".

    ``landmarks_px`` (478 x 3 FaceMesh points, x/y in original pixels, z in the same pixel scale)
    and ``thumb`` (small RGB copy, longest side <= 384 px, used for registration of scalp views and
    for framing) are carried for comparisons but never serialised to JSON.
    """

    path: str | None = None
    ok: bool = False
    error: str | None = None
    view: str | None = None
    face_found: bool = False
    width_px: int | None = None
    height_px: int | None = None
    # pose and distance
    yaw_deg: float | None = None
    pitch_deg: float | None = None
    roll_deg: float | None = None
    # the same head pose relative to the camera's optical axis (corrected for the face being off
    # the image centre); reported beside yaw_deg / pitch_deg, see analysis.photos.measure
    yaw_camera_deg: float | None = None
    pitch_camera_deg: float | None = None
    ipd_px: float | None = None
    distance_mm: float | None = None
    distance_sd_mm: float | None = None
    face_box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 in original px
    face_in_frame: bool | None = None
    # lighting
    exposure_l: float | None = None
    clipped_share: float | None = None
    lab_median: tuple[float, float, float] | None = None
    light_side: float | None = None
    # one-s.d. measurement uncertainty of the lighting figures (analysis.photos.lighting)
    light_side_sd: float | None = None
    exposure_sd_l: float | None = None  # L*
    color_sd_ab: float | None = None  # per-axis s.d. of the median a*/b*
    # backlight: median L* of the background beside/above the face minus the face's (> 0: the
    # face is darker than what is behind it, e.g. a window), and its s.d.
    backlight_dl: float | None = None
    backlight_sd_l: float | None = None
    # expression and quality
    eye_open: float | None = None
    mouth_open: float | None = None
    smile: float | None = None
    sharpness: float | None = None
    # one-s.d. measurement uncertainty of the expression figures (analysis.photos.expression) and
    # of sharpness (analysis.photos.sharpness), in the figures' own units
    eye_open_sd: float | None = None
    mouth_open_sd: float | None = None
    smile_sd: float | None = None
    sharpness_sd: float | None = None
    # capture metadata
    taken_at_utc: datetime | None = None
    focal_length_mm: float | None = None
    focal_length_35mm: float | None = None
    # carried, not serialised
    landmarks_px: np.ndarray | None = field(default=None, repr=False, compare=False)
    thumb: np.ndarray | None = field(default=None, repr=False, compare=False)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the scalar fields (the CLI contract keys plus more)."""
        out: dict[str, Any] = {}
        for name in (
            "path",
            "ok",
            "error",
            "view",
            "face_found",
            "width_px",
            "height_px",
            "yaw_deg",
            "pitch_deg",
            "roll_deg",
            "yaw_camera_deg",
            "pitch_camera_deg",
            "ipd_px",
            "distance_mm",
            "distance_sd_mm",
            "face_in_frame",
            "exposure_l",
            "clipped_share",
            "light_side",
            "light_side_sd",
            "exposure_sd_l",
            "color_sd_ab",
            "backlight_dl",
            "backlight_sd_l",
            "eye_open",
            "mouth_open",
            "smile",
            "sharpness",
            "eye_open_sd",
            "mouth_open_sd",
            "smile_sd",
            "sharpness_sd",
            "focal_length_mm",
            "focal_length_35mm",
        ):
            value = getattr(self, name)
            if isinstance(value, (float, np.floating)):
                value = None if not np.isfinite(value) else round(float(value), 4)
            elif isinstance(value, np.integer):
                value = int(value)
            elif isinstance(value, np.bool_):
                value = bool(value)
            out[name] = value
        out["lab_median"] = (
            [round(float(v), 3) for v in self.lab_median] if self.lab_median is not None else None
        )
        out["face_box"] = (
            [round(float(v), 1) for v in self.face_box] if self.face_box is not None else None
        )
        out["taken_at_utc"] = self.taken_at_utc.isoformat() if self.taken_at_utc else None
        for key, value in self.extra.items():
            if isinstance(value, (str, int, bool)) or value is None:
                out.setdefault(key, value)
            elif isinstance(value, (float, np.floating)):
                out.setdefault(key, round(float(value), 4) if np.isfinite(value) else None)
        return out


@dataclass(frozen=True)
class Check:
    """One dimension of a comparison.

    ``value`` is the measured difference (follow-up minus baseline, or a ratio), in ``unit``;
    ``warn_at`` / ``fail_at`` are the thresholds it was held to; ``message`` is plain language for the
    photographer (what differs and how to fix it). ``uncertainty`` is the value's standard
    deviation in ``unit`` (``None`` when not modelled); the verdict of such a check is graded on the
    range ``value -/+ 1.645 uncertainty`` (``analysis.photos.uncertainty``), and ``warn`` then means
    borderline: the range straddles a tolerance.
    """

    name: str
    status: Status
    value: float | None
    unit: str
    warn_at: float | None
    fail_at: float | None
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    uncertainty: float | None = None

    def to_json_dict(self) -> dict[str, Any]:
        value = self.value
        if value is not None:
            value = round(float(value), 4) if np.isfinite(value) else None
        return {
            "name": self.name,
            "status": self.status,
            "value": value,
            "unit": self.unit,
            "warn_at": self.warn_at,
            "fail_at": self.fail_at,
            "message": self.message,
            "details": {k: _json_scalar(v) for k, v in self.details.items()},
            "uncertainty": _json_scalar(self.uncertainty),
            "range": _json_scalar(self._range()),
        }

    def _range(self) -> tuple[float, float] | None:
        if self.value is None or self.uncertainty is None:
            return None
        from analysis.photos.uncertainty import value_range

        return value_range(float(self.value), float(self.uncertainty))


@dataclass(frozen=True)
class Comparison:
    """Result of comparing a follow-up photo with its baseline."""

    verdict: Verdict
    checks: list[Check]
    summary: str = ""

    def check(self, name: str) -> Check:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)

    @property
    def reasons(self) -> list[str]:
        """Messages of the checks that did not pass, worst first."""
        order = {"fail": 0, "warn": 1}
        bad = [c for c in self.checks if c.status in order]
        return [c.message for c in sorted(bad, key=lambda c: order[c.status])]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "summary": self.summary,
            "checks": [c.to_json_dict() for c in self.checks],
        }


def _json_scalar(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return round(float(value), 4) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (list, tuple)):
        return [_json_scalar(v) for v in value]
    return value
