"""Behaviour of analysis.photos.ingest on well-formed photos built from skimage's astronaut()."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data

from analysis.photos.ingest import IngestError, IngestedPhoto, clean_original, read_photo


def _jpeg(image: Image.Image, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **save)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


def test_jpeg_is_read_as_oriented_rgb_within_max_side(astronaut: Image.Image) -> None:
    photo = read_photo(_jpeg(astronaut.resize((1600, 1200))), max_side=640)
    assert isinstance(photo, IngestedPhoto)
    assert photo.format == "JPEG"
    assert (photo.width_px, photo.height_px) == (1600, 1200)
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == (480, 640, 3)
    assert photo.scale == pytest.approx(0.4)


def test_pdf_is_refused_by_content_with_a_named_reason() -> None:
    with pytest.raises(IngestError, match="PDF"):
        read_photo(b"%PDF-1.7\n1 0 obj << >> endobj\n")


def test_clean_original_drops_comment(astronaut: Image.Image) -> None:
    clean = clean_original(_jpeg(astronaut, comment=b"patient Jane Doe"))
    assert b"Jane Doe" not in clean.data
