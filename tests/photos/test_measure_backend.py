"""The landmark backend is a parameter of measure_photo (the seam a second backend plugs into).

A small fake backend returns a known face: MediaPipe's canonical face turned by a known yaw and
placed in the image, with iris points at known places. ``measure_photo(detect=fake)`` must use
exactly those points and the fake's own calibration, and never run the default FaceMesh. A fake is
legitimate here because the seam itself is what is under test; FaceMesh is tested on real photos in
tests/photos/test_measure.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.photos import landmarks
from analysis.photos.ingest import IngestedPhoto
from analysis.photos.landmarks import FaceLandmarks, LandmarkBackend
from analysis.photos.measure import NO_FACE_MESSAGE, measure_path, measure_paths, measure_photo
from analysis.photos.pose import canonical_face, rotation_from_euler
from analysis.photos.scale import ipd_px

WIDTH, HEIGHT, SCALE = 640, 480, 0.5  # analysis copy of a 1280 x 960 original


def known_face(yaw_deg: float, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """478 points: the canonical mesh rotated and placed at the image centre, plus 10 iris points."""
    model = canonical_face()
    rot = rotation_from_euler(yaw_deg, pitch_deg, roll_deg)
    size = 200.0 / np.ptp(model[:, 0])  # face about 200 px wide
    mesh = size * model @ rot.T + np.array([WIDTH / 2, HEIGHT / 2, 500.0])
    iris = []
    for a, b in ((33, 133), (362, 263)):
        centre = (mesh[a] + mesh[b]) / 2.0
        ring = [centre + d for d in ([-5, 0, 0], [0, -5, 0], [5, 0, 0], [0, 5, 0])]
        iris.extend([centre, *ring])
    return np.vstack([mesh, np.array(iris)])


class FakeBackend:
    """Records what it was given and returns the points it was built with."""

    def __init__(self, points: np.ndarray | None) -> None:
        self.points = points
        self.calls: list[np.ndarray] = []

    def __call__(self, rgb: np.ndarray) -> FaceLandmarks | None:
        self.calls.append(rgb)
        if self.points is None:
            return None
        return FaceLandmarks(self.points.copy(), (rgb.shape[1], rgb.shape[0]), "fake")


def photo() -> IngestedPhoto:
    rng = np.random.default_rng(0)
    rgb = np.clip(rng.normal(140, 12, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    return IngestedPhoto(
        "0" * 64, "JPEG", int(WIDTH / SCALE), int(HEIGHT / SCALE), rgb, SCALE, None, None, None, 1
    )


@pytest.fixture
def no_facemesh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running the default backend's MediaPipe graphs would fail the test."""

    def refuse() -> None:
        raise AssertionError("measure_photo ran the default FaceMesh instead of the given backend")

    monkeypatch.setattr(landmarks, "_backend", refuse)


@pytest.mark.parametrize("yaw", [-20.0, 0.0, 12.0])
def test_measure_uses_the_given_backend_and_its_points(yaw: float, no_facemesh: None) -> None:
    points = known_face(yaw, pitch_deg=5.0, roll_deg=-3.0)
    fake = FakeBackend(points)
    source = photo()
    m = measure_photo(source, view="face_frontal", detect=LandmarkBackend("fake-backend", fake))
    assert m.ok and m.face_found, m.error
    assert len(fake.calls) == 1 and fake.calls[0] is source.rgb  # given the analysis copy, once
    assert m.extra["landmarks_backend"] == "fake-backend" and m.extra["landmarks_method"] == "fake"
    assert m.landmarks_px is not None
    np.testing.assert_allclose(m.landmarks_px, points / SCALE)  # its points, in original pixels
    # the rigid fit recovers the known rotation exactly from noise-free points
    assert m.yaw_deg == pytest.approx(yaw, abs=1e-6)
    assert m.pitch_deg == pytest.approx(5.0, abs=1e-6)
    assert m.roll_deg == pytest.approx(-3.0, abs=1e-6)
    assert m.ipd_px == pytest.approx(ipd_px(points, scale=SCALE, yaw_deg=yaw))
    xs, ys = points[:, 0] / SCALE, points[:, 1] / SCALE
    assert m.face_box == pytest.approx((xs.min(), ys.min(), xs.max(), ys.max()))
    assert m.eye_open is not None and m.light_side is not None  # the rest ran on those points


def test_the_backends_own_yaw_calibration_is_applied(no_facemesh: None) -> None:
    points = known_face(10.0)
    plain = measure_photo(
        photo(), detect=LandmarkBackend("gain 1", FakeBackend(points), yaw_gain=1.0)
    )
    gained = measure_photo(
        photo(), detect=LandmarkBackend("gain 1.5", FakeBackend(points), yaw_gain=1.5)
    )
    assert plain.yaw_deg == pytest.approx(10.0, abs=1e-6)
    assert gained.yaw_deg == pytest.approx(15.0, abs=1e-6)
    assert gained.extra["yaw_uncalibrated_deg"] == pytest.approx(10.0, abs=1e-6)
    assert gained.pitch_deg == pytest.approx(plain.pitch_deg)  # the gain is yaw's only
    # the camera-frame yaw is reported beside it, with the same calibration
    assert gained.yaw_camera_deg is not None and plain.yaw_camera_deg is not None
    assert gained.yaw_camera_deg == pytest.approx(1.5 * plain.yaw_camera_deg)
    assert plain.yaw_camera_deg is not None
    assert abs(plain.yaw_camera_deg - 10.0) < 2.0  # the face sits near the image centre


def test_a_backend_that_finds_no_face_gives_the_no_face_result(no_facemesh: None) -> None:
    fake = FakeBackend(None)
    m = measure_photo(photo(), view="face_frontal", detect=LandmarkBackend("none", fake))
    assert len(fake.calls) == 1
    assert not m.ok and not m.face_found and m.error == NO_FACE_MESSAGE
    assert m.exposure_l is not None and m.thumb is not None  # frame-wide figures still measured


def test_scalp_views_do_not_call_the_backend(no_facemesh: None) -> None:
    fake = FakeBackend(known_face(0.0))
    m = measure_photo(photo(), view="scalp_vertex", detect=LandmarkBackend("fake", fake))
    assert m.ok and fake.calls == []


def test_measure_path_passes_the_backend_on(tmp_path: Path, no_facemesh: None) -> None:
    from PIL import Image

    path = tmp_path / "p.jpg"
    Image.fromarray(photo().rgb).save(path, quality=95)
    fake = FakeBackend(known_face(8.0))
    m = measure_path(path, detect=LandmarkBackend("fake", fake, yaw_gain=1.0))
    assert len(fake.calls) == 1 and m.yaw_deg == pytest.approx(8.0, abs=1e-6)


def test_default_backend_is_facemesh_with_its_calibration() -> None:
    assert landmarks.FACEMESH.detect is landmarks.detect_face_landmarks
    assert landmarks.FACEMESH.yaw_gain == landmarks.YAW_GAIN
    with pytest.raises(TypeError):
        # a bare function carries no calibration: the wrong type is the point of the test
        measure_photo(photo(), detect=FakeBackend(None))  # type: ignore[arg-type]


def test_measure_paths_warms_the_backend_while_the_first_photo_is_read(
    tmp_path: Path, no_facemesh: None
) -> None:
    """The backend's ``warm`` runs once, before its first ``detect``, and not for scalp views;
    a ``warm`` that fails costs nothing (the photos are still measured)."""
    from PIL import Image

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"p{i}.jpg")
        Image.fromarray(photo().rgb).save(paths[-1], quality=95)
    events: list[str] = []
    fake = FakeBackend(known_face(5.0))

    def detect(rgb: np.ndarray) -> FaceLandmarks | None:
        events.append("detect")
        return fake(rgb)

    def warm() -> None:
        events.append("warm")

    backend = LandmarkBackend("fake", detect, yaw_gain=1.0, warm=warm)
    results = list(measure_paths(paths, detect=backend))
    assert [m.ok for m in results] == [True, True, True]
    assert events == ["warm", "detect", "detect", "detect"]

    events.clear()
    list(measure_paths(paths[:1], view="scalp_vertex", detect=backend))
    assert events == []

    def broken() -> None:
        raise RuntimeError("no models here")

    failing = LandmarkBackend("fake", fake, yaw_gain=1.0, warm=broken)
    single = list(measure_paths(paths[:1], detect=failing))
    assert len(single) == 1 and single[0].ok and single[0].yaw_deg == pytest.approx(5.0, abs=1e-6)
    assert list(measure_paths([], detect=backend)) == []
