"""Project-made synthetic trichoscopy-like images with known hair-shaft positions (no patient data).

Moved from tests/hair/test_hair_count.py so the service and page tests can use it too (no test
imports another test module).
"""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session as DbSession

from analysis.store.access import Actor
from analysis.store.images import ImageStore

SKIN = (196, 172, 160)
HAIR = (38, 32, 30)


def synthetic_scalp(
    n: int,
    *,
    seed: int = 0,
    bar: bool = False,
    bottom_bar: bool = False,
    scale_bar: bool = False,
    width: int = 16,
    size: tuple[int, int] = (1024, 1280),
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """RGB image with ``n`` clipped hair shafts (dark bars) on textured skin; returns shaft centres."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = size
    img = np.empty((h, w, 3), np.float32)
    img[:] = SKIN
    shade = cv2.GaussianBlur(rng.normal(0, 12, (h, w)).astype(np.float32), (0, 0), 40) * 6
    img += shade[..., None]
    img += rng.normal(0, 3, (h, w, 1))
    centres: list[tuple[float, float]] = []
    top = 90 if bar else 60
    while len(centres) < n:
        c = rng.uniform([120, top + 60], [w - 120, h - 140])
        if all(np.hypot(*(c - q)) > 170 for q in centres):
            centres.append((float(c[0]), float(c[1])))
    for cx, cy in centres:
        ang = rng.uniform(0, np.pi)
        half = rng.uniform(50, 80)
        dx, dy = half * np.cos(ang), half * np.sin(ang)
        cv2.line(
            img,
            (int(cx - dx), int(cy - dy)),
            (int(cx + dx), int(cy + dy)),
            HAIR,
            width,
            cv2.LINE_AA,
        )
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if bar:  # a device header: grey label boxes with white text across the top edge
        out[:44] = (20, 20, 20)
        for x0 in range(0, w - 200, 230):
            out[4:40, x0 + 4 : x0 + 220] = (78, 80, 80)
        cv2.putText(
            out,
            "A001  1280x1024  2026/01/05  mm  70x",
            (10, 32),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.9,
            (255, 255, 255),
            2,
        )
    if bottom_bar:
        out[-20:] = (220, 220, 220)
    if scale_bar:  # a "1.0 mm" L-shaped scale bar in the bottom-left corner, like the device draws
        cv2.line(out, (36, h - 460), (36, h - 100), (45, 47, 62), 2)
        cv2.line(out, (36, h - 100), (396, h - 100), (45, 47, 62), 2)
        out[h - 120 : h - 88, 408:536] = (64, 64, 64)
        cv2.putText(out, "1.0 mm", (414, h - 95), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return out, centres


def trichoscopy_png(n: int, *, seed: int = 0) -> tuple[bytes, list[tuple[float, float]]]:
    """A 1280×1024 synthetic trichoscopy image with ``n`` shafts, PNG-encoded, and their centres."""
    import io

    from PIL import Image

    rgb, centres = synthetic_scalp(n, seed=seed)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue(), centres


def add_trichoscopy_photo(
    session: DbSession,
    actor: Actor,
    store: ImageStore,
    *,
    session_id: int,
    data: bytes,
    view: str = "scalp_trichoscopy",
    site: str = "",
    sharpness: float | None = None,
) -> int:
    """Store ``data`` as a baseline photo of ``view`` in ``session_id`` (through records), with
    its scalp ``site`` label and measured ``sharpness`` when given."""
    from analysis.services import records

    row = records.store_photo(
        session,
        actor,
        store,
        session_id=session_id,
        photo=records.PhotoInput(
            data=data,
            original_sha256="0" * 64,
            media_type="image/png",
            width_px=1280,
            height_px=1024,
            view=view,
            verdict="baseline",
            measurements={} if sharpness is None else {"sharpness": sharpness},
            checks=[],
        ),
    )
    if site:
        row.site = site
        session.flush()
    return int(row.id)
