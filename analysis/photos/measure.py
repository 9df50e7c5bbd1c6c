"""Measure one photo: pose, distance, framing, lighting, expression, sharpness -> PhotoMeasurement.

:func:`measure_path` and :func:`measure_photo` never raise: any failure becomes ``ok=False`` with a
message a clinic user can act on. A face view without a detectable face is ``ok=False`` and
``face_found=False`` with the reason in ``error`` (lighting, sharpness and the thumbnail are still
filled in); scalp views skip the face mesh altogether (pose is not assessed there).

Pose frame
----------
``yaw_deg`` / ``pitch_deg`` / ``roll_deg`` are the head pose **as seen along the camera's line of
sight to the face** (the frame FaceMesh itself works in; see :mod:`analysis.photos.pose`). That is
what decides which parts of the face a photo shows, so it is the figure to compare between a baseline
and a follow-up: re-aiming the camera from the same spot (face off-centre) leaves it unchanged,
moving the camera sideways changes it. The pose relative to the camera's optical axis, corrected
for the face being off the image centre (needs the principal point at the image centre, i.e. an
uncropped frame, and the focal length: EXIF, else the image diagonal), is reported **beside** it as
``yaw_camera_deg`` / ``pitch_camera_deg`` (the same JSON keys as before, now fields of their own).

Why the off-centre-corrected yaw is not the reported yaw: it is the better estimate only when the
head *moved sideways* with the camera aimed as before, and then the view-frame yaw is still the
figure that says which parts of the face show. When the head *turns*, it turns about the neck, which
lies behind the face, so the face also slides across the frame; the correction takes that slide for
an off-centre head and subtracts its angle, which undoes part of the turn. Pointing'04 (persons
01-10, tilt 0, |pan| <= 45 deg, each shot against the same series' frontal shot; truth = -pan,
``benchmarks/pose_accuracy.py --limit 10``): view-frame yaw MAE 3.39 deg, slope 0.97, against
6.10 deg, slope 0.81, off-centre-corrected (2.56 against 2.93 deg at |truth| <= 15 deg; on the
held-out persons 06-10 alone 3.80 against 6.17 deg; pitch 11.30 against 13.50 deg). So ``yaw_deg`` stays the view-frame yaw and the pose check grades it; the
corrected figure is there for a clinic that re-aims a fixed camera at patients standing in different
places, and the pose check shows its change beside the graded one (``delta_yaw_camera_deg``).

Coordinates: ``landmarks_px``, ``face_box`` and ``ipd_px`` are in the **original file's pixels**
(analysis pixels divided by ``IngestedPhoto.scale``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.photos.types import PhotoMeasurement, is_scalp_view

if TYPE_CHECKING:
    from analysis.photos.ingest import IngestedPhoto
    from analysis.photos.landmarks import LandmarkBackend

THUMB_MAX_SIDE = 384
NO_FACE_MESSAGE = (
    "no face found in the photo — make sure the whole face is in the frame, lit and in focus, "
    "and not too small (for scalp photos choose a scalp view)"
)


def _thumb(rgb: np.ndarray) -> np.ndarray:
    from analysis.photos.resample import shrink

    h, w = rgb.shape[:2]
    factor = min(1.0, THUMB_MAX_SIDE / max(h, w))
    if factor >= 1.0:
        return np.ascontiguousarray(rgb).copy()
    # an exact k x k box average, then the remaining < 2x step bilinear (analysis.photos.resample):
    # ~4x faster than one fractional INTER_AREA
    return shrink(rgb, (max(1, round(w * factor)), max(1, round(h * factor))))


def _lighting(
    rgb: np.ndarray, landmarks: np.ndarray | None, notes: dict[str, Any]
) -> dict[str, Any]:
    try:
        from analysis.photos.lighting import measure_lighting
    except ImportError:
        notes["lighting_note"] = "lighting module not available"
        return {}
    try:
        light = measure_lighting(rgb, landmarks_px=landmarks)
    except Exception as exc:  # a measure failing must not sink the others
        notes["lighting_note"] = f"lighting not measured: {exc}"
        return {}
    return {
        "exposure_l": _finite(light.exposure_l),
        "clipped_share": _finite(light.clipped_share),
        "lab_median": tuple(float(v) for v in light.lab_median)
        if np.all(np.isfinite(light.lab_median))
        else None,
        "light_side": _finite(light.light_side),
        "light_side_sd": _finite(light.light_side_sd),
        "exposure_sd_l": _finite(light.exposure_sd_l),
        "color_sd_ab": _finite(light.color_sd_ab),
        "backlight_dl": _finite(light.backlight_dl),
        "backlight_sd_l": _finite(light.backlight_sd_l)
        if _finite(light.backlight_dl) is not None
        else None,
    }


def _expression(landmarks: np.ndarray, notes: dict[str, Any]) -> dict[str, Any]:
    """Expression figures and their s.d. from the landmarks in the analysis copy's pixels (the
    image FaceMesh saw: its jitter is in those pixels, see analysis.photos.expression)."""
    try:
        from analysis.photos.expression import expression_sd, measure_expression

        expr = measure_expression(landmarks)
        eye_sd, mouth_sd, smile_sd = expression_sd(landmarks)
    except Exception as exc:
        notes["expression_note"] = f"expression not measured: {exc}"
        return {}
    out = {
        "eye_open": _finite(expr.eye_open),
        "mouth_open": _finite(expr.mouth_open),
        "smile": _finite(expr.smile),
    }
    for name, sd in (("eye_open", eye_sd), ("mouth_open", mouth_sd), ("smile", smile_sd)):
        out[f"{name}_sd"] = _finite(sd) if out[name] is not None else None
    return out


def _sharpness(
    rgb: np.ndarray, landmarks: np.ndarray | None, notes: dict[str, Any]
) -> dict[str, Any]:
    try:
        from analysis.photos.sharpness import sharpness_sd

        value, sd = sharpness_sd(rgb, landmarks_px=landmarks)
        value_ok = _finite(value)
        return {
            "sharpness": value_ok,
            "sharpness_sd": _finite(sd) if value_ok is not None else None,
        }
    except Exception as exc:
        notes["sharpness_note"] = f"sharpness not measured: {exc}"
        return {}


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _face_fields(
    photo: Any, notes: dict[str, Any], backend: LandmarkBackend
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Landmarks, pose, distance and framing; ``({}, None)`` when there is no face."""
    from analysis.photos.pose import focal_length_px, pose_from_landmarks
    from analysis.photos.scale import ipd_px, iris_distance_mm

    found = backend.detect(photo.rgb)
    notes["landmarks_backend"] = backend.name
    if found is None:
        return {}, None
    pts = np.asarray(found.points_px, dtype=float)  # analysis pixels
    height, width = photo.rgb.shape[:2]
    scale = float(photo.scale)
    fitted = pose_from_landmarks(pts)
    gain = float(backend.yaw_gain)  # the backend's own calibration (see analysis.photos.landmarks)
    pose = replace(fitted, yaw_deg=fitted.yaw_deg * gain)
    focal_analysis = focal_length_px((width, height), focal_length_35mm=photo.focal_length_35mm)
    camera = pose_from_landmarks(pts, image_size=(width, height), focal_px=focal_analysis)
    notes.update(
        landmarks_method=found.method,
        yaw_uncalibrated_deg=fitted.yaw_deg,
        pose_fit_rms=pose.rms_residual,
    )
    original = pts / scale
    xs, ys = original[:, 0], original[:, 1]
    fields: dict[str, Any] = {
        "face_found": True,
        "yaw_deg": pose.yaw_deg,
        "pitch_deg": pose.pitch_deg,
        "roll_deg": pose.roll_deg,
        "yaw_camera_deg": camera.yaw_deg * gain,
        "pitch_camera_deg": camera.pitch_deg,
        "ipd_px": ipd_px(pts, scale=scale, yaw_deg=pose.yaw_deg),
        "face_box": (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())),
        "face_in_frame": bool(
            xs.min() >= 0
            and ys.min() >= 0
            and xs.max() <= photo.width_px
            and ys.max() <= photo.height_px
        ),
        "landmarks_px": original,
    }
    if photo.focal_length_35mm:
        focal_original = focal_length_px(
            (photo.width_px, photo.height_px), focal_length_35mm=photo.focal_length_35mm
        )
        distance, sd = iris_distance_mm(original, focal_px=focal_original)
        fields["distance_mm"], fields["distance_sd_mm"] = distance, sd
    return fields, pts


def measure_photo(
    photo: Any,
    *,
    view: str | None = None,
    path: str | None = None,
    detect: LandmarkBackend | None = None,
) -> PhotoMeasurement:
    """Measure an ingested photo. Never raises (except ``TypeError`` for a ``detect`` that is not a
    :class:`~analysis.photos.landmarks.LandmarkBackend`: a programming error, not bad input).

    Parameters
    ----------
    photo : analysis.photos.ingest.IngestedPhoto
        Decoded photo (``rgb`` analysis copy, ``scale`` analysis px per original px, metadata).
    view : str, optional
        One of :data:`analysis.photos.types.ALL_VIEWS`; scalp views skip the face.
    path : str, optional
        Copied into the result.
    detect : analysis.photos.landmarks.LandmarkBackend, optional
        The landmark backend and its calibration; default
        :data:`analysis.photos.landmarks.FACEMESH` (MediaPipe FaceMesh). Its ``name`` is reported in
        ``extra["landmarks_backend"]``.

    Returns
    -------
    PhotoMeasurement
        ``ok`` False with ``error`` when the photo cannot be measured, including a face view without a
        face (``face_found`` False, :data:`NO_FACE_MESSAGE`).
    """
    from analysis.photos.landmarks import FACEMESH, LandmarkBackend

    backend = FACEMESH if detect is None else detect
    if not isinstance(backend, LandmarkBackend):
        raise TypeError(f"detect must be a LandmarkBackend, got {type(detect).__name__}")
    base: dict[str, Any] = {"path": path, "view": view}
    try:
        base.update(
            width_px=int(photo.width_px),
            height_px=int(photo.height_px),
            taken_at_utc=photo.taken_at_utc,
            focal_length_mm=photo.focal_length_mm,
            focal_length_35mm=photo.focal_length_35mm,
        )
        rgb = np.ascontiguousarray(photo.rgb)
        notes: dict[str, Any] = {}
        fields: dict[str, Any] = {"thumb": _thumb(rgb)}
        landmarks = None
        ok = True
        if is_scalp_view(view):
            notes["pose_note"] = "pose is not assessed on scalp views (no face mesh is run)"
        else:
            face, landmarks = _face_fields(photo, notes, backend)
            fields.update(face)
            if landmarks is None:
                ok, fields["error"] = False, NO_FACE_MESSAGE
            else:
                fields.update(_expression(landmarks, notes))
        fields.update(_lighting(rgb, landmarks, notes))
        fields.update(_sharpness(rgb, landmarks, notes))
        return PhotoMeasurement(ok=ok, extra=notes, **base, **fields)
    except MemoryError:
        return PhotoMeasurement(
            ok=False, error="the photo is too large to analyse on this server", **base
        )
    except Exception as exc:  # never raise: the caller shows the reason
        return PhotoMeasurement(ok=False, error=f"the photo could not be measured: {exc}", **base)


def measure_path(
    path: str | Path, *, view: str | None = None, detect: LandmarkBackend | None = None
) -> PhotoMeasurement:
    """Read and measure the image file at ``path``. Never raises (``detect`` as :func:`measure_photo`).

    Unreadable, truncated, non-image or hostile files give ``ok=False`` with the reason from
    :func:`analysis.photos.ingest.read_photo` (e.g. "This file is a PDF ...").
    """
    photo = _read(path, view=view)
    if isinstance(photo, PhotoMeasurement):
        return photo
    return measure_photo(photo, view=view, path=str(path), detect=detect)


def measure_paths(
    paths: Iterable[str | Path], *, view: str | None = None, detect: LandmarkBackend | None = None
) -> Iterator[PhotoMeasurement]:
    """:func:`measure_path` of each path in turn, the next file read while this one is measured.

    Reading (file, hash, JPEG decode) releases the GIL, and so does FaceMesh, so on two cores the
    next photo's decode runs beside this photo's landmarks and checks: a batch takes about the
    longer of the two per photo instead of their sum (``benchmarks/photo_speed.py``, "the measure
    command"). The first photo is read while the landmark backend is built (its ``warm``): a
    fresh process, as the ``measure`` command is, pays its start-up beside that first decode.
    One photo is read ahead (one analysis copy and one file's bytes held beyond the current one).
    The results, in order, are those of :func:`measure_path`: it never raises for bad input.
    """
    from concurrent.futures import ThreadPoolExecutor

    from analysis.photos.landmarks import FACEMESH

    names = [str(p) for p in paths]
    if not names:
        return
    backend = FACEMESH if detect is None else detect
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="photo-reader") as reader:
        ahead = reader.submit(_read, names[0], view=view)
        warm = getattr(backend, "warm", None)
        if warm is not None and not is_scalp_view(view):
            try:
                warm()
            except Exception:  # noqa: BLE001 - the first detect reports a broken backend itself
                pass
        for i, name in enumerate(names):
            photo = ahead.result()  # _read never raises for bad input
            if i + 1 < len(names):
                ahead = reader.submit(_read, names[i + 1], view=view)
            if isinstance(photo, PhotoMeasurement):
                yield photo
            else:
                yield measure_photo(photo, view=view, path=name, detect=detect)
            del photo


def _read(path: str | Path, *, view: str | None) -> IngestedPhoto | PhotoMeasurement:
    """``read_photo(path)``, or the ``ok=False`` :class:`PhotoMeasurement` saying why it cannot be."""
    name = str(path)
    try:
        from analysis.photos.ingest import IngestError, read_photo
    except Exception as exc:
        return PhotoMeasurement(
            path=name, view=view, ok=False, error=f"photo reader unavailable: {exc}"
        )
    try:
        return read_photo(Path(path))
    except IngestError as exc:
        return PhotoMeasurement(path=name, view=view, ok=False, error=str(exc))
    except FileNotFoundError:
        return PhotoMeasurement(path=name, view=view, ok=False, error=f"file not found: {name}")
    except MemoryError:
        return PhotoMeasurement(
            path=name, view=view, ok=False, error="the photo is too large to analyse"
        )
    except Exception as exc:
        return PhotoMeasurement(
            path=name, view=view, ok=False, error=f"not a readable image file: {exc}"
        )
