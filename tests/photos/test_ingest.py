"""Behaviour of analysis.photos.ingest on well-formed photos built from skimage's astronaut().

Hostile and malformed files are covered in test_hostile_files.py; random mutations in
test_ingest_fuzz.py.
"""

from __future__ import annotations

import hashlib
import io
import struct
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps, PngImagePlugin
from skimage import data

import analysis.photos.heif  # noqa: F401 - Pillow saves HEIF once it is registered
from analysis.photos.exif import parse_exif_datetime, scrub_icc_text, strip_jpeg_metadata
from analysis.photos.filetype import UNKNOWN, hidden_content, sniff
from analysis.photos.ingest import (
    DEFAULT_MAX_PIXELS,
    IngestedPhoto,
    IngestError,
    _heif_pixels,
    clean_original,
    read_photo,
)

# Inverse of each EXIF orientation: what a camera stores so that applying the tag shows it upright.
STORE_AS = {
    1: [],
    2: [Image.Transpose.FLIP_LEFT_RIGHT],
    3: [Image.Transpose.ROTATE_180],
    4: [Image.Transpose.FLIP_TOP_BOTTOM],
    5: [Image.Transpose.TRANSPOSE],
    6: [Image.Transpose.ROTATE_90],
    7: [Image.Transpose.TRANSVERSE],
    8: [Image.Transpose.ROTATE_270],
}


def _encode(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def _decode(raw: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(raw)) as image:
        return np.asarray(image.convert("RGB") if image.mode not in ("RGB", "RGBA") else image)


def _exif(**tags: object) -> Image.Exif:
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    names = {
        "orientation": (exif, 0x0112),
        "datetime": (exif, 0x0132),
        "original": (sub, 0x9003),
        "offset": (sub, 0x9011),
        "subsec": (sub, 0x9291),
        "focal": (sub, 0x920A),
        "focal35": (sub, 0xA405),
    }
    for name, value in tags.items():
        ifd, tag = names[name]
        ifd[tag] = value
    return exif


@pytest.fixture(scope="module")
def upright() -> Image.Image:
    """A 300 x 200 crop: not square and not symmetric, so every flip and turn shows."""
    return Image.fromarray(data.astronaut()[40:240, 100:400])


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


# ---- reading -----------------------------------------------------------------------------------


def test_jpeg_is_read_as_rgb_within_max_side(astronaut: Image.Image) -> None:
    raw = _encode(astronaut.resize((1600, 1200)), "JPEG")
    photo = read_photo(raw, max_side=640)
    assert isinstance(photo, IngestedPhoto)
    assert photo.format == "JPEG"
    assert (photo.width_px, photo.height_px) == (1600, 1200)
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == (480, 640, 3)
    assert photo.rgb.flags["C_CONTIGUOUS"]
    assert photo.scale == pytest.approx(0.4)
    assert photo.original_sha256 == hashlib.sha256(raw).hexdigest()
    assert photo.exif_orientation == 1 and photo.taken_at_utc is None
    assert photo.focal_length_mm is None and photo.focal_length_35mm is None


def test_small_photo_is_not_enlarged(astronaut: Image.Image) -> None:
    photo = read_photo(_encode(astronaut, "PNG"), max_side=1280)
    assert photo.rgb.shape == (512, 512, 3) and photo.scale == 1.0
    assert np.array_equal(photo.rgb, np.asarray(astronaut))


def test_reduced_jpeg_decode_matches_a_full_decode_then_resize(astronaut: Image.Image) -> None:
    raw = _encode(astronaut.resize((4000, 3000), Image.Resampling.BICUBIC), "JPEG", quality=92)
    photo = read_photo(raw, max_side=1000)
    with Image.open(io.BytesIO(raw)) as full:
        reference = np.asarray(full.convert("RGB").resize((1000, 750), Image.Resampling.LANCZOS))
    assert photo.rgb.shape == reference.shape
    assert np.abs(photo.rgb.astype(int) - reference.astype(int)).mean() < 2.0


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_every_exif_orientation_is_applied(
    orientation: int, fmt: str, upright: Image.Image
) -> None:
    stored = upright
    for method in STORE_AS[orientation]:
        stored = stored.transpose(method)
    raw = _encode(
        stored,
        fmt,
        exif=_exif(orientation=orientation),
        **({"quality": 95} if fmt == "JPEG" else {}),
    )
    photo = read_photo(raw, max_side=2000)
    assert photo.exif_orientation == orientation
    assert (photo.width_px, photo.height_px) == (300, 200)
    assert photo.rgb.shape == (200, 300, 3)
    expected = np.asarray(upright).astype(int)
    if fmt == "PNG":
        assert np.array_equal(photo.rgb, expected)
    else:
        assert np.abs(photo.rgb.astype(int) - expected).mean() < 3.0
    # independent oracle: Pillow's own exif_transpose
    with Image.open(io.BytesIO(raw)) as opened:
        oracle = np.asarray(ImageOps.exif_transpose(opened).convert("RGB")).astype(int)
    assert np.abs(photo.rgb.astype(int) - oracle).mean() < 1.0


def test_orientation_is_applied_to_the_reduced_jpeg_decode(upright: Image.Image) -> None:
    big = upright.resize((3000, 2000))
    raw = _encode(big.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=_exif(orientation=6))
    photo = read_photo(raw, max_side=600)
    assert (photo.width_px, photo.height_px) == (3000, 2000)
    assert photo.rgb.shape == (400, 600, 3)
    expected = np.asarray(upright.resize((600, 400))).astype(int)
    assert np.abs(photo.rgb.astype(int) - expected).mean() < 4.0


def test_heic_is_read_upright_and_reports_the_stored_orientation(upright: Image.Image) -> None:
    exif = _exif(orientation=6, original="2024:05:01 10:00:00", offset="-04:00", focal=5.7)
    raw = _encode(
        upright.transpose(Image.Transpose.ROTATE_90), "HEIF", quality=90, exif=exif.tobytes()
    )
    assert sniff(raw) == "HEIF"
    photo = read_photo(raw)
    assert photo.format == "HEIF"
    assert photo.exif_orientation == 6
    assert photo.taken_at_utc == datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
    assert photo.focal_length_mm == pytest.approx(5.7)
    assert (photo.width_px, photo.height_px) == (300, 200)
    assert np.abs(photo.rgb.astype(int) - np.asarray(upright).astype(int)).mean() < 6.0


def test_heic_pixels_are_libheifs_own_with_a_row_stride_not_a_multiple_of_three() -> None:
    """The HEIC fast path reads libheif's buffer directly; 3 x 102 = 306 bytes are padded to a
    320-byte row, which pillow-heif's own array view (stride // 3 columns) shears."""
    rgb = np.asarray(Image.fromarray(data.astronaut()).resize((102, 80)))
    raw = _encode(Image.fromarray(rgb), "HEIF", quality=90)
    photo = read_photo(raw)
    assert photo.rgb.shape == (80, 102, 3) and photo.scale == 1.0
    np.testing.assert_array_equal(photo.rgb, _decode(raw))  # Pillow's own copy of the same decode
    with Image.open(io.BytesIO(raw)) as image:  # and it was the fast path that read it
        view = _heif_pixels(image, max_pixels=DEFAULT_MAX_PIXELS, min_side_px=1)
    assert view is not None
    np.testing.assert_array_equal(view, photo.rgb)


def test_large_heic_is_shrunk_like_a_full_decode_then_lanczos(astronaut: Image.Image) -> None:
    big = astronaut.resize((1530, 1530), Image.Resampling.BICUBIC)
    raw = _encode(big, "HEIF", quality=90)
    photo = read_photo(raw, max_side=500)
    assert photo.rgb.shape == (500, 500, 3) and photo.rgb.flags.writeable
    assert (photo.width_px, photo.height_px) == (1530, 1530)
    with Image.open(io.BytesIO(raw)) as image:
        expected = np.asarray(image.convert("RGB").resize((500, 500), Image.Resampling.LANCZOS))
    assert np.abs(photo.rgb.astype(int) - expected.astype(int)).mean() < 1.5


def test_capture_time_with_offset_becomes_utc(astronaut: Image.Image) -> None:
    exif = _exif(
        original="2024:05:01 10:00:00", offset="+02:00", subsec="25", focal=4.2, focal35=26
    )
    photo = read_photo(_encode(astronaut, "JPEG", exif=exif))
    assert photo.taken_at_utc == datetime(2024, 5, 1, 8, 0, 0, 250000, tzinfo=UTC)
    assert photo.focal_length_mm == pytest.approx(4.2)
    assert photo.focal_length_35mm == 26.0


def test_capture_time_without_offset_stays_naive(astronaut: Image.Image) -> None:
    photo = read_photo(_encode(astronaut, "JPEG", exif=_exif(original="2024:05:01 10:00:00")))
    assert photo.taken_at_utc == datetime(2024, 5, 1, 10, 0, 0)
    assert photo.taken_at_utc.tzinfo is None


def test_capture_time_falls_back_to_ifd0_datetime(astronaut: Image.Image) -> None:
    photo = read_photo(_encode(astronaut, "PNG", exif=_exif(datetime="2023:12:31 23:59:59")))
    assert photo.taken_at_utc == datetime(2023, 12, 31, 23, 59, 59)


@pytest.mark.parametrize(
    "value, offset, expected",
    [
        ("2024:01:01 00:30:00", "+05:30", datetime(2023, 12, 31, 19, 0, tzinfo=UTC)),
        ("2024:01:01 00:30:00", "-08:00", datetime(2024, 1, 1, 8, 30, tzinfo=UTC)),
        ("2024:01:01 00:30:00", "garbage", datetime(2024, 1, 1, 0, 30)),
        ("0000:00:00 00:00:00", None, None),
        ("    :  :     :  :  ", None, None),
        ("2024:02:30 10:00:00", None, None),
        (b"2024:01:01 00:30:00\x00", None, datetime(2024, 1, 1, 0, 30)),
        (None, None, None),
        (12345, None, None),
    ],
)
def test_parse_exif_datetime(value: object, offset: object, expected: datetime | None) -> None:
    assert parse_exif_datetime(value, offset) == expected


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_out_of_range_orientation_is_treated_as_upright(
    orientation: int, upright: Image.Image
) -> None:
    photo = read_photo(_encode(upright, "PNG", exif=_exif(orientation=orientation)))
    assert photo.exif_orientation == 1
    assert np.array_equal(photo.rgb, np.asarray(upright))


# ---- pixel modes ---------------------------------------------------------------------------------


def test_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((80, 80, 4), np.uint8)
    rgba[:, :40] = (255, 0, 0, 255)  # opaque red on the left, fully transparent on the right
    rgba[:, 40:] = (0, 0, 255, 0)
    photo = read_photo(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert tuple(photo.rgb[10, 10]) == (255, 0, 0)
    assert tuple(photo.rgb[10, 70]) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "1", "CMYK", "RGBA"])
def test_any_mode_becomes_rgb(mode: str, astronaut: Image.Image) -> None:
    image = astronaut.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    photo = read_photo(_encode(image, fmt))
    assert photo.rgb.shape == (512, 512, 3) and photo.rgb.dtype == np.uint8
    reference = np.asarray(image.convert("RGB")).astype(int)
    assert np.abs(photo.rgb.astype(int) - reference).mean() < (4.0 if fmt == "JPEG" else 0.5)


def test_palette_transparency_is_composited_on_white() -> None:
    image = Image.new("P", (64, 64), 0)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.paste(1, (0, 0, 32, 64))
    photo = read_photo(_encode(image, "PNG", transparency=0))
    assert tuple(photo.rgb[5, 5]) == (0, 255, 0)
    assert tuple(photo.rgb[5, 60]) == (255, 255, 255)


def test_16_bit_grey_is_scaled_not_clipped() -> None:
    grey = np.full((64, 64), 65535, np.uint16)
    grey[:, 32:] = 32768
    image = Image.fromarray(grey)
    assert image.mode == "I;16"
    photo = read_photo(_encode(image, "PNG"))
    assert tuple(photo.rgb[0, 0]) == (255, 255, 255)
    assert tuple(photo.rgb[0, 40]) == (128, 128, 128)


# ---- limits and sources --------------------------------------------------------------------


def test_pillow_guards_are_set_globally() -> None:
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_limits_are_keyword_options(astronaut: Image.Image) -> None:
    raw = _encode(astronaut, "PNG")
    with pytest.raises(IngestError, match=r"The file is 0.4 MB; the limit is 0.1 MB"):
        read_photo(raw, max_bytes=100_000)
    pixels = r"512 x 512 pixels \(0.3 megapixels\); the limit is 0.2 megapixels"
    with pytest.raises(IngestError, match=pixels):
        read_photo(raw, max_pixels=200_000)
    with pytest.raises(IngestError, match=r"only 512 x 512 pixels; at least 600"):
        read_photo(raw, min_side_px=600)
    assert read_photo(raw, min_side_px=512).width_px == 512


def test_oversized_file_on_disk_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.jpg"
    with path.open("wb") as handle:
        handle.truncate(41 * 1024 * 1024)  # sparse: costs no disk
    with pytest.raises(IngestError, match=r"The file is 41 MB; the limit is 40 MB"):
        read_photo(path)


def test_format_is_decided_by_content_not_name(tmp_path: Path, astronaut: Image.Image) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_encode(astronaut, "PNG"))
    assert read_photo(path).format == "PNG"
    assert read_photo(str(path)).format == "PNG"


def test_missing_file_and_folder_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="could not be read"):
        read_photo(tmp_path / "nope.jpg")
    with pytest.raises(IngestError, match="is a folder"):
        read_photo(tmp_path)


def test_trailing_bytes_after_a_jpeg_are_tolerated(astronaut: Image.Image) -> None:
    """Phones append data after the image (motion-photo video, maker trailers): still a photo."""
    raw = _encode(astronaut, "JPEG") + b"\x00\x00\x00\x18ftypmp42" + bytes(2000)
    assert read_photo(raw).rgb.shape == (512, 512, 3)
    assert clean_original(raw).data.endswith(b"\xff\xd9")


# ---- clean_original ------------------------------------------------------------------------------


def _app_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _with_segments(jpeg: bytes, *segments: bytes) -> bytes:
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


GPS = _exif(original="2024:05:01 10:00:00", focal=4.2)
GPS.get_ifd(0x8825).update({1: "N", 2: (52.0, 22.0, 12.0), 3: "E", 4: (4.0, 53.0, 40.0)})
GPS[0x010F] = "SecretCam"


@pytest.mark.parametrize("progressive", [False, True])
def test_upright_jpeg_is_cleaned_losslessly(progressive: bool, astronaut: Image.Image) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    base = _encode(
        astronaut,
        "JPEG",
        quality=90,
        exif=GPS,
        icc_profile=icc,
        comment=b"Patient Jane",
        progressive=progressive,
    )
    raw = (
        _with_segments(
            base,
            _app_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>Jane</x:xmpmeta>"),
            _app_segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04IPTC Jane"),
        )
        + b"trailing secret"
    )
    clean = clean_original(raw)
    assert clean.media_type == "image/jpeg" and clean.extension == ".jpg"
    assert (clean.width_px, clean.height_px) == (512, 512)
    assert clean.original_sha256 == hashlib.sha256(raw).hexdigest()
    for secret in (b"Exif\x00\x00", b"SecretCam", b"Jane", b"xmpmeta", b"8BIM", b"secret"):
        assert secret not in clean.data
    assert np.array_equal(_decode(clean.data), _decode(raw))  # pixels untouched
    with Image.open(io.BytesIO(clean.data)) as stored:
        assert stored.info.get("icc_profile") == scrub_icc_text(icc)  # colours kept, text blanked
        assert len(stored.getexif()) == 0 and "comment" not in stored.info
    assert len(clean.data) < len(raw)


def test_lossless_clean_keeps_restart_markers_and_adobe_cmyk(astronaut: Image.Image) -> None:
    with_rst = _encode(astronaut, "JPEG", exif=GPS, restart_marker_blocks=4)
    assert np.array_equal(_decode(clean_original(with_rst).data), _decode(with_rst))
    cmyk = _encode(astronaut.convert("CMYK"), "JPEG", exif=GPS)
    cleaned = clean_original(cmyk).data
    assert b"Adobe" in cleaned and b"SecretCam" not in cleaned
    with Image.open(io.BytesIO(cleaned)) as a, Image.open(io.BytesIO(cmyk)) as b:
        assert a.mode == b.mode == "CMYK"
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_strip_jpeg_metadata_refuses_malformed_structure() -> None:
    assert strip_jpeg_metadata(b"\xff\xd8\xff\xe0\x00") is None
    assert strip_jpeg_metadata(b"not a jpeg") is None
    assert strip_jpeg_metadata(b"\xff\xd8\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\x12\x34") is None


def test_rotated_jpeg_is_reencoded_upright_without_metadata(upright: Image.Image) -> None:
    exif = _exif(orientation=6, original="2024:05:01 10:00:00")
    exif[0x010F] = "SecretCam"
    raw = _encode(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)
    clean = clean_original(raw)
    assert (clean.width_px, clean.height_px) == (300, 200)
    assert b"SecretCam" not in clean.data and b"Exif\x00\x00" not in clean.data
    stored = _decode(clean.data)
    assert stored.shape == (200, 300, 3)
    assert np.abs(stored.astype(int) - np.asarray(upright).astype(int)).mean() < 3.0


def test_png_is_cleaned_to_png_with_identical_pixels_and_alpha(astronaut: Image.Image) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "Patient Jane")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>GPS</x:xmpmeta>", zip=True)
    rgba = astronaut.convert("RGBA")
    raw = _encode(rgba, "PNG", pnginfo=info, exif=GPS)
    clean = clean_original(raw)
    assert clean.media_type == "image/png" and clean.extension == ".png"
    for chunk in (b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"Jane"):
        assert chunk not in clean.data
    with Image.open(io.BytesIO(clean.data)) as stored:
        assert stored.mode == "RGBA"
        assert np.array_equal(np.asarray(stored), np.asarray(rgba))


def test_heic_is_cleaned_to_an_upright_jpeg(upright: Image.Image) -> None:
    exif = _exif(orientation=6)
    exif[0x010F] = "SecretCam"
    raw = _encode(
        upright.transpose(Image.Transpose.ROTATE_90), "HEIF", quality=90, exif=exif.tobytes()
    )
    clean = clean_original(raw)
    assert clean.media_type == "image/jpeg" and (clean.width_px, clean.height_px) == (300, 200)
    assert b"SecretCam" not in clean.data and b"Exif" not in clean.data
    assert np.abs(_decode(clean.data).astype(int) - np.asarray(upright).astype(int)).mean() < 6.0


def test_streamlit_config_matches_the_ingest_limits() -> None:
    """The browser refuses what ingest would refuse, and errors never show internals."""
    import tomllib

    from analysis.photos.ingest import DEFAULT_MAX_BYTES

    config = tomllib.loads(
        (Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text()
    )
    assert config["server"]["maxUploadSize"] * 1024 * 1024 == DEFAULT_MAX_BYTES
    assert config["server"]["enableXsrfProtection"] is True
    assert config["client"]["showErrorDetails"] == "none"
    assert config["client"]["toolbarMode"] == "minimal"
    assert config["client"]["disableDataExport"] is True
    assert config["browser"]["gatherUsageStats"] is False


@pytest.mark.parametrize(
    "head, expected",
    [
        (b"\xff\xd8\xff\xe0", "JPEG"),
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIF"),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1MiHEmiafheic", "HEIF"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "an AVIF image"),
        (b"junk before the header %PDF-1.7\n", "a PDF document"),
        (b"\xef\xbb\xbf  <svg xmlns='http://www.w3.org/2000/svg'/>", "an SVG drawing"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "a WebP image"),
        (bytes(range(256)) * 4, UNKNOWN),
    ],
)
def test_sniff_names_the_type_from_content(head: bytes, expected: str) -> None:
    assert sniff(head) == expected


def test_hidden_content_tells_polyglots_from_phone_trailers(astronaut: Image.Image) -> None:
    jpeg = _encode(astronaut, "JPEG")
    assert hidden_content(jpeg) is None
    assert hidden_content(jpeg + b"\x00\x00\x00\x18ftypmp42" + bytes(5000)) is None
    eocd = b"PK\x05\x06" + bytes(16) + struct.pack("<H", 3) + b"abc"
    assert hidden_content(jpeg + eocd) == "ZIP"
    assert hidden_content(jpeg + eocd + b"x") is None  # comment length must reach the end


def test_multi_picture_jpeg_is_read_and_stored_as_its_first_picture(
    astronaut: Image.Image,
) -> None:
    """MPO (phones' multi-picture JPEG): the second picture and the MPF index are not stored."""
    mirrored = astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    buffer = io.BytesIO()
    astronaut.save(buffer, "MPO", save_all=True, append_images=[mirrored])
    raw = buffer.getvalue()
    photo = read_photo(raw)
    assert photo.format == "JPEG" and photo.rgb.shape == (512, 512, 3)
    clean = clean_original(raw)
    assert b"MPF\x00" not in clean.data and clean.data.count(b"\xff\xd8\xff") == 1
    with Image.open(io.BytesIO(clean.data)) as stored:
        assert stored.format == "JPEG"
        with Image.open(io.BytesIO(raw)) as first:
            assert np.array_equal(np.asarray(stored), np.asarray(first.convert("RGB")))


def test_lossless_clean_removes_the_jfif_thumbnail(astronaut: Image.Image) -> None:
    raw = _encode(astronaut, "JPEG")
    assert raw[2:4] == b"\xff\xe0"
    app0_end = 4 + struct.unpack(">H", raw[4:6])[0]
    thumb = b"THUMBNAIL_RGB"[:12]  # 2 x 2 RGB thumbnail, 12 distinctive bytes
    app0 = _app_segment(0xE0, b"JFIF\x00\x01\x02\x00\x00\x48\x00\x48\x02\x02" + thumb)
    with_thumb = raw[:2] + app0 + raw[app0_end:]
    cleaned = clean_original(with_thumb).data
    assert cleaned[2:6] == b"\xff\xe0\x00\x10"  # a bare 16-byte JFIF header
    assert cleaned[6:20] == b"JFIF\x00\x01\x02\x00\x00\x48\x00\x48\x00\x00"
    assert thumb not in cleaned
    assert np.array_equal(_decode(cleaned), _decode(with_thumb))


def test_shrinking_a_transparent_png_matches_compositing_first() -> None:
    rgba = np.zeros((400, 600, 4), np.uint8)
    rgba[..., 0] = np.linspace(0, 255, 600, dtype=np.uint8)[None, :]
    rgba[..., 2] = 200
    rgba[..., 3] = np.linspace(0, 255, 400, dtype=np.uint8)[:, None]
    image = Image.fromarray(rgba, "RGBA")
    photo = read_photo(_encode(image, "PNG"), max_side=150)
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    reference = Image.alpha_composite(white, image).convert("RGB")
    expected = np.asarray(reference.resize((150, 100), Image.Resampling.LANCZOS)).astype(int)
    assert photo.rgb.shape == (100, 150, 3)
    assert np.abs(photo.rgb.astype(int) - expected).max() <= 3


def test_a_12_mp_jpeg_is_decoded_at_quarter_scale_without_resampling() -> None:
    """DCT scaling alone brings 4000 x 3000 to 1000 x 750 (within 3/4..1 of max_side=1280)."""
    import io

    from PIL import Image

    from analysis.photos.ingest import read_photo

    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, size=(30, 40, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((4000, 3000), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=90)
    photo = read_photo(buffer.getvalue(), max_side=1280)
    assert (photo.width_px, photo.height_px) == (4000, 3000)
    assert photo.rgb.shape == (750, 1000, 3) and photo.scale == 0.25
    # the quarter-scale decode shows the same picture as a full decode shrunk by area averaging
    full = np.asarray(big.resize((1000, 750), Image.Resampling.BOX), dtype=float)
    assert np.abs(photo.rgb.astype(float) - full).mean() < 6.0


def _personal_icc() -> bytes:
    """An sRGB profile whose description names a person, as a monitor calibration might."""
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    tags = {
        bytes(icc[132 + 12 * i : 136 + 12 * i]): int.from_bytes(
            icc[136 + 12 * i : 140 + 12 * i], "big"
        )
        for i in range(int.from_bytes(icc[128:132], "big"))
    }
    desc = tags[b"desc"]
    assert icc[desc : desc + 4] == b"mluc"
    at = desc + int.from_bytes(icc[desc + 24 : desc + 28], "big")  # first record's string
    icc[at : at + 16] = "Dr Jane".encode("utf-16-be") + b"\x00\x00"
    return bytes(icc)


def test_icc_profile_text_is_blanked_and_colours_are_unchanged(astronaut: Image.Image) -> None:
    icc = _personal_icc()
    assert "Dr Jane" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    for image, kind in ((astronaut, "upright"), (astronaut.rotate(90, expand=True), "rotated")):
        exif = _exif(original="2024:05:01 10:00:00", focal=4.2)
        if kind == "rotated":
            exif[0x0112] = 6  # orientation: re-encoded, not the lossless path
        raw = _encode(image, "JPEG", quality=92, exif=exif, icc_profile=icc)
        clean = clean_original(raw)
        assert "Dr Jane".encode("utf-16-be") not in clean.data, kind
        with Image.open(io.BytesIO(clean.data)) as stored:
            kept = stored.info["icc_profile"]
        assert "Dr Jane" not in ImageCms.getProfileDescription(
            ImageCms.ImageCmsProfile(io.BytesIO(kept))
        )
        srgb = ImageCms.createProfile("sRGB")
        before = ImageCms.profileToProfile(astronaut, io.BytesIO(icc), srgb)
        after = ImageCms.profileToProfile(astronaut, io.BytesIO(kept), srgb)
        assert np.array_equal(np.asarray(before), np.asarray(after)), kind


def test_malformed_or_split_icc_profiles_are_handled() -> None:
    icc = _personal_icc()
    assert scrub_icc_text(icc[:100]) is None  # too short
    assert scrub_icc_text(b"x" * 200) is None  # no acsp signature
    broken = bytearray(icc)
    broken[132 + 4 : 132 + 8] = (10**6).to_bytes(4, "big")  # first tag points past the end
    assert scrub_icc_text(bytes(broken)) is None
    # a profile split over two APP2 chunks is rejoined, scrubbed and split the same way
    jpeg = _encode(Image.new("RGB", (64, 64), "grey"), "JPEG")
    half = len(icc) // 2
    chunks = [
        _app_segment(0xE2, b"ICC_PROFILE\x00" + bytes([i + 1, 2]) + part)
        for i, part in enumerate((icc[:half], icc[half:]))
    ]
    cleaned = strip_jpeg_metadata(_with_segments(jpeg, *chunks))
    assert cleaned is not None
    with Image.open(io.BytesIO(cleaned)) as stored:
        assert stored.info["icc_profile"] == scrub_icc_text(icc)
    # chunks that do not add up (one missing) are dropped rather than kept with their text
    cleaned = strip_jpeg_metadata(_with_segments(jpeg, chunks[0]))
    assert cleaned is not None
    assert b"ICC_PROFILE" not in cleaned
    with Image.open(io.BytesIO(cleaned)) as stored:
        assert stored.size == (64, 64)


def test_rgb_array_equals_numpy_copy_for_every_mode() -> None:
    """The zero-copy Arrow route of ``rgb_array`` gives exactly ``np.asarray``'s pixels."""
    from PIL import Image as PILImage

    from analysis.photos.ingest import rgb_array

    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    rgb = PILImage.fromarray(pixels, "RGB")
    out = rgb_array(rgb)
    assert out.flags["C_CONTIGUOUS"] and out.dtype == np.uint8
    assert np.array_equal(out, pixels)
    out[0, 0] = 0  # a copy of its own: the image is untouched
    assert np.array_equal(np.asarray(rgb), pixels)
    grey = rgb.convert("L")
    assert np.array_equal(rgb_array(grey), np.asarray(grey))
