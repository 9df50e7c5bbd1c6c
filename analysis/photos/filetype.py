"""What a file is, decided from its content (magic bytes), never from its name.

``sniff`` names the type of an upload: one of the photo formats Candor reads (``"JPEG"``,
``"PNG"``, ``"HEIF"``), a human description of anything else (``"a PDF document"``,
``"a GIF image"``...) for the refusal message, or ``UNKNOWN``. ``hidden_content`` finds
polyglots: photos that are at the same time a PDF or a ZIP archive.
"""

from __future__ import annotations

UNKNOWN = "unknown"
PHOTO_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "HEIF")

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_VIDEO_BRANDS = {b"isom", b"iso2", b"mp41", b"mp42", b"qt  ", b"3gp4", b"3gp5", b"M4V "}


def sniff(data: bytes) -> str:
    """Name of the file type from its first bytes.

    Returns one of ``PHOTO_FORMATS``, a human description such as ``"a PDF document"``, or
    ``UNKNOWN``.
    """
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brands = _ftyp_brands(data)
        if brands & _HEIF_BRANDS and not brands & _AVIF_BRANDS:
            return "HEIF"
        if brands & _AVIF_BRANDS:
            return "an AVIF image"
        if brands & _VIDEO_BRANDS:
            return "a video"
        return "an unknown ISO media file"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    text = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"%PDF-" in data[:1024]:  # PDF readers accept junk before the header
        return "a PDF document"
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in data[:4096].lower()):
        return "an SVG drawing"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script")):
        return "a web page (HTML)"
    if text.startswith(b"<"):
        return "an XML or markup document"
    if _looks_like_text(data[:4096]):
        return "a text file"
    return UNKNOWN


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or Office document)"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"MZ", "a Windows program"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 image"),
    (b"\x00\x00\x01\x00", "an icon (ICO) file"),
    (b"8BPS", "a Photoshop document"),
    (b"\xd0\xcf\x11\xe0", "an old Office document"),
)


def _ftyp_brands(data: bytes) -> set[bytes]:
    size = int.from_bytes(data[0:4], "big")
    size = min(max(size, 16), 256, len(data))
    brands = {data[8:12]}
    brands.update(data[i : i + 4] for i in range(16, size - 3, 4))
    return brands


def _looks_like_text(chunk: bytes) -> bool:
    if not chunk:
        return False
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in chunk)
    return printable / len(chunk) > 0.95


def hidden_content(data: bytes) -> str | None:
    """What else an image file also is, or ``None``.

    ``"PDF"`` when ``%PDF-`` occurs within the first 1024 bytes (where PDF readers look for it);
    ``"ZIP"`` when the file ends with a valid ZIP end-of-central-directory record (so ZIP tools
    open it). Phones' own trailers after the image (motion-photo video, maker notes) are neither.
    """
    if b"%PDF-" in data[:1024]:
        return "PDF"
    if has_zip_directory(data):
        return "ZIP"
    return None


def has_zip_directory(data: bytes) -> bool:
    """True when ``data`` ends with a valid ZIP end-of-central-directory record."""
    tail_start = max(0, len(data) - 22 - 65535)
    pos = data.rfind(b"PK\x05\x06", tail_start)
    while pos >= 0:
        if pos + 22 <= len(data):
            comment_len = int.from_bytes(data[pos + 20 : pos + 22], "little")
            if pos + 22 + comment_len == len(data):
                return True
        pos = data.rfind(b"PK\x05\x06", tail_start, pos)
    return False
