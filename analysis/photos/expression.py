"""Expression figures from FaceMesh landmarks: eye opening, mouth opening, smile.

All three are ratios of distances on the same face, so they do not depend on image size or camera
distance. Distances use the 3-D landmark coordinates (x, y and FaceMesh's z, which is in the same
pixel scale), which makes them less sensitive to yaw than image-plane distances.

FaceMesh indices used ("right" = the patient's right, the image's left for a frontal photo)
---------------------------------------------------------------------------------------------
* Eye aspect ratio (Soukupova & Cech, "Real-Time Eye Blink Detection using Facial Landmarks",
  CVWW 2016): ``EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)`` with
  right eye ``p1..p6 = 33, 160, 158, 133, 153, 144`` and left eye ``362, 385, 387, 263, 373, 380``.
  ``eye_open`` is the mean of both eyes: about 0.25-0.35 open, below 0.1 closed.
* Mouth: corners 61 (right) and 291 (left); inner-lip pairs (82, 87), (13, 14), (312, 317).
  ``mouth_open`` = mean inner-lip gap / mouth width: about 0 closed, 0.3+ wide open.
* Smile: ``smile`` = lift of the mouth corners above the lip centre (midpoint of 13 and 14),
  measured along the face's "up" direction (perpendicular to the line between the eye centres,
  pointing from the mouth toward the eyes, so head roll cancels), divided by the mouth width.
  ``> 0`` when the corners sit above the lip centre (smiling), ``< 0`` when they droop. Pitch
  changes it slightly.

Uncertainty
-----------
:func:`expression_sd` gives each figure's one-s.d. measurement uncertainty, in the figure's own
(dimensionless) units: ``hypot(jitter_sd, floor)``.

* ``jitter_sd``: every landmark is taken to carry an independent isotropic error of
  ``LANDMARK_JITTER_PX`` per coordinate (x, y and z) in the pixels of the image FaceMesh was given
  (:mod:`analysis.photos.uncertainty`, where it was fitted on synthetic zooms of real faces), carried
  to the figure by its exact gradient (the delta method, central differences over the landmarks the
  figure uses). The figures are ratios, so this part scales as 1 / face size: a smaller face gives a
  wider range (``tests/photos/test_expression_sharpness.py`` holds that).
* ``floor`` (``EYE_OPEN_FLOOR``, ``MOUTH_OPEN_FLOOR``, ``SMILE_FLOOR``, per photo): what a re-shoot
  of an unchanged neutral face moves beyond the jitter model. **Fitted, not adopted (0 in the
  code).** ``benchmarks/repeat_uncertainty.py`` fits it on development data in
  ``../shared/datasets`` only (Pointing'04 persons 01-10 series 1 against series 2 at pan 0 / tilt
  0, 10 pairs; Yale faces ``normal`` against ``noglasses``, 15 pairs; the floor solving RMS(Δ / s.d.
  of Δ) = 1): 0.0118 (eye), 0.0103 (mouth), 0.0111 (smile); the jitter alone gives RMS z 1.8, 2.3,
  2.0 there, i.e. it understates a re-shoot's spread about twofold. But on those 25 pairs the
  plain rule already raised no alarm (0 / 25), while with the floors the Yale faces expression
  changes against ``normal`` were flagged less often (wink 10 / 15 against 15 / 15 under the
  plain rule and 14 / 15 with the jitter range alone; happy 14 against 15 and 15; sad 3 against
  6 and 5; the benchmark prints the last two columns). A wider range that removes
  no false alarm and hides real changes is not adopted; the figures are kept for when a larger
  repeat set (12 MP clinic re-shoots) shows false alarms the jitter range does not absorb.

``compare`` grades each part's follow-up/baseline difference on its range
(:mod:`analysis.photos.uncertainty`: both photos' s.d. in quadrature, pass / warn = borderline /
fail).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIGHT_EAR_IDX: tuple[int, ...] = (33, 160, 158, 133, 153, 144)
LEFT_EAR_IDX: tuple[int, ...] = (362, 385, 387, 263, 373, 380)
MOUTH_CORNERS: tuple[int, int] = (61, 291)
INNER_LIP_PAIRS: tuple[tuple[int, int], ...] = ((82, 87), (13, 14), (312, 317))
LIP_CENTRE_PAIR: tuple[int, int] = (13, 14)
RIGHT_EYE_CORNERS: tuple[int, int] = (33, 133)
LEFT_EYE_CORNERS: tuple[int, int] = (263, 362)


#: re-shoot floors of the three figures, per photo (see "Uncertainty" in the module docstring)
EYE_OPEN_FLOOR = 0.0
MOUTH_OPEN_FLOOR = 0.0
SMILE_FLOOR = 0.0


@dataclass(frozen=True)
class ExpressionMeasure:
    """Scale-invariant expression figures (see the module docstring)."""

    eye_open: float
    mouth_open: float
    smile: float


def measure_expression(landmarks_px: np.ndarray) -> ExpressionMeasure:
    """Eye opening, mouth opening and smile of one face.

    Parameters
    ----------
    landmarks_px : ndarray, shape (478, 3) or (468, 3)
        FaceMesh points (x, y in pixels, z in the same scale). ``(N, 2)`` is accepted and then the
        figures are image-plane ratios.

    Returns
    -------
    ExpressionMeasure
        ``eye_open`` (mean eye aspect ratio), ``mouth_open`` (inner-lip gap / mouth width) and
        ``smile`` (corner lift / mouth width, > 0 smiling); all dimensionless.
    """
    pts = np.asarray(landmarks_px, dtype=float)
    if pts.ndim != 2 or pts.shape[0] not in (468, 478) or pts.shape[1] not in (2, 3):
        raise ValueError(f"expected FaceMesh landmarks of shape (478, 3), got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("landmarks contain non-finite coordinates")

    def dist(i: int, j: int) -> float:
        return float(np.linalg.norm(pts[i] - pts[j]))

    def ear(idx: tuple[int, ...]) -> float:
        p1, p2, p3, p4, p5, p6 = idx
        width = dist(p1, p4)
        return (dist(p2, p6) + dist(p3, p5)) / (2.0 * width) if width > 0 else float("nan")

    eye_open = (ear(RIGHT_EAR_IDX) + ear(LEFT_EAR_IDX)) / 2.0
    width = dist(*MOUTH_CORNERS)
    if width <= 0:
        nan = float("nan")
        return ExpressionMeasure(float(eye_open), nan, nan)
    mouth_open = float(np.mean([dist(i, j) for i, j in INNER_LIP_PAIRS])) / width

    xy = pts[:, :2]
    right_eye = xy[list(RIGHT_EYE_CORNERS)].mean(axis=0)
    left_eye = xy[list(LEFT_EYE_CORNERS)].mean(axis=0)
    across = left_eye - right_eye  # patient's right -> left, i.e. image left -> right if frontal
    norm = float(np.linalg.norm(across))
    if norm == 0:
        return ExpressionMeasure(float(eye_open), float(mouth_open), float("nan"))
    across /= norm
    centre = xy[list(LIP_CENTRE_PAIR)].mean(axis=0)
    corners = xy[list(MOUTH_CORNERS)].mean(axis=0)
    # "up" on the face: perpendicular to the eye line, pointing from the mouth toward the eyes
    up = np.array([across[1], -across[0]])
    if float(((right_eye + left_eye) / 2.0 - centre) @ up) < 0:
        up = -up
    smile = float((corners - centre) @ up) / width
    return ExpressionMeasure(float(eye_open), float(mouth_open), smile)


def _figures_batch(pts: np.ndarray, where: dict[int, int] | None = None) -> np.ndarray:
    """``(K, 3)`` eye_open, mouth_open, smile of a batch of landmark sets ``(K, N, D)`` (as
    :func:`measure_expression`, vectorised; NaN where a width is zero). ``where`` maps FaceMesh
    indices to rows of ``pts`` when it holds only the landmarks the figures use."""

    def at(*idx: int) -> list[int]:
        return [i if where is None else where[i] for i in idx]

    def dist(i: int, j: int) -> np.ndarray:
        a, b = at(i, j)
        out: np.ndarray = np.linalg.norm(pts[:, a] - pts[:, b], axis=-1)
        return out

    def ear(idx: tuple[int, ...]) -> np.ndarray:
        p1, p2, p3, p4, p5, p6 = idx
        with np.errstate(divide="ignore", invalid="ignore"):
            out: np.ndarray = (dist(p2, p6) + dist(p3, p5)) / (2.0 * dist(p1, p4))
        return out

    eye_open = (ear(RIGHT_EAR_IDX) + ear(LEFT_EAR_IDX)) / 2.0
    width = dist(*MOUTH_CORNERS)
    xy = pts[:, :, :2]
    right_eye = xy[:, at(*RIGHT_EYE_CORNERS)].mean(axis=1)
    left_eye = xy[:, at(*LEFT_EYE_CORNERS)].mean(axis=1)
    across = left_eye - right_eye
    with np.errstate(divide="ignore", invalid="ignore"):
        mouth_open = np.mean([dist(i, j) for i, j in INNER_LIP_PAIRS], axis=0) / width
        across = across / np.linalg.norm(across, axis=1, keepdims=True)
        centre = xy[:, at(*LIP_CENTRE_PAIR)].mean(axis=1)
        corners = xy[:, at(*MOUTH_CORNERS)].mean(axis=1)
        up = np.stack([across[:, 1], -across[:, 0]], axis=1)
        flip = (((right_eye + left_eye) / 2.0 - centre) * up).sum(axis=1) < 0
        up[flip] *= -1.0
        smile = ((corners - centre) * up).sum(axis=1) / width
    return np.stack([eye_open, mouth_open, smile], axis=1)


_USED_IDX: tuple[int, ...] = tuple(
    sorted(
        set(RIGHT_EAR_IDX)
        | set(LEFT_EAR_IDX)
        | set(MOUTH_CORNERS)
        | {i for pair in INNER_LIP_PAIRS for i in pair}
        | set(LIP_CENTRE_PAIR)
        | set(RIGHT_EYE_CORNERS)
        | set(LEFT_EYE_CORNERS)
    )
)


_WHERE: dict[int, int] = {i: row for row, i in enumerate(_USED_IDX)}


def expression_sd(
    landmarks_px: np.ndarray, *, jitter_px: float | None = None
) -> tuple[float, float, float]:
    """One-s.d. uncertainty of ``(eye_open, mouth_open, smile)`` (see "Uncertainty" above).

    Parameters
    ----------
    landmarks_px : ndarray, shape (478, 3)
        FaceMesh points in the pixels of the image FaceMesh was given.
    jitter_px : float, optional
        Landmark error per coordinate, pixels; default
        :data:`analysis.photos.uncertainty.LANDMARK_JITTER_PX`.
    """
    from analysis.photos.uncertainty import LANDMARK_JITTER_PX

    pts = np.asarray(landmarks_px, dtype=float)
    if pts.ndim != 2 or pts.shape[0] not in (468, 478) or pts.shape[1] not in (2, 3):
        raise ValueError(f"expected FaceMesh landmarks of shape (478, 3), got {pts.shape}")
    s = LANDMARK_JITTER_PX if jitter_px is None else float(jitter_px)
    dims = pts.shape[1]
    # central differences, one landmark coordinate at a time, all in one batch of the used points
    step = 1e-3 * max(1.0, float(np.ptp(pts[:, :2], axis=0).max()))
    used = pts[list(_USED_IDX)]
    batch = np.repeat(used[None], 2 * len(_USED_IDX) * dims, axis=0)
    k = 0
    for row in range(len(_USED_IDX)):
        for d in range(dims):
            batch[k, row, d] += step
            batch[k + 1, row, d] -= step
            k += 2
    values = _figures_batch(batch, _WHERE)
    grad = (values[0::2] - values[1::2]) / (2.0 * step)  # (coordinates, 3 figures)
    jitter = s * np.sqrt((grad**2).sum(axis=0))
    floors = (EYE_OPEN_FLOOR, MOUTH_OPEN_FLOOR, SMILE_FLOOR)
    eye, mouth, smile = (float(np.hypot(j, f)) for j, f in zip(jitter, floors, strict=True))
    return eye, mouth, smile
