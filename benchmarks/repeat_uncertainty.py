"""Calibrate and check the expression and sharpness uncertainty on repeat shots of unchanged faces.

Pairs (development data in ``../shared/datasets`` only; the expression and sharpness of a neutral
face should not change between them):

* Pointing'04 persons 01-10: series 1 against series 2 at pan 0 / tilt 0 (10 pairs);
* Yale faces: ``normal`` against ``noglasses`` of each subject (same session and light, 15 pairs).

Each photo goes through ``measure_path`` (the full check). For every figure the script prints the
RMS of ``z = delta / sd(delta)`` with the jitter model alone and the per-photo floor that makes
RMS z = 1 (the constants ``EYE_OPEN_FLOOR``, ``MOUTH_OPEN_FLOOR``, ``SMILE_FLOOR`` of
:mod:`analysis.photos.expression` and ``SHARPNESS_FLOOR_REL`` of :mod:`analysis.photos.sharpness`),
then the RMS z and the share of pairs within ``|z| <= 1.645`` with the constants now in the code.
Sharpness is taken as the log of the ratio (its s.d. the relative s.d. of both photos in quadrature).
Because the floors are already in the code's s.d., they are removed (in quadrature) first.

Then what a sharpness floor would cost: Gaussian blur (sigma 0.7, 1.0, 1.5 px) of the Pointing'04
frontal photos, flagged with the code's s.d. and with the fitted floor (see
:mod:`analysis.photos.sharpness`, "Uncertainty", for why that floor is not adopted).

Usage: .venv/bin/python benchmarks/repeat_uncertainty.py
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.photos import expression, sharpness  # noqa: E402
from analysis.photos.measure import measure_path  # noqa: E402
from analysis.photos.types import PhotoMeasurement  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
POINTING_RE = re.compile(r"person(\d\d)([12])(\d\d)([+-]\d+)([+-]\d+)\.jpg")


def pairs() -> list[tuple[str, Path, Path]]:
    out: list[tuple[str, Path, Path]] = []
    for person in sorted(p for p in (DATASETS / "pointing04").glob("Person*") if p.is_dir()):
        frontal = {}
        for path in person.glob("*.jpg"):
            m = POINTING_RE.search(path.name)
            if m and int(m.group(4)) == 0 and int(m.group(5)) == 0:
                frontal[m.group(2)] = path
        if "1" in frontal and "2" in frontal:
            out.append(("pointing04", frontal["1"], frontal["2"]))
    for base in sorted((DATASETS / "yalefaces").glob("subject*.normal.jpeg")):
        other = base.with_name(base.name.replace(".normal.", ".noglasses."))
        if other.exists():
            out.append(("yalefaces", base, other))
    return out


def _solve_floor(delta: np.ndarray, var_jitter: np.ndarray) -> float:
    """Per-photo floor f with RMS(delta / sqrt(var_jitter + 2 f^2)) = 1 (0 if already <= 1)."""
    if np.sqrt(np.mean(delta**2 / var_jitter)) <= 1.0:
        return 0.0
    lo, hi = 0.0, float(np.abs(delta).max()) + 1e-9
    for _ in range(100):
        mid = (lo + hi) / 2
        rms = np.sqrt(np.mean(delta**2 / (var_jitter + 2 * mid**2)))
        lo, hi = (mid, hi) if rms > 1.0 else (lo, mid)
    return (lo + hi) / 2


def main() -> int:
    found = pairs()
    if not found:
        print(f"shared datasets not found at {DATASETS}", file=sys.stderr)
        return 1
    rows: dict[str, list[tuple[float, float, float]]] = {
        "eye_open": [],
        "mouth_open": [],
        "smile": [],
        "sharpness": [],
    }
    floors = {
        "eye_open": expression.EYE_OPEN_FLOOR,
        "mouth_open": expression.MOUTH_OPEN_FLOOR,
        "smile": expression.SMILE_FLOOR,
    }
    skipped = 0
    for _, a, b in found:
        ma, mb = measure_path(a), measure_path(b)
        if not (ma.ok and mb.ok):
            skipped += 1
            continue
        for name in ("eye_open", "mouth_open", "smile"):
            va, vb = getattr(ma, name), getattr(mb, name)
            sa, sb = getattr(ma, f"{name}_sd"), getattr(mb, f"{name}_sd")
            if None in (va, vb, sa, sb):
                continue
            f = floors[name]
            var_j = max(sa**2 - f**2, 0.0) + max(sb**2 - f**2, 0.0)
            rows[name].append((vb - va, var_j, sa**2 + sb**2))
        rel = _rel_sds(ma, mb)
        if rel is not None:
            rows["sharpness"].append(rel)
    print(f"{len(found)} repeat pairs ({skipped} without a face on either photo)")
    print(
        f"{'figure':12} {'n':>3} {'RMS delta':>10} {'RMS z jitter only':>18} {'fitted floor':>13} "
        f"{'in code':>8} {'RMS z now':>10} {'|z|<=1.645 now':>15}"
    )
    code = dict(floors, sharpness=sharpness.SHARPNESS_FLOOR_REL)
    for name, data in rows.items():
        if not data:
            continue
        arr = np.array(data)
        delta, var_j, var_now = arr[:, 0], arr[:, 1], arr[:, 2]
        z_now = delta / np.sqrt(var_now)
        print(
            f"{name:12} {len(arr):3d} {math.sqrt(float(np.mean(delta**2))):10.4f} "
            f"{math.sqrt(float(np.mean(delta**2 / var_j))):18.2f} {_solve_floor(delta, var_j):13.4f} "
            f"{code[name]:8.4f} {math.sqrt(float(np.mean(z_now**2))):10.2f} "
            f"{100 * float(np.mean(np.abs(z_now) <= 1.645)):14.1f}%"
        )
    print("   (sharpness: log ratio and relative s.d., floor as a share of the figure)")
    blur_power(rows["sharpness"])
    expression_power(rows)
    return 0


def expression_power(rows: dict[str, list[tuple[float, float, float]]]) -> None:
    """What the expression floors would cost: Yale faces expressions against ``normal``, flagged
    with the code's s.d. and with the fitted floors (and the repeat pairs' false alarms)."""
    from dataclasses import replace

    from analysis.photos.checks.expression import _expression_check
    from analysis.photos.compare import Tolerances

    tol = Tolerances()
    fitted = {}
    for name in ("eye_open", "mouth_open", "smile"):
        arr = np.array(rows[name])
        fitted[name] = _solve_floor(arr[:, 0], arr[:, 1]) if len(arr) else 0.0

    def with_floor(m: PhotoMeasurement) -> PhotoMeasurement:
        changes = {
            f"{n}_sd": math.hypot(getattr(m, f"{n}_sd") or 0.0, f) for n, f in fitted.items()
        }
        return replace(m, **changes)

    def flagged(b: PhotoMeasurement, f: PhotoMeasurement) -> tuple[bool, bool]:
        now = _expression_check(b, f, tol, scalp=False).status != "pass"
        floor = _expression_check(with_floor(b), with_floor(f), tol, scalp=False).status
        return now, floor != "pass"

    print(
        "\nexpression check flagged (warn or fail): with the code's s.d. / with the fitted floors"
    )
    repeat = [flagged(measure_path(a), measure_path(b)) for _, a, b in pairs()]
    print(
        f"   repeat pairs (false alarms)   {sum(r[0] for r in repeat):2d} / "
        f"{sum(r[1] for r in repeat):2d} of {len(repeat)}"
    )
    root = DATASETS / "yalefaces"
    bases = sorted(root.glob("subject*.normal.jpeg"))
    for cond in ("happy", "surprised", "sleepy", "wink", "sad"):
        got = []
        for base in bases:
            other = base.with_name(base.name.replace(".normal.", f".{cond}."))
            mb, mf = measure_path(base), measure_path(other)
            if other.exists() and mb.ok and mf.ok:
                got.append(flagged(mb, mf))
        print(
            f"   Yale faces {cond:9} vs normal {sum(g[0] for g in got):2d} / "
            f"{sum(g[1] for g in got):2d} of {len(got)}"
        )


def blur_power(sharp_rows: list[tuple[float, float, float]]) -> None:
    """What a sharpness floor costs: synthetic Gaussian blur of the Pointing'04 frontal photos
    (series 1), graded against the unblurred photo with the code's s.d. and with the fitted floor."""
    from dataclasses import replace

    import cv2
    from PIL import Image

    from analysis.photos.checks.sharpness import _sharpness_check
    from analysis.photos.compare import Tolerances

    arr = np.array(sharp_rows)
    fitted = _solve_floor(arr[:, 0], arr[:, 1]) if len(arr) else 0.0
    tol = Tolerances()
    paths = [a for name, a, _ in pairs() if name == "pointing04"]
    print(
        f"\nsynthetic blur of {len(paths)} Pointing'04 frontal photos against themselves: flagged "
        f"(warn or fail) with the code's s.d. / with the fitted sharpness floor {fitted:.3f}"
    )
    for sigma in (0.7, 1.0, 1.5):
        counts = [0, 0]
        ratios = []
        for path in paths:
            with Image.open(path) as image:
                rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
            base = _measure_rgb(rgb)
            follow = _measure_rgb(np.ascontiguousarray(cv2.GaussianBlur(rgb, (0, 0), sigma)))
            if base.sharpness is None or follow.sharpness is None:
                continue
            for k, floor in enumerate((None, fitted)):
                b, f = base, follow
                if floor is not None:
                    b = replace(
                        b, sharpness_sd=math.hypot(b.sharpness_sd or 0, floor * b.sharpness)
                    )
                    f = replace(
                        f, sharpness_sd=math.hypot(f.sharpness_sd or 0, floor * f.sharpness)
                    )
                check = _sharpness_check(b, f, tol)
                counts[k] += check.status != "pass"
                if k == 0:
                    ratios.append(float(check.value or 0))
        print(
            f"   sigma {sigma:.1f} px: median sharpness ratio {np.median(ratios):.2f}; flagged "
            f"{counts[0]}/{len(ratios)} now, {counts[1]}/{len(ratios)} with the floor"
        )


def _measure_rgb(rgb: np.ndarray) -> PhotoMeasurement:
    from analysis.photos.ingest import IngestedPhoto
    from analysis.photos.measure import measure_photo

    h, w = rgb.shape[:2]
    photo = IngestedPhoto("0" * 64, "JPEG", w, h, rgb, 1.0, None, None, None, 1)
    return measure_photo(photo, view="face_frontal")


def _rel_sds(ma: PhotoMeasurement, mb: PhotoMeasurement) -> tuple[float, float, float] | None:
    values = (ma.sharpness, mb.sharpness, ma.sharpness_sd, mb.sharpness_sd)
    if any(v is None for v in values):
        return None
    va, vb, sa, sb = (float(v) for v in values)  # type: ignore[arg-type]
    if va <= 0 or vb <= 0:
        return None
    f = sharpness.SHARPNESS_FLOOR_REL
    var_j = max((sa / va) ** 2 - f**2, 0.0) + max((sb / vb) ** 2 - f**2, 0.0)
    return math.log(vb / va), var_j, (sa / va) ** 2 + (sb / vb) ** 2


if __name__ == "__main__":
    raise SystemExit(main())
