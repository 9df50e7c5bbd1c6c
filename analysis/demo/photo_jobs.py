"""Render, ingest, measure and compare one photo track (one view of one series) like a clinic would.

:func:`render_track` runs in a worker process: for each planned shot it synthesises the photo
(:mod:`analysis.demo.synth` / :mod:`analysis.demo.scalp_synth`), encodes it as the camera's JPEG,
passes the bytes through the real ingest (``clean_original`` for the stored copy, ``read_photo`` for
analysis), measures it (``measure_photo``) and compares it with the track's baseline (``compare``
with the protocol's tolerances). Session 1's photo is the baseline (verdict ``"baseline"``; a baseline
that cannot be measured is retaken with a careful shot). A follow-up that fails is either retaken
(a second, careful shot replaces it; the first attempt is kept in ``truth["first_attempt"]``) or
stored with the planned override reason, as drawn in the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from analysis.demo.plan import PhotoShot, PhotoTrack
from analysis.demo.scalp_synth import ScalpScene, scalp_scene, synth_scalp
from analysis.demo.synth import FacePerturbation, encode_jpeg, synth_face
from analysis.photos.types import PhotoMeasurement


@dataclass(frozen=True)
class RenderedPhoto:
    """Everything ``records.PhotoInput`` needs, plus which session it belongs to."""

    session_number: int
    view: str
    data: bytes
    original_sha256: str
    media_type: str
    width_px: int
    height_px: int
    verdict: str
    measurements: dict[str, Any]
    checks: list[Any]
    override_reason: str
    truth: dict[str, Any]
    taken_at: datetime
    condition_tags: tuple[str, ...]
    retaken: bool


def _perturbation(fields: dict[str, Any]) -> FacePerturbation:
    kw = dict(fields)
    kw["wb_gains"] = tuple(kw["wb_gains"])
    return FacePerturbation(**kw)


def _shoot(
    track: PhotoTrack,
    scene: ScalpScene | None,
    shot: PhotoShot,
    pert: dict[str, Any],
    rng: np.random.Generator,
) -> tuple[Any, Any, dict[str, Any]]:
    from analysis.photos.ingest import clean_original, read_photo
    from analysis.photos.measure import measure_photo

    p = _perturbation(pert)
    if scene is not None:
        rgb, truth = synth_scalp(
            scene, density_per_cm2=float(shot.density_per_cm2 or 130.0), perturbation=p, rng=rng
        )
    else:
        rgb, truth = synth_face(p, rng=rng)
    jpeg = encode_jpeg(rgb, quality=p.jpeg_quality)
    clean = clean_original(jpeg)
    measured = measure_photo(read_photo(jpeg), view=track.view)
    truth.update(habit=shot.habit, view=track.view)
    return clean, measured, truth


def render_track(track: PhotoTrack) -> list[RenderedPhoto]:
    """All photos of ``track``, in session order (deterministic given ``track.seed``)."""
    from analysis.photos.compare import Tolerances, compare

    rng = np.random.default_rng(track.seed)
    tolerances = Tolerances.from_dict(track.tolerances)
    scene = None
    if track.view.startswith("scalp_"):
        scene = scalp_scene(
            view=track.view,
            rng=rng,
            skin_rgb=track.skin_rgb,
            hair_rgb=track.hair_rgb,
            periphery_density_per_cm2=track.periphery_density_per_cm2,
        )
    out: list[RenderedPhoto] = []
    baseline: PhotoMeasurement | None = None
    for shot in track.shots:
        clean, m, truth = _shoot(track, scene, shot, shot.perturbation, rng)
        retaken, reason = False, ""
        checks: list[Any] = []
        if baseline is None:
            if not m.ok or (scene is None and not m.face_found):
                first = {"truth": truth, "error": m.error}
                clean, m, truth = _shoot(track, scene, shot, shot.retake_perturbation, rng)
                truth["first_attempt"] = first
                retaken = True
            baseline, verdict = m, "baseline"
        else:
            comparison = compare(baseline, m, tolerances=tolerances)
            verdict = comparison.verdict
            if verdict == "fail" and shot.retake_if_fail:
                first = {"truth": truth, "verdict": verdict, "reasons": comparison.reasons}
                clean, m, truth = _shoot(track, scene, shot, shot.retake_perturbation, rng)
                comparison = compare(baseline, m, tolerances=tolerances)
                verdict = comparison.verdict
                truth["first_attempt"] = first
                retaken = True
            if verdict == "fail":
                reason = shot.override_reason
            checks = comparison.to_json_dict()["checks"]
        truth["attempt"] = 2 if retaken else 1
        out.append(
            RenderedPhoto(
                session_number=shot.session_number,
                view=track.view,
                data=clean.data,
                original_sha256=clean.original_sha256,
                media_type=clean.media_type,
                width_px=clean.width_px,
                height_px=clean.height_px,
                verdict=verdict,
                measurements=m.to_json_dict(),
                checks=checks,
                override_reason=reason,
                truth=truth,
                taken_at=shot.taken_at,
                condition_tags=shot.condition_tags,
                retaken=retaken,
            )
        )
    return out
