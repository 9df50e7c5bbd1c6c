"""Face landmarks: the one module that talks to MediaPipe (swap the backend here, nowhere else).

The backend is MediaPipe FaceMesh with iris refinement (``refine_landmarks=True``: 468 mesh points
plus 10 iris points = 478), run in ``static_image_mode`` on an input whose longest side is bounded.
:func:`detect_face_landmarks` finds the face in this order, stopping at the first that works:

1. FaceMesh on the whole (bounded) image, i.e. its own short-range detector (clinic close-ups);
2. the full-range BlazeFace detector (``model_selection=1``) on a copy of at most 480 px (it sees
   192 x 192 anyway), then FaceMesh on a square crop around its box (faces farther away);
3. the detector on overlapping tiles of the bounded image (small faces in large frames);
4. FaceMesh on the image padded with a 30 % border (edge-replicated, then black): faces cropped so
   tightly that the detectors' anchors miss them, e.g. Extended Yale B crops;

then, by default, the face is meshed once more on a square crop centred on those first landmarks and
the two sets of points are averaged, which makes them less dependent on where the detector put its
box (steadier pose; two FaceMesh runs in all for a typical photo).

Points come back in the **given image's pixel coordinates**: ``x`` right, ``y`` down, and ``z`` in the
same pixel scale (MediaPipe's normalised z is scaled by the image width, as MediaPipe documents), smaller
``z`` = closer to the camera.

One FaceMesh and one detector are built per process and shared behind a lock (the MediaPipe graphs are
not re-entrant). MediaPipe's native start-up chatter on stderr is silenced at import and on first use.

The engine's backend
--------------------
:func:`analysis.photos.measure.measure_photo` takes its landmark backend as a parameter
(``detect=``), a :class:`LandmarkBackend`: the detection function and the calibration constants that
belong to it (``yaw_gain``). :data:`FACEMESH` is this module's, and the default. A second backend is
one new module that builds its own :class:`LandmarkBackend`; it must return points in FaceMesh's
478-point topology (468 mesh points, then the 10 iris points), because pose, distance, lighting,
expression and sharpness index into it, and it must refit its own calibration
(``benchmarks/pose_accuracy.py`` prints the yaw gain refit) rather than borrow this one's.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

N_LANDMARKS = 478

#: Yaw calibration of this backend. Rigid fits to FaceMesh points read head turns low: the landmark
#: regressor pulls the far side of a turned face toward the frontal mean shape. Measured slopes of
#: fitted yaw on truth: 0.85 on Pointing'04 (relative yaw, |pan| <= 45 deg; labels are gaze targets)
#: and about 0.8 on astronaut() re-projected through its own mesh (analysis.demo.synth), so the bias
#: is the estimator's, not only the labels'. ``measure_photo`` multiplies yaw by this gain, which is
#: one least-squares slope through the origin fit on Pointing'04 persons 01-05 only;
#: ``benchmarks/pose_accuracy.py`` refits it and reports persons 06-10 as held out. Re-derive it
#: whenever the backend changes.
YAW_GAIN = 1.14
MESH_MAX_SIDE = 1280  # longest side fed to FaceMesh; its own face crop is 192 px anyway
_PAD_FRACTION = 0.30
_CROP_MARGIN = 0.5  # of the detector box size, on each side
_MIN_CROP_SIDE = 384  # px; smaller face crops are upsampled to this before meshing
_DETECT_MAX_SIDE = 480  # px; the full-range detector's first look (its own input is 192 x 192)

_LOCK = threading.Lock()
_BACKEND: dict[str, Any] = {}


@dataclass(frozen=True)
class FaceLandmarks:
    """FaceMesh points found in one image.

    Attributes
    ----------
    points_px : ndarray, shape (478, 3)
        x, y in pixels of the image given to :func:`detect_face_landmarks`; z in the same pixel scale.
    image_size : tuple of int
        ``(width, height)`` of that image in pixels.
    method : str
        ``"whole"``, ``"detector_crop"`` or ``"padded"``: which pass found the face.
    """

    points_px: np.ndarray
    image_size: tuple[int, int]
    method: str


@dataclass(frozen=True)
class LandmarkBackend:
    """A landmark backend for :func:`analysis.photos.measure.measure_photo` (see the module docstring).

    Attributes
    ----------
    name : str
        Reported in the measurement's ``landmarks_backend``.
    detect : callable
        ``detect(rgb) -> FaceLandmarks | None``: one face's 478 points in ``rgb``'s pixels (FaceMesh
        topology and frame: x right, y down, z in the x/y pixel scale, smaller = nearer), or None.
    yaw_gain : float
        The backend's yaw calibration: the rigid pose fit's yaw is multiplied by it.
    warm : callable, optional
        ``warm()`` builds whatever the first ``detect`` would otherwise build (models, graphs), so a
        caller can do that while it reads the first photo (:func:`analysis.photos.measure.measure_paths`).
        Idempotent; ``None`` when there is nothing to build ahead.
    """

    name: str
    detect: Callable[[np.ndarray], FaceLandmarks | None]
    yaw_gain: float = 1.0
    warm: Callable[[], None] | None = None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block (native code logs there, not via Python)."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _backend() -> dict[str, Any]:
    """Build (once per process) the FaceMesh and the full-range detector. Call with ``_LOCK`` held."""
    if not _BACKEND:
        from analysis.photos.ingest import WARNINGS_LOCK  # filters are process-wide: see there

        with _quiet_stderr(), WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # protobuf API notes from mediapipe
            face_mesh, face_detection = _solution_modules()

            with contextlib.suppress(Exception):
                from absl import logging as absl_logging

                absl_logging.set_verbosity(absl_logging.ERROR)
            _BACKEND["mesh"] = face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=0.5,
            )
            _BACKEND["detector"] = face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=0.5
            )
            # the first run of each graph prints its delegate/feedback warnings: do it silently
            blank = np.zeros((64, 64, 3), np.uint8)
            _BACKEND["mesh"].process(blank)
            _BACKEND["detector"].process(blank)
    return _BACKEND


def _solution_modules() -> tuple[Any, Any]:
    """mediapipe's ``face_mesh`` and ``face_detection`` solution modules (the only mediapipe import
    in Candor), loaded without first running the ``mediapipe`` and ``mediapipe.python.solutions``
    package ``__init__`` files.

    Those import every solution, ``mediapipe.tasks`` and, for the drawing utilities,
    ``matplotlib.pyplot``: 0.35 s of each engine start for nothing the engine uses, and the engine
    starts once per uploaded photo (a fresh worker process per upload, analysis.photos.worker). The
    two packages are registered as modules whose ``__init__`` runs on the first use of any name it
    defines, so a later ``import mediapipe`` elsewhere still gets the whole package
    (tests/photos/test_engine_start.py).
    """
    import importlib
    import importlib.util
    import sys

    if "mediapipe" not in sys.modules:  # else it is imported already, the plain way or this way
        sys.modules["mediapipe"] = _deferred_package("mediapipe")
        importlib.import_module("mediapipe.python")  # the bindings the solutions use
        sys.modules["mediapipe.python.solutions"] = _deferred_package("mediapipe.python.solutions")
    return (
        importlib.import_module("mediapipe.python.solutions.face_mesh"),
        importlib.import_module("mediapipe.python.solutions.face_detection"),
    )


def _deferred_package(name: str) -> Any:
    """Package ``name`` as a module whose ``__init__`` code runs on the first look-up of a name it
    lacks (not yet registered in ``sys.modules``: the caller does that)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"{name} is not installed")
    loader = spec.loader
    module = importlib.util.module_from_spec(spec)

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module-level hook (PEP 562)
        del module.__getattr__
        loader.exec_module(module)
        return getattr(module, name)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {arr.shape}")
    arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _resize(rgb: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(rgb, size, interpolation=interp))


def _mesh(rgb: np.ndarray) -> np.ndarray | None:
    """FaceMesh on ``rgb`` (lock held); points in ``rgb`` pixels, or None."""
    backend = _backend()
    with _quiet_stderr():
        result = backend["mesh"].process(rgb)
    if not result.multi_face_landmarks:
        return None
    h, w = rgb.shape[:2]
    pts = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], float)
    if pts.shape != (N_LANDMARKS, 3):
        return None
    out: np.ndarray = pts * np.array([w, h, w], float)
    return out


def _detect_once(rgb: np.ndarray) -> tuple[float, tuple[float, float, float, float]] | None:
    backend = _backend()
    with _quiet_stderr():
        result = backend["detector"].process(np.ascontiguousarray(rgb))
    if not result.detections:
        return None
    best = max(result.detections, key=lambda d: d.score[0] if d.score else 0.0)
    box = best.location_data.relative_bounding_box
    h, w = rgb.shape[:2]
    score = float(best.score[0]) if best.score else 0.0
    return score, (
        box.xmin * w,
        box.ymin * h,
        (box.xmin + box.width) * w,
        (box.ymin + box.height) * h,
    )


def _detect_box(rgb: np.ndarray) -> tuple[float, float, float, float] | None:
    """Best full-range BlazeFace box ``(x0, y0, x1, y1)`` in ``rgb`` pixels, or None.

    The detector sees a 192 x 192 copy of its input, so when the whole frame gives nothing, it is
    retried on overlapping 2 x 2 and 3 x 3 tiles (faces down to ~1/20 of the frame's side).
    """
    found = _detect_once(rgb)
    if found is not None:
        return found[1]
    h, w = rgb.shape[:2]
    for n in (2, 3):
        tile_h, tile_w = int(h / n * 1.5), int(w / n * 1.5)
        hits = []
        for ty in np.linspace(0, h - tile_h, n).astype(int):
            for tx in np.linspace(0, w - tile_w, n).astype(int):
                found = _detect_once(rgb[ty : ty + tile_h, tx : tx + tile_w])
                if found is not None:
                    score, (x0, y0, x1, y1) = found
                    hits.append((score, (x0 + tx, y0 + ty, x1 + tx, y1 + ty)))
        if hits:
            return max(hits)[1]
    return None


def _mesh_square(rgb: np.ndarray, cx: float, cy: float, half: float) -> np.ndarray | None:
    """Mesh the square ``[cx - half, cx + half]^2`` (edge-padded where it leaves the image)."""
    left, top, side = int(round(cx - half)), int(round(cy - half)), int(round(2 * half))
    if side < 8:
        return None
    h, w = rgb.shape[:2]
    pad = [max(0, -top), max(0, top + side - h), max(0, -left), max(0, left + side - w)]
    crop = rgb[max(0, top) : min(h, top + side), max(0, left) : min(w, left + side)]
    if crop.shape[0] < 4 or crop.shape[1] < 4:
        return None
    if any(pad):
        crop = np.pad(crop, ((pad[0], pad[1]), (pad[2], pad[3]), (0, 0)), mode="edge")
    factor = 1.0
    if side < _MIN_CROP_SIDE:  # small faces: upsample so the mesh sees a usable crop
        factor = _MIN_CROP_SIDE / side
        crop = _resize(crop, factor)
    pts = _mesh(np.ascontiguousarray(crop))
    if pts is None:
        return None
    pts = pts / factor
    pts[:, 0] += left
    pts[:, 1] += top
    return pts


def _mesh_in_box(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    return _mesh_square(rgb, (x0 + x1) / 2, (y0 + y1) / 2, side * (0.5 + _CROP_MARGIN))


def _refine(rgb: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Re-mesh on a crop placed by the first landmarks and average the two (less jitter than one pass).

    FaceMesh's result depends on where its detector puts the face crop. Meshing again on a square of
    twice the face's extent centred on the first landmarks, and averaging with the first pass (whose
    crop came from a detector box or the whole frame), halves the pose change caused by
    recompression, exposure or a shift of a few pixels (``benchmarks/pose_accuracy.py``,
    repeatability).
    """
    mesh = pts[:468, :2]
    if not np.all(np.isfinite(mesh)):
        return pts
    cx, cy = mesh.mean(axis=0)
    half = min(float(np.ptp(mesh, axis=0).max()), float(max(rgb.shape[:2])))  # bounded crop size
    again = _mesh_square(rgb, cx, cy, half)
    if again is None or not np.all(np.isfinite(again)):
        return pts
    out: np.ndarray = (pts + again) / 2.0
    return out


def _mesh_at_detection(rgb: np.ndarray) -> np.ndarray | None:
    """Full-range detector on a copy of at most ``_DETECT_MAX_SIDE`` px, then mesh its box in ``rgb``."""
    factor = min(1.0, _DETECT_MAX_SIDE / max(rgb.shape[:2]))
    if factor < 1.0:
        from analysis.photos.resample import shrink

        h, w = rgb.shape[:2]
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        # the detector sees 192 x 192 of it: a box average plus a bilinear step is ample, and 4x
        # cheaper than a fractional INTER_AREA of the analysis copy
        small = np.ascontiguousarray(shrink(rgb, size))
    else:
        small = rgb
    found = _detect_once(small)
    if found is None:
        return None
    x0, y0, x1, y1 = (v / factor for v in found[1])
    return _mesh_in_box(rgb, (x0, y0, x1, y1))


def _mesh_detected(rgb: np.ndarray) -> np.ndarray | None:
    """Full-range detector on ``rgb`` (whole, then tiles), then mesh its box; None if no face."""
    box = _detect_box(rgb)
    return _mesh_in_box(rgb, box) if box is not None else None


def _mesh_found(rgb: np.ndarray, *, quick_look: bool) -> tuple[np.ndarray | None, str]:
    """Steps 1-3 of the module docstring (``quick_look``: step 2's detector on a small copy first);
    the points and ``"whole"`` or ``"detector_crop"``."""
    pts = _mesh(rgb)
    if pts is not None:
        return pts, "whole"
    pts = _mesh_at_detection(rgb) if quick_look else None
    return (pts if pts is not None else _mesh_detected(rgb)), "detector_crop"


def _mesh_padded(rgb: np.ndarray) -> np.ndarray | None:
    h, w = rgb.shape[:2]
    pad_y, pad_x = int(round(_PAD_FRACTION * h)), int(round(_PAD_FRACTION * w))
    for mode in ("edge", "constant"):
        padded = np.pad(rgb, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode=mode)
        pts = _mesh(np.ascontiguousarray(padded))
        if pts is not None:
            pts[:, 0] -= pad_x
            pts[:, 1] -= pad_y
            return pts
    return None


def detect_face_landmarks(
    rgb: np.ndarray, *, max_side: int = MESH_MAX_SIDE, refine: bool = True
) -> FaceLandmarks | None:
    """Find one face and return its 478 FaceMesh landmarks, or None when there is no face.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        RGB image (grayscale ``(H, W)`` and RGBA are accepted and converted).
    max_side : int, optional
        The image is downscaled (area interpolation) so its longest side is at most this many pixels
        before meshing; the points are mapped back to ``rgb``'s pixels.
    refine : bool, optional
        Re-mesh on a crop centred on the first landmarks and average with the first pass (see
        ``_refine``): one more FaceMesh run, for steadier pose.

    Returns
    -------
    FaceLandmarks or None
        Points in ``rgb``'s pixel coordinates (x right, y down, z in the same pixel scale, smaller =
        nearer the camera).

    Raises
    ------
    ValueError
        If ``rgb`` is not an image array.
    """
    image = _as_rgb_uint8(rgb)
    h, w = image.shape[:2]
    factor = min(1.0, max_side / max(h, w))
    small = _resize(image, factor) if factor < 1.0 else image
    with _LOCK:
        pts, method = _mesh_found(small, quick_look=True)
        if pts is None:
            method = "padded"
            pts = _mesh_padded(small)
        if pts is not None and refine:
            pts = _refine(small, pts)
    if pts is None:
        return None
    return FaceLandmarks(points_px=pts / factor, image_size=(w, h), method=method)


def naive_landmarks(rgb: np.ndarray) -> FaceLandmarks | None:
    """The speed benchmark's naive baseline: no size bound, no refinement.

    FaceMesh on the array exactly as given; when that finds no face, the full-range detector on the
    same full-size array (then on tiles of it) and FaceMesh on a crop around its box.
    ``benchmarks/photo_speed.py`` times this against :func:`detect_face_landmarks` on a bounded decode.
    """
    image = _as_rgb_uint8(rgb)
    h, w = image.shape[:2]
    with _LOCK:
        pts, method = _mesh_found(image, quick_look=False)
    return None if pts is None else FaceLandmarks(points_px=pts, image_size=(w, h), method=method)


def warm_facemesh() -> None:
    """Build this process's FaceMesh and detector now (what the first :func:`detect_face_landmarks`
    would do: the mediapipe import and both graphs, about 0.1 s), unless already built."""
    with _LOCK:
        _backend()


FACEMESH = LandmarkBackend(
    "mediapipe-facemesh", detect_face_landmarks, yaw_gain=YAW_GAIN, warm=warm_facemesh
)
"""MediaPipe FaceMesh (:func:`detect_face_landmarks`) with its calibration: the engine's default."""
