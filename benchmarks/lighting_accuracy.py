"""How well the lighting check flags a changed light direction, on Extended Yale B and Yale faces.

Protocol (per subject, frontal camera pose throughout)
------------------------------------------------------
* Extended Yale B (``extended_yaleb_cropped``): the baseline is the frontal-light image
  ``A+000E+00``. Every other image is compared with it by :func:`analysis.photos.compare.compare`
  and the ``lighting`` check's status is read.
  - *side light*  (|azimuth| >= 25 deg, elevation <= 45 deg) must be flagged (warn or fail);
  - *near-frontal* (|azimuth| <= 5 deg, |elevation| <= 10 deg) must pass.
  Direction: azimuth > 0 puts the light on the subject's right, so the image-left half is lit and
  ``light_side`` must fall (README of the set); the rate of correct signs is printed too.
* Yale faces (``yalefaces``): ``leftlight`` / ``rightlight`` against ``centerlight`` (image-left
  lit for ``leftlight``) must be flagged, with the right sign.

Landmarks come from ``analysis.photos.landmarks.detect_face_landmarks`` when that module exists,
else from MediaPipe FaceMesh directly (static mode, refine_landmarks), on a copy padded with a 30%
black border (the crops are too tight for FaceMesh otherwise; see the set's README); the figures are
then measured on the unpadded crop. Images where no face is found are counted and left out of the
rates (a real comparison would fail them with "no face found").

The naive baseline in the same run needs no landmarks: ``(R - L) / (R + L)`` of the mean grey level
of the image's right and left halves, held to the same ``light_side`` thresholds.

Subjects yaleB01-yaleB10 are reported apart ("dev") from yaleB11-yaleB29 ("other"): the default
thresholds in ``Tolerances`` were set on principle and looked at on dev only.

Usage::

    .venv/bin/python -m benchmarks.lighting_accuracy [--limit N] [--cache DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from analysis.photos.compare import Tolerances, compare
from analysis.photos.lighting import measure_lighting
from analysis.photos.types import PhotoMeasurement

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
YALEB_RE = re.compile(r"yaleB(\d\d)_P00A([+-]\d{3})E([+-]\d{2})\.pgm$")
PAD_FRACTION = 0.3


def _detector():
    try:
        from analysis.photos.landmarks import detect_face_landmarks  # type: ignore[attr-defined]

        def detect(rgb: np.ndarray) -> np.ndarray | None:
            found = detect_face_landmarks(rgb)
            return None if found is None else np.asarray(found.points_px, float)

        return detect, "analysis.photos.landmarks"
    except ImportError:
        import mediapipe as mp

        mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True
        )

        def detect(rgb: np.ndarray) -> np.ndarray | None:
            res = mesh.process(np.ascontiguousarray(rgb))
            if not res.multi_face_landmarks:
                return None
            h, w = rgb.shape[:2]
            lm = res.multi_face_landmarks[0].landmark
            return np.array([[p.x * w, p.y * h, p.z * w] for p in lm])

        return detect, "mediapipe FaceMesh (direct)"


def _load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _landmarks_padded(detect, rgb: np.ndarray) -> np.ndarray | None:
    h, w = rgb.shape[:2]
    py, px = int(round(PAD_FRACTION * h)), int(round(PAD_FRACTION * w))
    padded = np.pad(rgb, ((py, py), (px, px), (0, 0)))
    pts = detect(padded)
    if pts is None:
        return None
    pts = pts.copy()
    pts[:, 0] -= px
    pts[:, 1] -= py
    return pts


def _naive_light_side(rgb: np.ndarray) -> float:
    grey = rgb.astype(float).mean(axis=2)
    w = grey.shape[1]
    left, right = grey[:, : w // 2].mean(), grey[:, w - w // 2 :].mean()
    return float((right - left) / (right + left)) if right + left > 0 else 0.0


def _measurement(path: Path, rgb: np.ndarray, lm: np.ndarray | None) -> PhotoMeasurement:
    h, w = rgb.shape[:2]
    if lm is None:
        return PhotoMeasurement(path=str(path), ok=True, view="face_frontal", face_found=False,
                                width_px=w, height_px=h, error="no face found")
    light = measure_lighting(rgb, landmarks_px=lm)
    return PhotoMeasurement(
        path=str(path), ok=True, view="face_frontal", face_found=True, width_px=w, height_px=h,
        exposure_l=light.exposure_l, clipped_share=light.clipped_share,
        lab_median=light.lab_median, light_side=light.light_side,
    )


def _cached_landmarks(detect, path: Path, rgb: np.ndarray, cache: Path | None, pad: bool):
    key = None
    if cache is not None:
        key = cache / (path.parent.name + "__" + path.name + (".pad" if pad else "") + ".npy")
        if key.exists():
            arr = np.load(key)
            return None if arr.size == 0 else arr
    lm = _landmarks_padded(detect, rgb) if pad else detect(rgb)
    if key is not None:
        np.save(key, np.zeros(0) if lm is None else lm)
    return lm


class Tally:
    def __init__(self) -> None:
        self.n: dict[str, int] = defaultdict(int)

    def add(self, key: str, hit: bool) -> None:
        self.n[key + ":n"] += 1
        self.n[key + ":hit"] += int(hit)

    def rate(self, key: str) -> str:
        n = self.n[key + ":n"]
        return f"{self.n[key + ':hit'] / n:6.1%} ({self.n[key + ':hit']}/{n})" if n else "   n/a"


def _light_status(value: float, tol: Tolerances) -> str:
    if abs(value) > tol.light_side_fail:
        return "fail"
    return "warn" if abs(value) > tol.light_side_warn else "pass"


def run_yaleb(detect, limit: int | None, cache: Path | None, tol: Tolerances) -> None:
    root = DATASETS / "extended_yaleb_cropped"
    subjects = sorted(p for p in root.glob("yaleB*") if p.is_dir())
    if limit:
        subjects = subjects[:limit]
    ours, naive, missing = Tally(), Tally(), Tally()
    for subj in subjects:
        base_path = subj / f"{subj.name}_P00A+000E+00.pgm"
        if not base_path.exists():
            continue
        base_rgb = _load_rgb(base_path)
        base_lm = _cached_landmarks(detect, base_path, base_rgb, cache, pad=True)
        base = _measurement(base_path, base_rgb, base_lm)
        group = "dev" if int(subj.name[5:]) <= 10 else "other"
        if not base.face_found:
            print(f"  {subj.name}: no face on the baseline; subject skipped")
            continue
        base_naive = _naive_light_side(base_rgb)
        for path in sorted(subj.glob("*.pgm")):
            m = YALEB_RE.search(path.name)
            if not m or path == base_path:
                continue
            az, el = int(m.group(2)), int(m.group(3))
            if abs(az) >= 25 and el <= 45:
                cls = "side"
            elif abs(az) <= 5 and abs(el) <= 10:
                cls = "frontal"
            else:
                continue
            rgb = _load_rgb(path)
            lm = _cached_landmarks(detect, path, rgb, cache, pad=True)
            missing.add(f"{group}:{cls}", lm is None)
            naive_d = _naive_light_side(rgb) - base_naive
            naive_flag = _light_status(naive_d, tol) != "pass"
            naive_sign_ok = naive_d < 0 if az > 0 else naive_d > 0
            if lm is None:
                continue
            follow = _measurement(path, rgb, lm)
            check = compare(base, follow, tolerances=tol).check("lighting")
            flagged = check.status in ("warn", "fail")
            for g in (group, "all"):
                if cls == "side":
                    ours.add(f"{g}:side", flagged)
                    naive.add(f"{g}:side", naive_flag)
                    ours.add(f"{g}:sign", (check.value or 0) < 0 if az > 0 else (check.value or 0) > 0)
                    naive.add(f"{g}:sign", naive_sign_ok)
                    wanted = "patient's right" if az > 0 else "patient's left"
                    ours.add(f"{g}:message", flagged and wanted in check.message)
                else:
                    ours.add(f"{g}:frontal", not flagged)
                    naive.add(f"{g}:frontal", not naive_flag)
    print(f"Extended Yale B, {len(subjects)} subjects (baseline A+000E+00)")
    print(f"  thresholds: |d light_side| warn > {tol.light_side_warn}, fail > {tol.light_side_fail}")
    print(f"  {'':8} {'':28} {'landmarks (ours)':>24} {'naive whole-frame':>24}")
    for g in ("dev", "other", "all"):
        print(f"  {g:8} {'side light flagged':28} {ours.rate(g + ':side'):>24} {naive.rate(g + ':side'):>24}")
        print(f"  {g:8} {'near-frontal passed':28} {ours.rate(g + ':frontal'):>24} {naive.rate(g + ':frontal'):>24}")
        print(f"  {g:8} {'side light: sign correct':28} {ours.rate(g + ':sign'):>24} {naive.rate(g + ':sign'):>24}")
        print(f"  {g:8} {'side light: message side ok':28} {ours.rate(g + ':message'):>24}")
    for g in ("dev", "other"):
        print(f"  {g:8} no face found: side {missing.rate(g + ':side')}, frontal {missing.rate(g + ':frontal')}")


def run_yalefaces(detect, limit: int | None, cache: Path | None, tol: Tolerances) -> None:
    root = DATASETS / "yalefaces"
    subjects = sorted({p.name.split(".")[0] for p in root.glob("subject*.centerlight.jpeg")})
    if limit:
        subjects = subjects[:limit]
    ours, naive = Tally(), Tally()
    nofc = 0
    for subj in subjects:
        base_path = root / f"{subj}.centerlight.jpeg"
        base_rgb = _load_rgb(base_path)
        base = _measurement(base_path, base_rgb, _cached_landmarks(detect, base_path, base_rgb, cache, False))
        if not base.face_found:
            nofc += 1
            continue
        for cond, sign in (("leftlight", -1), ("rightlight", +1)):
            path = root / f"{subj}.{cond}.jpeg"
            rgb = _load_rgb(path)
            follow = _measurement(path, rgb, _cached_landmarks(detect, path, rgb, cache, False))
            naive_d = _naive_light_side(rgb) - _naive_light_side(base_rgb)
            naive.add("flag", _light_status(naive_d, tol) != "pass")
            naive.add("sign", np.sign(naive_d) == sign)
            if not follow.face_found:
                nofc += 1
                continue
            check = compare(base, follow, tolerances=tol).check("lighting")
            ours.add("flag", check.status in ("warn", "fail"))
            ours.add("sign", np.sign(check.value or 0) == sign)
    print(f"Yale faces, {len(subjects)} subjects (baseline centerlight; {nofc} without a face)")
    print(f"  {'left/right light flagged':28} {ours.rate('flag'):>24} {naive.rate('flag'):>24}")
    print(f"  {'sign correct':28} {ours.rate('sign'):>24} {naive.rate('sign'):>24}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N subjects of each set")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/candor_lighting_bench_cache"),
                        help="directory for cached landmarks ('' to disable)")
    args = parser.parse_args(argv)
    if not DATASETS.is_dir():
        print(f"shared datasets not found at {DATASETS}", file=sys.stderr)
        return 2
    cache = args.cache if str(args.cache) else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    detect, source = _detector()
    tol = Tolerances()
    print(f"landmarks: {source}")
    run_yaleb(detect, args.limit, cache, tol)
    run_yalefaces(detect, args.limit, cache, tol)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
