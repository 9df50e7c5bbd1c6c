"""``python -m analysis count-follicles IMAGE [IMAGE ...] --json [--mm-per-px MM |
--device NAME --magnification X --as EMAIL]``.

One JSON line per image, input order: ``{"path", "ok", "follicles", "points_px", "units_px",
"hairs_per_unit", "method", "version"}`` plus, when ``--mm-per-px`` is given, ``density_per_cm2`` and
``terminal`` / ``vellus`` (counted objects split by shaft width at 40 µm). ``units_px`` are follicular
units (one candidate shaft group each) and ``hairs_per_unit`` their counted hairs, in the same order.
Bad files: ``"ok": false`` with ``error``; exit code 0 regardless, as ``measure`` does.

``--device NAME --magnification X`` takes the scale from the device calibration the medical director
stored (Protocol setup) in the configured database (``CANDOR_DATABASE_URL``, as every command); the
account named by ``--as`` must be allowed to capture photos, and the read is audited. The lines then
also carry ``mm_per_px`` and ``calibration`` (``{"device", "magnification", "id"}``). No such
calibration (or account) is one sentence on stderr and exit code 2, before any image is read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
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
    p.add_argument(
        "--device",
        default=None,
        metavar="NAME",
        help="use the stored calibration of this trichoscope (with --magnification and --as)",
    )
    p.add_argument("--magnification", type=float, default=None, metavar="X", help="e.g. 70")
    p.add_argument(
        "--as",
        dest="as_email",
        default=None,
        metavar="EMAIL",
        help="the Candor account reading the stored calibration (role checked, audited)",
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


def _stored_scale(args: argparse.Namespace) -> tuple[float, dict[str, Any]] | str:
    """The stored calibration's mm/px and its description, or the sentence saying why not."""
    if args.mm_per_px is not None:
        return "give either --mm-per-px or --device/--magnification, not both"
    if args.magnification is None:
        return "--device needs --magnification (e.g. --magnification 70)"
    if not args.as_email:
        return "--device needs --as EMAIL (the account reading the stored calibration)"
    from analysis.services.trichoscopy_door import stored_calibration_or_reason

    cal = stored_calibration_or_reason(
        device=args.device, magnification=args.magnification, as_email=args.as_email
    )
    if isinstance(cal, str):
        return cal
    return cal.mm_per_px, {
        "device": cal.device,
        "magnification": cal.magnification,
        "id": cal.calibration_id,
    }


def run(args: argparse.Namespace) -> int:
    mm_per_px, extra = args.mm_per_px, {}
    if args.device is not None:
        found = _stored_scale(args)
        if isinstance(found, str):
            print(f"count-follicles: {found}", file=sys.stderr)
            return 2
        mm_per_px, cal = found
        extra = {"mm_per_px": mm_per_px, "calibration": cal}
    elif args.magnification is not None:
        print("count-follicles: --magnification needs --device NAME", file=sys.stderr)
        return 2
    for path in args.images:
        res = count_path(path, mm_per_px=mm_per_px)
        if res["ok"]:
            res.update(extra)
        if args.json:
            print(json.dumps(res), flush=True)
        else:
            print(f"{path}: {res['follicles'] if res['ok'] else 'FAILED ' + res['error']}")
    return 0
