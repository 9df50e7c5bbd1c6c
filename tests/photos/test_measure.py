"""measure_photo / measure_path on skimage's astronaut() and known transformations of it (real FaceMesh).

Metamorphic: a known in-plane rotation is recovered as roll, a mirror flips yaw and roll, a known zoom
changes ipd_px by that factor, upscaling the file keeps figures in the file's own pixels.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from analysis.photos.ingest import read_photo
from analysis.photos.measure import NO_FACE_MESSAGE, THUMB_MAX_SIDE, measure_path, measure_photo
from analysis.photos.types import PhotoMeasurement

FACE_CENTRE = (225.0, 125.0)  # astronaut's face centre, px (x, y)


def measure_array(rgb: np.ndarray, *, view: str | None = None) -> PhotoMeasurement:
    """Encode as PNG and measure through the real ingest path."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
    return measure_photo(read_photo(buffer.getvalue()), view=view, path="memory.png")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="module")
def reference(astronaut: np.ndarray) -> PhotoMeasurement:
    result = measure_array(astronaut)
    assert result.ok and result.face_found, result.error
    return result


def rotate_clockwise(rgb: np.ndarray, angle_deg: float) -> np.ndarray:
    # cv2's positive angle is counter-clockwise on screen; negate for a clockwise turn
    matrix = cv2.getRotationMatrix2D(FACE_CENTRE, -angle_deg, 1.0)
    return cv2.warpAffine(rgb, matrix, rgb.shape[1::-1], borderMode=cv2.BORDER_REFLECT)


def test_astronaut_is_measured_with_all_fields(reference: PhotoMeasurement) -> None:
    assert reference.error is None
    assert (reference.width_px, reference.height_px) == (512, 512)
    assert (
        reference.yaw_deg is not None
        and reference.pitch_deg is not None
        and reference.roll_deg is not None
    )
    assert (
        abs(reference.yaw_deg) < 10
        and abs(reference.pitch_deg) < 20
        and abs(reference.roll_deg) < 10
    )
    assert reference.ipd_px is not None
    assert 30 < reference.ipd_px < 60  # eyes ~43 px apart in the 512 px frame
    assert reference.face_box is not None
    x0, y0, x1, y1 = reference.face_box
    assert x0 < FACE_CENTRE[0] < x1 and y0 < FACE_CENTRE[1] < y1
    assert reference.face_in_frame is True
    assert reference.landmarks_px is not None
    assert reference.landmarks_px.shape == (478, 3)
    assert reference.thumb is not None
    assert reference.thumb.shape == (384, 384, 3)
    assert reference.distance_mm is None  # no focal length in a PNG


@pytest.mark.parametrize("angle", [-10.0, 6.0, 15.0])
def test_known_rotation_is_recovered_as_roll(
    astronaut: np.ndarray, reference: PhotoMeasurement, angle: float
) -> None:
    rotated = measure_array(rotate_clockwise(astronaut, angle))
    assert rotated.ok, rotated.error
    assert rotated.roll_deg is not None and reference.roll_deg is not None
    assert rotated.roll_deg - reference.roll_deg == pytest.approx(angle, abs=1.0)
    assert rotated.yaw_deg == pytest.approx(reference.yaw_deg, abs=2.0)
    assert rotated.ipd_px == pytest.approx(reference.ipd_px, rel=0.02)


def test_mirror_flips_yaw_and_roll(astronaut: np.ndarray, reference: PhotoMeasurement) -> None:
    mirrored = measure_array(astronaut[:, ::-1])
    assert mirrored.ok, mirrored.error
    assert mirrored.roll_deg is not None and reference.roll_deg is not None
    assert mirrored.roll_deg == pytest.approx(-reference.roll_deg, abs=1.0)
    assert mirrored.roll_deg is not None and reference.roll_deg is not None
    assert np.sign(mirrored.roll_deg) == -np.sign(reference.roll_deg)
    assert mirrored.yaw_deg is not None and reference.yaw_deg is not None
    assert mirrored.yaw_deg == pytest.approx(-reference.yaw_deg, abs=1.5)
    assert mirrored.pitch_deg == pytest.approx(reference.pitch_deg, abs=1.5)
    # the face box mirrors too
    assert reference.face_box is not None
    x0, _, x1, _ = reference.face_box
    assert mirrored.face_box is not None
    assert mirrored.face_box[0] == pytest.approx(512 - x1, abs=4)


@pytest.mark.parametrize("zoom", [1.10, 1.02])
def test_zoom_scales_ipd_by_the_zoom_factor(
    astronaut: np.ndarray, reference: PhotoMeasurement, zoom: float
) -> None:
    # crop a window 1/zoom the size around the face and resize it back to 512 px: a pure zoom
    side = 512 / zoom
    cx, cy = FACE_CENTRE
    x0, y0 = cx - side * (cx / 512), cy - side * (cy / 512)  # keep the face at the same place
    matrix = np.array([[zoom, 0, -x0 * zoom], [0, zoom, -y0 * zoom]])
    zoomed = cv2.warpAffine(astronaut, matrix, (512, 512), flags=cv2.INTER_AREA)
    result = measure_array(zoomed)
    assert result.ok, result.error
    assert result.ipd_px is not None and reference.ipd_px is not None
    assert result.ipd_px / reference.ipd_px == pytest.approx(zoom, rel=0.01)


def test_figures_are_in_the_files_own_pixels(
    astronaut: np.ndarray, reference: PhotoMeasurement
) -> None:
    # a 1536 px file is analysed at 1280 px; ipd and boxes must still be in the file's pixels
    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_CUBIC)
    result = measure_array(big)
    assert result.ok, result.error
    assert (result.width_px, result.height_px) == (1536, 1536)
    assert result.ipd_px is not None and reference.ipd_px is not None
    assert result.ipd_px / reference.ipd_px == pytest.approx(3.0, rel=0.015)
    assert result.face_box is not None and reference.face_box is not None
    assert result.face_box[0] == pytest.approx(3 * reference.face_box[0], abs=9)
    assert result.landmarks_px is not None and reference.landmarks_px is not None
    assert result.landmarks_px[:, 0].mean() == pytest.approx(
        3 * reference.landmarks_px[:, 0].mean(), rel=0.01
    )
    assert result.thumb is not None
    assert max(result.thumb.shape[:2]) == THUMB_MAX_SIDE


def test_small_face_in_a_large_frame_is_found(
    astronaut: np.ndarray, reference: PhotoMeasurement
) -> None:
    canvas = np.full((2400, 3200, 3), 90, np.uint8)
    canvas[900:1668, 1800:2568] = cv2.resize(astronaut, (768, 768), interpolation=cv2.INTER_CUBIC)
    result = measure_array(canvas)
    assert result.ok, result.error
    assert result.extra["landmarks_method"] == "detector_crop"
    assert result.ipd_px is not None and reference.ipd_px is not None
    assert result.ipd_px / reference.ipd_px == pytest.approx(1.5, rel=0.03)


def test_no_face_gives_a_clear_error_but_still_measures_the_frame() -> None:
    result = measure_array(data.coffee())
    assert result.ok is False and result.face_found is False
    assert result.error == NO_FACE_MESSAGE and "no face" in result.error
    assert result.yaw_deg is None and result.ipd_px is None
    assert result.thumb is not None and max(result.thumb.shape[:2]) <= THUMB_MAX_SIDE


def test_scalp_view_skips_pose(astronaut: np.ndarray) -> None:
    result = measure_array(astronaut, view="scalp_vertex")
    assert result.ok and result.view == "scalp_vertex"
    assert result.yaw_deg is None and result.pitch_deg is None and result.roll_deg is None
    assert "not assessed" in result.extra["pose_note"]
    assert result.thumb is not None


def test_measure_path_never_raises(tmp_path: Path) -> None:
    cases = {
        "text.jpg": b"hello, this is not a photo",
        "empty.png": b"",
        "truncated.jpg": _jpeg_bytes(data.astronaut())[:3000],
    }
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
    for name in [*cases, "missing.jpg"]:
        result = measure_path(tmp_path / name)
        assert result.ok is False, name
        assert result.error and "Traceback" not in result.error, name
        assert result.path == str(tmp_path / name)


def _jpeg_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_face_cut_by_the_frame_edge_is_flagged(
    astronaut: np.ndarray, reference: PhotoMeasurement
) -> None:
    assert reference.face_box is not None
    chin_y = reference.face_box[3]
    cut = measure_array(astronaut[: int(chin_y) - 6])  # the chin is below the bottom edge
    assert cut.ok, cut.error
    assert cut.face_in_frame is False
    assert reference.face_in_frame is True


def _with_focal(rgb: np.ndarray, focal_35mm: float) -> PhotoMeasurement:
    exif = Image.Exif()
    exif[0x8769] = {0xA405: int(focal_35mm)}  # Exif IFD: FocalLengthIn35mmFilm
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(
        buffer, format="JPEG", quality=95, exif=exif.tobytes()
    )
    return measure_photo(read_photo(buffer.getvalue()))


def test_iris_distance_needs_a_focal_length_and_follows_zoom(astronaut: np.ndarray) -> None:
    near_side = 512 / 1.25
    x0, y0 = 225 - near_side * 225 / 512, 125 - near_side * 125 / 512
    zoomed = cv2.warpAffine(
        astronaut, np.array([[1.25, 0, -1.25 * x0], [0, 1.25, -1.25 * y0]]), (512, 512)
    )
    far, near = _with_focal(astronaut, 26), _with_focal(zoomed, 26)
    assert far.ok and near.ok
    assert far.focal_length_35mm == 26
    # f = 26 / 43.27 * 724 px = 435 px; a ~8 px iris -> roughly 0.6 m (a plausible portrait distance)
    assert far.distance_mm is not None
    assert 300 < far.distance_mm < 1200
    assert far.distance_mm is not None and far.distance_sd_mm is not None
    assert 0.04 * far.distance_mm < far.distance_sd_mm < 0.1 * far.distance_mm
    # a 1.25x larger face at the same focal length reads as 1.25x closer (iris landmarks are noisy)
    assert far.distance_mm is not None and near.distance_mm is not None
    assert far.distance_mm / near.distance_mm == pytest.approx(1.25, rel=0.06)


def test_speed_benchmarks_naive_landmarks_find_the_same_face(astronaut: np.ndarray) -> None:
    # benchmarks/photo_speed.py times detect_face_landmarks against naive_landmarks; the comparison is
    # only fair if the naive path finds the same face at full size (close-up and small face alike)
    from analysis.photos.landmarks import detect_face_landmarks, naive_landmarks

    canvas = np.full((2400, 3200, 3), 90, np.uint8)
    canvas[900:1668, 1800:2568] = cv2.resize(astronaut, (768, 768), interpolation=cv2.INTER_CUBIC)
    for image in (cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_CUBIC), canvas):
        ours, naive = detect_face_landmarks(image), naive_landmarks(image)
        assert ours is not None and naive is not None
        assert naive.image_size == ours.image_size == (image.shape[1], image.shape[0])
        # same face: mesh centres within 2 % of the face's width
        width = np.ptp(ours.points_px[:468, 0])
        assert (
            np.linalg.norm(naive.points_px[:468, :2].mean(0) - ours.points_px[:468, :2].mean(0))
            < 0.02 * width
        )
    assert naive_landmarks(data.coffee()) is None


def test_measure_paths_reads_ahead_and_gives_measure_paths_results_in_order(
    tmp_path: Path, astronaut: np.ndarray
) -> None:
    """The batch form (next file decoded on a reader thread) returns, in input order, what
    measure_path returns for each file: good photos, a missing file, a non-image, a truncated
    JPEG and a photo over the pixel limit among them."""
    from analysis.photos.measure import measure_paths

    good = tmp_path / "astronaut.jpg"
    Image.fromarray(astronaut).save(good, quality=92)
    rolled = tmp_path / "rolled.png"
    Image.fromarray(rotate_clockwise(astronaut, 10)).save(rolled)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo\n")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:3000])
    huge = tmp_path / "huge.png"  # 9,000 x 9,000: over the 80 MP limit, read as a header only
    Image.new("L", (9000, 9000)).save(huge, optimize=False)
    paths = [text, good, tmp_path / "missing.jpg", cut, huge, rolled, good]
    batch = list(measure_paths(paths, view="face_frontal"))
    single = [measure_path(p, view="face_frontal") for p in paths]
    assert [m.path for m in batch] == [str(p) for p in paths]
    assert [m.ok for m in batch] == [False, True, False, False, False, True, True]
    for got, want in zip(batch, single, strict=True):
        assert got.error == want.error
        assert got.to_json_dict() == want.to_json_dict()
    assert "megapixels" in (batch[4].error or ""), batch[4].error
