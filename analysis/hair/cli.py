"""``python -m analysis count-follicles IMAGE [IMAGE ...] --json [--mm-per-px MM]``.

One JSON line per image, input order: ``{"path", "ok", "follicles", "points_px", "units_px",
"hairs_per_unit", "method", "version"}`` plus, when ``--mm-per-px`` is given, ``density_per_cm2`` and
``terminal`` / ``vellus`` (counted objects split by shaft width at 40 µm). ``units_px`` are follicular
units (one candidate shaft group each) and ``hairs_per_unit`` their counted hairs, in the same order.
Bad files: ``"ok": false`` with ``error``; exit code 0 regardless, as ``measure`` does.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``count-follicles`` to ``python -m analysis``."""
    p = subparsers.add_parser(
        "count-follicles", help="count follicular openings on trichoscopy images"
    )
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--mm-per-px",
        type=float,
        default=None,
        metavar="MM",
        help="device calibration, millimetres per pixel (enables density_per_cm2)",
    )
    p.set_defaults(func=run)


def count_path(path: str, *, mm_per_px: float | None = None) -> dict[str, Any]:
    """Count one file; never raises for a bad file (returns ``ok: False`` with ``error``)."""
    if mm_per_px is not None and not (mm_per_px > 0 and math.isfinite(mm_per_px)):
        return {
            "path": path,
            "ok": False,
            "error": f"--mm-per-px must be a positive number, got {mm_per_px}",
        }
    try:
        import cv2  # heavy optional dependency, imported where used
        import numpy as np

        from analysis.hair.count import count_follicles

        data = np.fromfile(path, dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if img is None:
            return {"path": path, "ok": False, "error": "not a readable image (JPEG/PNG expected)"}
        r = count_follicles(img[..., ::-1], mm_per_px=mm_per_px)
    except FileNotFoundError:
        return {"path": path, "ok": False, "error": "no such file"}
    except IsADirectoryError:
        return {"path": path, "ok": False, "error": "is a directory, not an image"}
    except (OSError, ValueError) as exc:
        return {"path": path, "ok": False, "error": str(exc) or type(exc).__name__}
    out: dict[str, Any] = {
        "path": path,
        "ok": True,
        "follicles": r.follicles,
        "points_px": [[round(x, 1), round(y, 1)] for x, y in r.points_px],
        "units_px": [[round(x, 1), round(y, 1)] for x, y in r.units_px],
        "hairs_per_unit": list(r.hairs_per_unit),
        "method": r.method,
        "version": r.version,
    }
    if mm_per_px is not None:
        out["density_per_cm2"] = None if r.density_per_cm2 is None else round(r.density_per_cm2, 2)
        out["terminal"], out["vellus"] = r.terminal, r.vellus
    return out


def run(args: argparse.Namespace) -> int:
    for path in args.images:
        res = count_path(path, mm_per_px=args.mm_per_px)
        if args.json:
            print(json.dumps(res), flush=True)
        else:
            print(f"{path}: {res['follicles'] if res['ok'] else 'FAILED ' + res['error']}")
    return 0
