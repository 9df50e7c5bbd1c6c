"""The installed stack runs MediaPipe FaceMesh (mediapipe 0.10.21 installed --no-deps on numpy 2,
protobuf 6.33, Pillow 13): see the note at the top of requirements.txt."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
from skimage import data


def test_pinned_stack_is_the_modern_one() -> None:
    assert version("mediapipe") == "0.10.21"
    assert int(version("numpy").split(".")[0]) >= 2
    assert version("protobuf").startswith("6.33.")
    assert int(version("pillow").split(".")[0]) >= 13
    assert (
        int(version("streamlit").split(".")[1]) >= 60 or int(version("streamlit").split(".")[0]) > 1
    )


def test_facemesh_finds_478_landmarks_on_astronaut() -> None:
    import mediapipe as mp

    image = np.ascontiguousarray(data.astronaut())
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=1, refine_landmarks=True
    ) as mesh:
        result = mesh.process(image)
    assert result.multi_face_landmarks, "FaceMesh found no face on astronaut()"
    points = result.multi_face_landmarks[0].landmark
    assert len(points) == 478
    xs = np.array([p.x for p in points])
    ys = np.array([p.y for p in points])
    # the astronaut's face sits in the upper middle of the 512x512 frame
    assert 0.3 < xs.mean() < 0.6 and 0.1 < ys.mean() < 0.45
