"""Photo metadata: capture information read from EXIF, and lossless JPEG metadata stripping.

Only three things are read, all optional: the EXIF orientation (1..8), the capture time and the
focal length. Broken or hostile EXIF never fails an upload: whatever cannot be parsed is reported
as absent (orientation 1, time ``None``, focal length ``None``).

Capture-time convention
-----------------------
``DateTimeOriginal`` is the camera's wall-clock time. When ``OffsetTimeOriginal`` (EXIF 2.31,
written by iPhones and recent Android phones) is present the time is converted to UTC and returned
as an *aware* ``datetime`` with ``tzinfo=timezone.utc``. When no offset is recorded the zone is
unknown: the value is returned **naive** (no ``tzinfo``), i.e. "camera local time, zone unknown";
callers must not treat a naive value as UTC. Fallbacks, in order: ``DateTimeDigitized`` with
``OffsetTimeDigitized``, then IFD0 ``DateTime`` with ``OffsetTime``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image

# EXIF tag numbers (EXIF 2.32 / TIFF 6.0)
TAG_ORIENTATION = 0x0112
TAG_DATETIME = 0x0132
TAG_EXIF_IFD = 0x8769
TAG_DATETIME_ORIGINAL = 0x9003
TAG_DATETIME_DIGITIZED = 0x9004
TAG_OFFSET_TIME = 0x9010
TAG_OFFSET_TIME_ORIGINAL = 0x9011
TAG_OFFSET_TIME_DIGITIZED = 0x9012
TAG_FOCAL_LENGTH = 0x920A
TAG_SUBSEC_TIME_ORIGINAL = 0x9291
TAG_FOCAL_LENGTH_35MM = 0xA405

_DATETIME_RE = re.compile(r"^\s*(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_RE = re.compile(r"^\s*([+-])(\d{2}):(\d{2})\s*$")


@dataclass(frozen=True)
class CaptureInfo:
    """Capture metadata of one photo; see the module docstring for the time convention."""

    orientation: int = 1
    taken_at_utc: datetime | None = None
    focal_length_mm: float | None = None
    focal_length_35mm: float | None = None


def read_capture_info(image: Image.Image) -> CaptureInfo:
    """Read orientation, capture time and focal length from an opened (not decoded) image.

    Parameters
    ----------
    image : PIL.Image.Image
        An image returned by ``Image.open``; only its metadata is touched.

    Returns
    -------
    CaptureInfo
        Defaults (orientation 1, everything else ``None``) for whatever is absent or unreadable.

    Notes
    -----
    Pillow emits a ``UserWarning`` for every malformed tag it skips; ``analysis.photos.ingest``
    calls this with warnings silenced (under its lock, as ``warnings`` filters are process-wide).
    """
    try:
        exif = image.getexif()
        ifd0 = dict(exif)
        try:
            sub = dict(exif.get_ifd(TAG_EXIF_IFD))
        except Exception:  # noqa: BLE001 - a broken sub-IFD only loses the capture fields
            sub = {}
    except Exception:  # noqa: BLE001 - hostile EXIF must never fail an upload
        return CaptureInfo()
    return CaptureInfo(
        orientation=parse_orientation(ifd0.get(TAG_ORIENTATION)),
        taken_at_utc=_capture_time(ifd0, sub),
        focal_length_mm=_positive_float(sub.get(TAG_FOCAL_LENGTH)),
        focal_length_35mm=_positive_float(sub.get(TAG_FOCAL_LENGTH_35MM)),
    )


def parse_orientation(value: Any) -> int:
    """EXIF orientation as an int in 1..8; anything else (absent, 0, 9, junk) gives 1."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return 1
    return number if 1 <= number <= 8 else 1


def parse_exif_datetime(value: Any, offset: Any = None, subsec: Any = None) -> datetime | None:
    """Parse an EXIF ``"YYYY:MM:DD HH:MM:SS"`` string with an optional ``"+HH:MM"`` offset.

    Returns an aware UTC datetime when ``offset`` parses, a naive one (zone unknown) when it does
    not, and ``None`` for empty or impossible values such as ``"0000:00:00 00:00:00"``.
    """
    text = _text(value)
    match = _DATETIME_RE.match(text) if text else None
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        stamp = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    digits = "".join(ch for ch in _text(subsec) if ch.isdigit())[:6]
    if digits:
        stamp = stamp.replace(microsecond=int(digits.ljust(6, "0")))
    off = _OFFSET_RE.match(_text(offset))
    if off is None:
        return stamp
    sign = 1 if off.group(1) == "+" else -1
    hours, minutes = int(off.group(2)), int(off.group(3))
    if hours > 14 or minutes > 59:
        return stamp
    delta = timedelta(hours=hours, minutes=minutes) * sign
    try:
        return (stamp - delta).replace(tzinfo=UTC)
    except OverflowError:
        return None


def _capture_time(ifd0: dict[int, Any], sub: dict[int, Any]) -> datetime | None:
    candidates = (
        (
            sub.get(TAG_DATETIME_ORIGINAL),
            sub.get(TAG_OFFSET_TIME_ORIGINAL),
            sub.get(TAG_SUBSEC_TIME_ORIGINAL),
        ),
        (sub.get(TAG_DATETIME_DIGITIZED), sub.get(TAG_OFFSET_TIME_DIGITIZED), None),
        (ifd0.get(TAG_DATETIME), sub.get(TAG_OFFSET_TIME), None),
    )
    for value, offset, subsec in candidates:
        stamp = parse_exif_datetime(value, offset, subsec)
        if stamp is not None:
            return stamp
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return ""
    return value.strip("\x00 ")


def _positive_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return number if math.isfinite(number) and 0 < number < 10_000 else None


# --------------------------------------------------------------------------------------------
# Lossless metadata stripping for JPEG (ITU-T T.81 marker segments)
# --------------------------------------------------------------------------------------------

_KEEP_APP = {
    0xE0: b"JFIF\x00",  # APP0 JFIF header (thumbnail removed below)
    0xE2: b"ICC_PROFILE\x00",  # colour profile
    0xEE: b"Adobe",  # colour-transform flag; dropping it changes the decoded pixels
}


_ICC_HEADER = b"ICC_PROFILE\x00"
#: ICC tag types that hold free text (ICC.1:2001-04 textDescriptionType and textType; ICC.1:2010
#: multiLocalizedUnicodeType). Profile descriptions, copyright and device names can carry a
#: person's or a machine's name; the colour tags (curves, matrices, LUTs) carry nothing of the kind.
_ICC_TEXT_TYPES = (b"desc", b"text", b"mluc")


def scrub_icc_text(profile: bytes) -> bytes | None:
    """The ICC profile with every text character blanked, colour data untouched; None if malformed.

    Every tag whose type is text (``desc``, ``text``, ``mluc``) keeps its size and structure, but
    each character becomes a space (ASCII and UTF-16) or a NUL (the Mac script field), so offsets
    and counts stay valid and colour management reads the profile exactly as before. The header's
    profile ID (an MD5 of the content) is zeroed, which ICC.1 defines as "not computed".
    """
    buf = bytearray(profile)
    size = len(buf)
    if size < 132 or buf[36:40] != b"acsp" or int.from_bytes(buf[0:4], "big") > size:
        return None
    count = int.from_bytes(buf[128:132], "big")
    if 132 + 12 * count > size:
        return None
    for i in range(count):
        entry = 132 + 12 * i
        offset = int.from_bytes(buf[entry + 4 : entry + 8], "big")
        length = int.from_bytes(buf[entry + 8 : entry + 12], "big")
        if offset + length > size or length < 8:
            return None
        kind = bytes(buf[offset : offset + 4])
        if kind in _ICC_TEXT_TYPES and not _blank_icc_text(buf, offset, length, kind):
            return None
    buf[84:100] = bytes(16)
    return bytes(buf)


def _blank(buf: bytearray, start: int, stop: int, *, wide: bool = False) -> None:
    """Spaces over ``buf[start:stop]`` up to its first NUL (the NUL and what follows: NULs)."""
    step = 2 if wide else 1
    ended = False
    for pos in range(start, stop - step + 1, step):
        char = buf[pos : pos + step]
        ended = ended or not any(char)
        buf[pos : pos + step] = bytes(step) if ended else (b"\x00 " if wide else b" ")


def _blank_icc_text(buf: bytearray, offset: int, length: int, kind: bytes) -> bool:
    end = offset + length
    if kind == b"text":
        _blank(buf, offset + 8, end)
        return True
    if kind == b"mluc":
        if length < 16:
            return False
        records = int.from_bytes(buf[offset + 8 : offset + 12], "big")
        record_size = int.from_bytes(buf[offset + 12 : offset + 16], "big")
        if record_size < 12 or 16 + records * record_size > length:
            return False
        for r in range(records):
            rec = offset + 16 + r * record_size
            n = int.from_bytes(buf[rec + 4 : rec + 8], "big")
            at = offset + int.from_bytes(buf[rec + 8 : rec + 12], "big")
            if at + n > end:
                return False
            _blank(buf, at, at + n - n % 2, wide=True)
        return True
    # textDescriptionType: ASCII count + string, Unicode language + count + UTF-16, Mac script
    if length < 12:
        return False
    n_ascii = int.from_bytes(buf[offset + 8 : offset + 12], "big")
    pos = offset + 12 + n_ascii
    if pos > end:
        return False
    _blank(buf, offset + 12, pos)
    if pos + 8 <= end:
        n_uni = int.from_bytes(buf[pos + 4 : pos + 8], "big")
        start = pos + 8
        stop = min(end, start + 2 * n_uni)
        _blank(buf, start, stop - (stop - start) % 2, wide=True)
        mac = stop + 3  # script code (2 bytes) and count (1 byte) precede the 67-byte Mac string
        if mac < end:
            buf[mac : min(end, mac + 67)] = bytes(min(end, mac + 67) - mac)
    return True


def _icc_segments(chunks: dict[int, bytes], total: int) -> list[bytes] | None:
    """APP2 segments of the scrubbed profile, cut as the original was (None: unusable chunks)."""
    if total == 0 or sorted(chunks) != list(range(1, total + 1)):
        return None
    scrubbed = scrub_icc_text(b"".join(chunks[i] for i in range(1, total + 1)))
    if scrubbed is None:
        return None
    out, pos = [], 0
    for i in range(1, total + 1):
        n = len(chunks[i])
        body = _ICC_HEADER + bytes([i, total]) + scrubbed[pos : pos + n]
        out.append(b"\xff\xe2" + (len(body) + 2).to_bytes(2, "big") + body)
        pos += n
    return out


def strip_jpeg_metadata(data: bytes) -> bytes | None:
    """Remove metadata segments from a JPEG without touching its compressed pixels.

    Walks the marker segments (ITU-T T.81, Annex B). Dropped: every APPn segment except APP0
    ``JFIF`` (its embedded thumbnail is removed), APP2 ``ICC_PROFILE`` (its text blanked by
    :func:`scrub_icc_text`; a profile whose chunks or tags do not add up is dropped) and APP14
    ``Adobe``; every COM segment; anything after the end-of-image marker (MPF second images,
    appended archives).
    Everything else (quantisation and Huffman tables, frame and scan headers, entropy-coded data,
    restart markers) is copied byte for byte, so the decoded pixels are identical.

    Returns
    -------
    bytes or None
        The cleaned JPEG, or ``None`` when the marker structure is malformed or ends before the
        end-of-image marker (the caller then re-encodes, or reports the file as damaged).
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    out = [b"\xff\xd8"]
    icc: dict[int, bytes] = {}
    icc_total, icc_at = 0, -1  # chunks by sequence number, their declared count, where they go
    pos, size = 2, len(data)
    while pos < size:
        while pos + 1 < size and data[pos] == 0xFF and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos + 1 >= size or data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xD9:
            out.append(b"\xff\xd9")
            if icc_at >= 0:
                out[icc_at : icc_at + 1] = _icc_segments(icc, icc_total) or []
            return b"".join(out)
        if marker == 0x01 or 0xD0 <= marker <= 0xD7 or marker in (0x00, 0xD8):
            if marker in (0x00, 0xD8):
                return None
            out.append(data[pos : pos + 2])
            pos += 2
            continue
        if pos + 4 > size:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > size:
            return None
        payload = data[pos + 4 : end]
        if marker == 0xE0 and payload.startswith(b"JFIF\x00") and len(payload) >= 14:
            out.append(b"\xff\xe0\x00\x10" + payload[:12] + b"\x00\x00")
        elif marker == 0xE2 and payload.startswith(_ICC_HEADER) and len(payload) >= 14:
            if icc_at < 0:
                icc_at = len(out)
                out.append(b"")  # the scrubbed profile goes here once every chunk is read
            seq, total = payload[12], payload[13]
            if seq in icc or (icc_total and total != icc_total):
                icc_total = -1  # repeated or inconsistent chunks: the profile is dropped
            elif icc_total >= 0:
                icc[seq], icc_total = payload[14:], total
        elif 0xE0 <= marker <= 0xEF:
            prefix = _KEEP_APP.get(marker)
            if prefix is not None and marker != 0xE0 and payload.startswith(prefix):
                out.append(data[pos:end])
        elif marker == 0xFE:
            pass  # COM
        else:
            out.append(data[pos:end])
        pos = end
        if marker == 0xDA:  # start of scan: copy entropy-coded data up to the next real marker
            scan_end = _end_of_entropy_data(data, pos)
            if scan_end is None:
                return None
            out.append(data[pos:scan_end])
            pos = scan_end
    return None


def _end_of_entropy_data(data: bytes, pos: int) -> int | None:
    """Index of the first marker after entropy-coded data starting at ``pos`` (None if absent)."""
    size = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= size:
            return None
        nxt = data[pos + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            pos += 2  # stuffed byte or restart marker: part of the scan
            continue
        if nxt == 0xFF:
            # fill bytes: the marker starts at the last 0xFF of the run
            run = pos
            while run + 1 < size and data[run + 1] == 0xFF:
                run += 1
            if run + 1 >= size:
                return None
            if data[run + 1] == 0x00:
                pos = run + 2
                continue
            return pos
        return pos
