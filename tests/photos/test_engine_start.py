"""What a fresh process loads to measure one photo: the engine starts once per upload (one worker
process per upload, analysis.photos.worker), so what it imports is paid on every photo."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

PROBE = """
import json, sys
from analysis.photos.worker import _measure_bytes, _measure_bytes_warmup
from PIL import Image
import io
_measure_bytes_warmup()
buffer = io.BytesIO()
from importlib.resources import files
Image.open(files("skimage") / "data" / "astronaut.png").convert("RGB").save(buffer, "JPEG")
result = _measure_bytes(buffer.getvalue(), view="face_frontal")
loaded = sorted(
    name
    for name in (
        "matplotlib", "pandas", "scipy", "mediapipe.tasks", "skimage.io", "pyarrow.compute",
        "pillow_heif",
    )
    if name in sys.modules
)
import mediapipe as mp  # a later plain import still gets the whole package
whole = (mp.__version__, callable(mp.solutions.face_mesh.FaceMesh), hasattr(mp.tasks, "vision"))
print(json.dumps({"ok": result.ok, "yaw": result.yaw_deg, "loaded": loaded, "whole": whole}))
"""


def run_fresh(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a new Python process at the project root; it must exit 0."""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_a_photo_is_measured_without_plotting_dataframe_or_scipy_modules() -> None:
    """... and a later plain ``import mediapipe`` still gets the whole package."""
    proc = run_fresh(PROBE)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"] is True and isinstance(out["yaw"], float)
    assert out["loaded"] == [], f"the engine start imported {out['loaded']}"
    assert out["whole"] == ["0.10.21", True, True]


HEIC_PROBE = """
import io, sys
import numpy as np
import pillow_heif
from analysis.photos.ingest import clean_original, read_photo
from PIL import Image
assert "HEIF" not in Image.OPEN, "nothing has registered the HEIF opener yet"
rgb = np.zeros((240, 320, 3), np.uint8)
rgb[:, 160:] = 200
raw = io.BytesIO()
pillow_heif.from_bytes(mode="RGB", size=(320, 240), data=rgb.tobytes()).save(raw, quality=90)
photo = read_photo(raw.getvalue())
clean = clean_original(raw.getvalue())
print(photo.format, photo.rgb.shape, clean.media_type)
"""


def test_a_heic_is_read_in_a_process_that_never_registered_the_heif_opener() -> None:
    """The HEIF opener is registered on the first HEIF (analysis.photos.heif), not at import."""
    proc = run_fresh(HEIC_PROBE)
    assert proc.stdout.split() == ["HEIF", "(240,", "320,", "3)", "image/jpeg"]
