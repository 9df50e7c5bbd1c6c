"""Photo ingest: the only door through which uploaded bytes become pixels.

``read_photo`` turns an upload (bytes or a path) into an EXIF-oriented ``uint8`` RGB array no
larger than ``max_side`` on its longest side, plus capture metadata. ``clean_original`` produces the
full-resolution copy kept in the image store, with all metadata removed.

Safety rules, applied in this order before any pixel is decoded:

1. size: empty files and files above ``max_bytes`` (default 40 MB) are refused;
2. content: the format is decided by the file's **magic bytes**, never by its name; only JPEG,
   PNG and HEIC/HEIF pass; anything else is named in the message ("This file is a PDF ...");
3. polyglots: a photo that is also a ZIP archive (end-of-central-directory record at the end) or
   a PDF (``%PDF-`` within the first 1024 bytes, where PDF readers look) is refused;
4. dimensions: the header size is checked against ``max_pixels`` (default 80 MP) and a minimum
   side of 64 px. Pillow's own ``Image.MAX_IMAGE_PIXELS`` is set to the same default and its
   ``DecompressionBombWarning`` is turned into an error;
5. decoding: truncated files are refused (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays ``False``),
   and any decoder failure becomes an ``IngestError`` whose message a clinic user can act on.

JPEGs are decoded at reduced size through libjpeg's DCT scaling (``Image.draft``), so a 12 MP photo
is never expanded to full resolution for analysis (benchmarks/ingest_speed.py: ~4x faster and
~25 MiB instead of ~115 MiB peak memory than a full decode). PNG and HEIF decode in full, then
shrink. A HEIF's size is read after decoding: its header can disagree with its pixels.

What this module cannot do
--------------------------
It runs in the caller's process: a decoder that crashes, loops or exhausts memory on a hostile
file takes the caller with it. Uploads from users go through ``analysis.photos.worker``
(``analyse_in_worker``, ``clean_in_worker``), which runs these functions in a time- and
memory-limited child process. ``Image.MAX_IMAGE_PIXELS`` is process-wide: raising ``max_pixels``
above twice the default also needs it raised. Warning filters are process-wide too: the few
milliseconds in which they are changed (opening a header) run under a module lock.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from analysis.photos.exif import (
    CaptureInfo,
    parse_orientation,
    read_capture_info,
    scrub_icc_text,
    strip_jpeg_metadata,
)
from analysis.photos.filetype import PHOTO_FORMATS, UNKNOWN, hidden_content, sniff

DEFAULT_MAX_BYTES: int = 40 * 1024 * 1024
"""Largest accepted upload, bytes (matches ``server.maxUploadSize`` in .streamlit/config.toml)."""
DEFAULT_MAX_PIXELS: int = 80_000_000
"""Largest accepted image, pixels (width x height), checked from the header before decoding."""
DEFAULT_MIN_SIDE_PX: int = 64
"""Smallest accepted width and height, pixels."""
DEFAULT_MAX_SIDE: int = 1280
"""Default longest side of the analysis copy returned by ``read_photo``, pixels."""

ALLOWED_FORMATS: tuple[str, ...] = PHOTO_FORMATS
_HINT = "Upload a JPEG, PNG or HEIC photo."

# Pillow's own bomb guard: warn above this many pixels, refuse above twice as many. We set it to
# our limit and escalate the warning to an error inside ``_bomb_warning_is_error``.
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False


class IngestError(ValueError):
    """An upload that cannot be used; ``str(error)`` tells a clinic user what to do."""


@dataclass(frozen=True)
class IngestedPhoto:
    """A decoded photo ready for analysis.

    Attributes
    ----------
    original_sha256 : str
        Hex SHA-256 of the bytes as uploaded.
    format : str
        ``"JPEG"``, ``"PNG"`` or ``"HEIF"`` (decided from the content, not the file name).
    width_px, height_px : int
        Full-resolution size after EXIF orientation, pixels.
    rgb : numpy.ndarray
        ``uint8`` array of shape ``(h, w, 3)``, EXIF-oriented, longest side ``<= max_side`` (a JPEG
        may stop at a DCT scale between 3/4 of ``max_side`` and ``max_side``; ``scale`` says which).
        Alpha is composited on white.
    scale : float
        Analysis pixels per original pixel (``<= 1.0``); multiply analysis coordinates by
        ``1 / scale`` to get original-pixel coordinates.
    taken_at_utc : datetime or None
        Capture time. Aware (UTC) when the file records a UTC offset; **naive** when it does not
        (camera wall-clock time, zone unknown); ``None`` when absent. See ``analysis.photos.exif``.
    focal_length_mm, focal_length_35mm : float or None
        EXIF ``FocalLength`` and ``FocalLengthIn35mmFilm``, millimetres.
    exif_orientation : int
        EXIF orientation as stored in the file, 1..8 (1 when absent); already applied to ``rgb``.
    """

    original_sha256: str
    format: str
    width_px: int
    height_px: int
    rgb: np.ndarray
    scale: float
    taken_at_utc: datetime | None
    focal_length_mm: float | None
    focal_length_35mm: float | None
    exif_orientation: int


@dataclass(frozen=True)
class CleanImage:
    """The metadata-free, oriented, full-resolution copy of an upload, for the image store.

    ``extension`` includes the dot (``".jpg"`` or ``".png"``); ``media_type`` is the MIME type;
    ``original_sha256`` is the hash of the upload (not of ``data``).
    """

    data: bytes
    media_type: str
    extension: str
    width_px: int
    height_px: int
    original_sha256: str


def read_photo(
    source: bytes | str | Path,
    *,
    max_side: int = DEFAULT_MAX_SIDE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side_px: int = DEFAULT_MIN_SIDE_PX,
) -> IngestedPhoto:
    """Decode an uploaded photo into an oriented RGB analysis copy.

    Parameters
    ----------
    source : bytes, str or pathlib.Path
        The uploaded bytes, or the path of a file holding them.
    max_side : int, optional
        Longest side of the returned ``rgb``, pixels. Smaller photos are not enlarged.
    max_bytes, max_pixels, min_side_px : int, optional
        Safety limits (see the module docstring); defaults are the module constants.

    Returns
    -------
    IngestedPhoto

    Raises
    ------
    IngestError
        For anything that is not a usable JPEG, PNG or HEIC photo within the limits. No other
        exception escapes for bad input.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    data = _load_bytes(source, max_bytes=max_bytes)
    sha = hashlib.sha256(data).hexdigest()
    fmt = check_content(data, max_bytes=max_bytes)
    with _opened(data, fmt, max_pixels=max_pixels, min_side_px=min_side_px) as (image, info):
        stored, to_apply = _orientation(image, info)
        heif_rgb = None
        if image.format == "HEIF":
            heif_rgb = _heif_pixels(image, max_pixels=max_pixels, min_side_px=min_side_px)
            if heif_rgb is None:
                _load_heif(image, max_pixels=max_pixels, min_side_px=min_side_px)
        width, height = image.size if heif_rgb is None else heif_rgb.shape[1::-1]
        if to_apply >= 5:
            width, height = height, width
        scale = min(1.0, max_side / max(width, height))
        out_w = max(1, round(width * scale))
        out_h = max(1, round(height * scale))
        if heif_rgb is not None:  # libheif has applied the file's own rotation (to_apply is 1)
            from analysis.photos.resample import shrink

            rgb = np.array(shrink(heif_rgb, (out_w, out_h)), order="C")  # owned, writeable
        else:
            rgb = _decode_small(image, to_apply, out_w=out_w, out_h=out_h)
        scale = rgb.shape[1] / width  # the decode may stop at a DCT scale below ``max_side``
    return IngestedPhoto(
        original_sha256=sha,
        format=fmt,
        width_px=width,
        height_px=height,
        rgb=rgb,
        scale=scale,
        taken_at_utc=info.taken_at_utc,
        focal_length_mm=info.focal_length_mm,
        focal_length_35mm=info.focal_length_35mm,
        exif_orientation=stored,
    )


def clean_original(
    source: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side_px: int = DEFAULT_MIN_SIDE_PX,
) -> CleanImage:
    """Full-resolution, oriented copy of an upload with all metadata removed.

    A JPEG whose orientation is already upright (1) is cleaned **losslessly**: its marker segments
    are walked and every APP1..APP15 segment (EXIF, GPS, XMP, IPTC, MPF) and every COM segment is
    dropped, as is anything after the end-of-image marker; the entropy-coded pixels are copied
    untouched. Kept: APP0 JFIF (with any thumbnail removed), APP2 ``ICC_PROFILE`` (it defines the
    photo's colours, which the lighting checks rely on; its free text, such as a description or
    device name, is blanked by ``exif.scrub_icc_text``) and APP14 ``Adobe`` (it tells the decoder
    which colour transform to use; dropping it changes the pixels).

    Anything else is decoded, oriented and re-encoded without metadata: JPEG at quality 95 for
    JPEG and HEIF sources, PNG (lossless, same mode, palette transparency kept) for PNG sources.
    The ICC profile is kept in both cases, with its text blanked. Pillow reads 48/64-bit colour PNGs as 8 bits per
    channel, so such a PNG is stored at 8 bits.

    Raises
    ------
    IngestError
        As ``read_photo``.
    """
    data = _load_bytes(source, max_bytes=max_bytes)
    sha = hashlib.sha256(data).hexdigest()
    fmt = check_content(data, max_bytes=max_bytes)
    with _opened(data, fmt, max_pixels=max_pixels, min_side_px=min_side_px) as (image, info):
        _, to_apply = _orientation(image, info)
        if fmt == "JPEG" and to_apply == 1:
            stripped = strip_jpeg_metadata(data)
            if stripped is not None:
                limits = {"max_pixels": max_pixels, "min_side_px": min_side_px}
                with _opened(stripped, "JPEG", **limits) as (kept, _):
                    _decode_full(kept)  # the stored copy must decode; IngestError if it does not
                    return CleanImage(stripped, "image/jpeg", ".jpg", kept.width, kept.height, sha)
        icc = image.info.get("icc_profile")
        icc = scrub_icc_text(icc) if icc else None  # colour kept, its free text blanked
        transparency = image.info.get("transparency")  # palette / grey tRNS, not metadata
        if image.format == "HEIF":
            _load_heif(image, max_pixels=max_pixels, min_side_px=min_side_px)
        with _pillow_guard("re-saved"):
            full = _apply_orientation(_decode_full(image), to_apply)
            full.info = {}
            out = io.BytesIO()
            if fmt == "PNG":
                extra = {"transparency": transparency} if transparency is not None else {}
                if full.mode not in _PNG_MODES:
                    full, extra = to_rgb(full), {}
                full.save(out, format="PNG", icc_profile=icc, **extra)
                media, ext = "image/png", ".png"
            else:
                if full.mode not in ("RGB", "L", "CMYK"):
                    full = to_rgb(full)
                full.save(out, format="JPEG", quality=95, icc_profile=icc)
                media, ext = "image/jpeg", ".jpg"
    return CleanImage(out.getvalue(), media, ext, full.width, full.height, sha)


_PNG_MODES = ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA")


def too_big_message(size_bytes: int, max_bytes: int) -> str:
    """User message for a file over the size limit (MB = 1024 x 1024 bytes, as Streamlit)."""
    return (
        f"The file is {_number(size_bytes / 2**20)} MB; the limit is {_number(max_bytes / 2**20)} "
        "MB. Export the photo at a smaller size and upload it again."
    )


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def check_content(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Decide the format from the magic bytes; raise ``IngestError`` unless it is allowed.

    Returns ``"JPEG"``, ``"PNG"`` or ``"HEIF"``.
    """
    if len(data) == 0:
        raise IngestError("The file is empty (0 bytes). " + _HINT)
    if len(data) > max_bytes:
        raise IngestError(too_big_message(len(data), max_bytes))
    kind = sniff(data)
    if kind == UNKNOWN:
        raise IngestError(f"This file is not a recognisable image. {_HINT}")
    if kind not in ALLOWED_FORMATS:
        raise IngestError(f"This file is {kind}, not a photo Candor can read. {_HINT}")
    hidden = hidden_content(data)
    if hidden == "PDF":
        raise IngestError(
            f"This file is a {kind} that also contains a PDF document, which is not allowed. "
            "Save the photo again from your photo app (or take a screenshot) and upload that."
        )
    if hidden == "ZIP":
        raise IngestError(
            f"This file is a {kind} with a ZIP archive hidden inside it, which is not allowed. "
            "Save the photo again from your photo app and upload that."
        )
    return kind


def _load_bytes(source: bytes | str | Path, *, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if not isinstance(source, (str, Path)):
        raise TypeError(f"source must be bytes, str or Path, got {type(source).__name__}")
    path = Path(source)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise IngestError(too_big_message(size, max_bytes))
        with path.open("rb") as handle:
            return handle.read(max_bytes + 1)
    except IngestError:
        raise
    except IsADirectoryError as exc:
        raise IngestError(f"{path.name} is a folder, not a photo. {_HINT}") from exc
    except OSError as exc:
        raise IngestError(f"The file {path.name} could not be read ({exc.strerror}).") from exc


@contextmanager
def _pillow_guard(what: str = "decoded") -> Iterator[None]:
    """Turn every decoder failure into an ``IngestError`` with a plain message."""
    try:
        yield
    except IngestError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise IngestError(_bomb_message(exc)) from exc
    except MemoryError as exc:
        raise IngestError(
            "The photo is too large to process. Export it at a smaller size and upload again."
        ) from exc
    except OSError as exc:
        if "truncated" in str(exc).lower() or "end of file" in str(exc).lower():
            raise IngestError(
                "The photo file is incomplete (it ends before the picture does); the upload "
                "or copy was probably interrupted. Upload the original photo again."
            ) from exc
        raise IngestError(
            f"The photo file is damaged and could not be {what}. Upload the original photo again."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on hostile input
        raise IngestError(
            f"The photo file is damaged and could not be {what}. Upload the original photo again."
        ) from exc


WARNINGS_LOCK = threading.Lock()
"""Held by every ``warnings.catch_warnings`` block of the photo engine (here and
:mod:`analysis.photos.landmarks`): the filters are process-wide, and a photo is read on one thread
while another is measured (:func:`analysis.photos.measure.measure_paths`)."""


@contextmanager
def _bomb_warning_is_error() -> Iterator[None]:
    """Pillow's ``DecompressionBombWarning`` raises; its metadata warnings are silenced.

    ``warnings`` filters are process-wide and ``catch_warnings`` is not thread-safe, so the block
    runs under a lock. It only covers opening the header and reading EXIF (milliseconds): the
    bomb check happens in ``Image.open``, never while decoding pixels.
    """
    with WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plugins warn about malformed metadata they skip
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _bomb_message(exc: Exception) -> str:
    """Message for Pillow's decompression-bomb guard, which fires inside ``Image.open``."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = int(found.group(1)) if found else 0
    if isinstance(exc, Image.DecompressionBombError) or not pixels:
        size = f" ({_number(pixels / 1e6)} megapixels)" if pixels else ""
        return (
            f"The photo claims a size far too large for a real photo{size}: the file is damaged "
            f"or built to exhaust memory (a decompression bomb). {_HINT}"
        )
    return (
        f"The photo has {_number(pixels / 1e6)} megapixels; the limit is "
        f"{_number((Image.MAX_IMAGE_PIXELS or 0) / 1e6)} megapixels. "  # set: a bomb check ran
        "Export it at a smaller size and upload it again."
    )


@contextmanager
def _opened(
    data: bytes, fmt: str, *, max_pixels: int, min_side_px: int
) -> Iterator[tuple[Image.Image, CaptureInfo]]:
    """Open (header only) with the format's own plugin, read EXIF, check the header size."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # process-wide: re-asserted in case anyone set it
    with _pillow_guard("opened"), _bomb_warning_is_error():
        if fmt == "HEIF":
            import analysis.photos.heif  # noqa: F401 - registers the opener (see there)
        formats = ["JPEG", "MPO"] if fmt == "JPEG" else [fmt]
        image = Image.open(io.BytesIO(data), formats=formats)
        try:
            info = read_capture_info(image)
        except BaseException:
            image.close()
            raise
    try:
        _check_dimensions(*image.size, max_pixels=max_pixels, min_side_px=min_side_px)
        yield image, info
    finally:
        image.close()


def _check_dimensions(width: int, height: int, *, max_pixels: int, min_side_px: int) -> None:
    if width * height > max_pixels:
        raise IngestError(
            f"The photo is {width} x {height} pixels ({_number(width * height / 1e6)} "
            f"megapixels); the limit is {_number(max_pixels / 1e6)} megapixels. "
            "Export it at a smaller size and upload it again."
        )
    if min(width, height) < min_side_px:
        raise IngestError(
            f"The photo is only {width} x {height} pixels; at least {min_side_px} pixels on "
            "each side are needed. Upload the original photo, not a thumbnail."
        )


def _load_heif(image: Image.Image, *, max_pixels: int, min_side_px: int) -> None:
    """Decode a HEIF now: its real size is known only after decoding.

    The header's ``ispe`` size can disagree with the coded image (found by the fuzz test);
    pillow-heif updates ``image.size`` on load, and the limits are checked again on that size.
    libheif's own security limits bound the allocation during decoding.
    """
    with _pillow_guard():
        image.load()
    _check_dimensions(*image.size, max_pixels=max_pixels, min_side_px=min_side_px)


def _heif_pixels(image: Image.Image, *, max_pixels: int, min_side_px: int) -> np.ndarray | None:
    """A HEIF's decoded 8-bit RGB primary image as a read-only view of pillow-heif's own buffer.

    Pillow's ``load`` copies the decoded frame into its own memory (``frombytes``, 166 ms for a
    12 MP tile grid) and the LANCZOS shrink after it took another ~100 ms; reading libheif's buffer
    and shrinking it with :func:`analysis.photos.resample.shrink` skips both
    (``benchmarks/photo_speed.py --heic``). The limits are checked on the decoded size, as
    :func:`_load_heif` does. ``None`` (nothing decoded) when the plugin does not expose its decoded
    image or it is not 8-bit RGB (e.g. 10-bit, alpha): the caller then takes the Pillow path.
    """
    heif_file = getattr(image, "_heif_file", None)
    if heif_file is None:
        return None
    try:
        frame = heif_file[image.tell()]
    except Exception:  # noqa: BLE001 - a plugin without this layout: the Pillow path
        return None
    if getattr(frame, "mode", None) != "RGB":
        return None
    with _pillow_guard():
        frame.load()
        width, height = frame.size
        _check_dimensions(width, height, max_pixels=max_pixels, min_side_px=min_side_px)
        stride = int(frame.stride)
        buffer = np.frombuffer(frame.data, dtype=np.uint8)
    # rows are ``stride`` bytes, which need not be a multiple of 3 (9008 for 3000 px), so the view
    # is cut from the bytes (pillow-heif's own __array_interface__ divides the stride by 3)
    if stride < 3 * width or buffer.size < stride * (height - 1) + 3 * width:
        return None
    rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, 3 * width), strides=(stride, 1))
    return rows.reshape(height, width, 3)


def _orientation(image: Image.Image, info: CaptureInfo) -> tuple[int, int]:
    """(orientation stored in the file, orientation still to apply to the decoded pixels).

    libheif applies a HEIF's own rotation/mirror boxes while decoding, and pillow-heif then resets
    the EXIF tag to 1 and keeps the file's value in ``info["original_orientation"]``.
    """
    if image.format == "HEIF":
        return parse_orientation(image.info.get("original_orientation")), 1
    return info.orientation, info.orientation


_REDUCING_GAP = 1.5


def _decode_small(image: Image.Image, orientation: int, *, out_w: int, out_h: int) -> np.ndarray:
    """Decode at the smallest size that still covers ``out_w x out_h`` (after orientation).

    Modes Pillow resamples well (8-bit grey/colour, with or without alpha, which it resamples
    premultiplied) are shrunk before the conversion to RGB, so a large PNG is never converted at
    full size; the others (palette, 1-bit, 16-bit, CMYK) are converted first.
    """
    want = (out_h, out_w) if orientation >= 5 else (out_w, out_h)
    with _pillow_guard():
        if image.format in ("JPEG", "MPO") and image.size != want:
            # DCT scaling to the smallest 1/2..1/8 scale that still covers 3/4 of the target; a
            # result between 3/4 and all of ``want`` is used as decoded (12 MP at 1/4 scale for the
            # default 1280), because a resampling pass after the draft cost more than the decode
            # itself (benchmarks/photo_speed.py). Otherwise it is resampled down to ``want``.
            image.draft("RGB", (max(1, want[0] * 3 // 4), max(1, want[1] * 3 // 4)))
        image.load()
        frame: Image.Image = image
        if (
            image.format in ("JPEG", "MPO")
            and frame.size[0] <= want[0]
            and frame.size[1] <= want[1]
        ):
            want = frame.size
        # reducing_gap 1.5: a whole-factor box reduction first whenever the shrink is 3x or more
        # (12 MP HEIC/PNG -> 1280 px: 60 instead of 140 ms CPU, within 0.3 grey levels on average
        # of Lanczos over the full frame; the JPEG path's DCT scaling is a coarser filter still)
        if frame.size != want and frame.mode in ("RGB", "RGBA", "L", "LA"):
            frame = frame.resize(want, Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)
        frame = to_rgb(frame)
        if frame.size != want:
            frame = frame.resize(want, Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)
        frame = _apply_orientation(frame, orientation)
        rgb = rgb_array(frame)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise IngestError("The photo file is damaged and could not be decoded. " + _HINT)
    return np.ascontiguousarray(rgb)


def rgb_array(image: Image.Image) -> np.ndarray:
    """A new C-contiguous ``uint8`` ``(H, W, 3)`` array of an RGB image (other modes: as
    ``np.asarray``).

    ``np.asarray`` goes through ``Image.tobytes``, which packs Pillow's 4-byte RGB pixels in
    64 kB chunks and joins them: ~3 ms for a 1000 x 750 analysis copy. Pillow's Arrow export
    shares the 4-byte pixels without a copy, and one ``cv2.cvtColor`` drops the padding byte
    (~0.15 ms); the values are the same. Images Pillow cannot export that way (e.g. stored in
    several memory blocks) fall back to ``np.asarray``.
    """
    if image.mode == "RGB" and image.width > 0 and image.height > 0:
        try:
            import cv2
            import pyarrow as pa

            exported = pa.array(image)
            # the child array's data buffer itself: ``flatten()`` would import pyarrow.compute
            # (~30 ms at start-up) and Arrow's to_numpy pandas (~0.2 s); Pillow exports the whole
            # image unsliced, so the children start at the array's own offset times 4
            flat = exported.values
            start = flat.offset + exported.offset * 4
            count = len(exported) * 4
            pixels = np.frombuffer(flat.buffers()[1], np.uint8, count=count, offset=start)
            padded = pixels.reshape(image.height, image.width, 4)
            return np.ascontiguousarray(cv2.cvtColor(padded, cv2.COLOR_RGBA2RGB))
        except Exception:  # noqa: BLE001 - any export problem: the plain copy below
            pass
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _decode_full(image: Image.Image) -> Image.Image:
    with _pillow_guard():
        image.load()
        return image.copy()


_TRANSPOSE = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def _apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """Apply EXIF orientation 1..8 so the result is upright (as ``ImageOps.exif_transpose``)."""
    for method in _TRANSPOSE.get(orientation, ()):
        image = image.transpose(method)
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited on white.

    16- and 32-bit integer modes (``I;16``, ``I``) are scaled to 0..255 by their bit depth rather
    than clipped.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(image).astype(np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        grey = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB")
    if mode == "F":
        arr = np.nan_to_num(np.asarray(image, dtype=np.float64))
        grey = np.clip(arr + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB")
    if mode == "P" or mode == "PA":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "L" and "transparency" in image.info:
        return to_rgb(image.convert("LA"))
    if mode == "RGB" or mode == "CMYK" or mode in ("L", "1", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB")
    return image.convert("RGB")
