"""Build tests/data/hostile/: small malformed and hostile files for the ingest tests.

Run from the project root:  .venv/bin/python tests/data/make_hostile_corpus.py

Everything is derived from skimage's bundled ``astronaut()`` (no patient data) and is
deterministic (fixed seeds, fixed EXIF, no timestamps), so re-running the script reproduces the
committed bytes. ``MANIFEST.json`` records, for every file, how it was made and what ingest must do
with it:

* ``"reject"``: ``read_photo`` and ``clean_original`` raise ``IngestError`` whose message matches
  the regular expression ``match`` (it names the problem);
* ``"accept"``: a valid photo with a hostile or private detail (GPS, broken EXIF, ...) that ingest
  must read, and ``clean_original`` must scrub (``must_not_contain`` lists byte strings that may
  not survive cleaning);
* ``"either"``: damage a decoder may or may not tolerate (bit flips inside the compressed pixels);
  the only requirement is "a photo or an IngestError, nothing else".

The whole corpus stays well under 2 MB.
"""

from __future__ import annotations

import io
import json
from typing import cast
import random
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, PngImagePlugin
from skimage import data

pillow_heif.register_heif_opener()  # Pillow saves HEIF only once it is registered

OUT = Path(__file__).resolve().parent / "hostile"
_FIXED_DATE = time.gmtime(1_735_689_600)  # 2025-01-01 UTC  # PDF dates, for reproducible bytes

NOT_A_PHOTO = r"This file is .*not a photo Candor can read\. Upload a JPEG, PNG or HEIC photo\."
DAMAGED = r"damaged|incomplete"
BOMB = r"far too large for a real photo \(\d+ megapixels\).*decompression bomb"
TOO_LARGE = r"The photo has \d+ megapixels; the limit is 80 megapixels"


def _base(size: int = 256) -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.BILINEAR)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png(width: int, height: int, idat: bytes, *, color_type: int = 0, extra: bytes = b"") -> bytes:
    """A PNG with a hand-written IHDR (bit depth 8, correct CRCs) and the given IDAT payload."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + extra
            + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


def _zeros_zlib(n_bytes: int) -> bytes:
    """zlib stream of ``n_bytes`` zero bytes, compressed in 1 MiB steps (never held in memory)."""
    compressor = zlib.compressobj(9)
    block = bytes(1 << 20)
    parts = []
    remaining = n_bytes
    while remaining > 0:
        step = min(remaining, len(block))
        parts.append(compressor.compress(block[:step]))
        remaining -= step
    parts.append(compressor.flush())
    return b"".join(parts)


def _jpeg_segments(jpeg: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of the header segments of a baseline JPEG, up to and including SOS."""
    segments, pos = [], 2
    while pos < len(jpeg):
        marker = jpeg[pos + 1]
        length = struct.unpack(">H", jpeg[pos + 2:pos + 4])[0]
        segments.append((marker, pos, pos + 2 + length))
        pos += 2 + length
        if marker == 0xDA:
            break
    return segments


def _set_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """Rewrite the SOF0 frame header's height/width fields (the pixels are left as they are)."""
    out = bytearray(jpeg)
    for marker, start, _ in _jpeg_segments(jpeg):
        if marker == 0xC0:
            struct.pack_into(">HH", out, start + 5, height, width)
            return bytes(out)
    raise ValueError("no SOF0 segment")


def _gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "CandorTestCam"  # Make
    exif[0x0110] = "Model-GPS-1"  # Model
    exif[0x0131] = "SecretEditor 1.0"  # Software
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2025:03:14 09:26:53"
    sub[0x9011] = "+01:00"
    sub[0x920A] = 4.25
    sub[0xA405] = 26
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 22.0, 12.34)
    gps[3] = "E"
    gps[4] = (4.0, 53.0, 40.12)
    return exif


def build(out: Path = OUT) -> dict[str, dict[str, object]]:
    """Write every corpus file into ``out`` (replacing its content); return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20251122)
    base = _base()
    jpeg = _save(base, "JPEG", quality=85)
    png = _save(base, "PNG")
    files: dict[str, tuple[bytes, str, str, str]] = {}

    def add(name: str, content: bytes, how: str, expect: str = "reject", match: str = "") -> None:
        files[name] = (content, how, expect, match)

    # --- damaged photos -------------------------------------------------------------------
    add("truncated.jpg", jpeg[: len(jpeg) * 6 // 10],
        "256x256 JPEG cut after 60% of its bytes", match="incomplete")
    add("truncated.png", png[: len(png) * 6 // 10],
        "256x256 PNG cut after 60% of its bytes (inside IDAT)", match=DAMAGED)
    add("truncated_header.jpg", jpeg[:120], "JPEG cut inside its header segments", match=DAMAGED)
    heif = _save(base, "HEIF", quality=60)
    add("truncated.heic", heif[: len(heif) // 2], "HEIC cut after 50% of its bytes", match=DAMAGED)

    flipped = bytearray(jpeg)
    segments = _jpeg_segments(jpeg)
    sof = next(start for marker, start, _ in segments if marker == 0xC0)
    flipped[sof + 4] ^= 0x08  # sample precision 8 -> 0: no decoder accepts it
    dht_start, dht_end = next((s, e) for m, s, e in segments if m == 0xC4)
    for _ in range(8):  # and scramble the first Huffman table's code counts
        flipped[rng.randrange(dht_start + 5, min(dht_start + 21, dht_end))] ^= 1 << rng.randrange(8)
    add("bitflip_header.jpg", bytes(flipped),
        "bits flipped in the SOF0 sample precision and in the first DHT's code counts",
        match=DAMAGED)

    scan = bytearray(jpeg)
    sos_end = segments[-1][2]
    for _ in range(40):
        scan[rng.randrange(sos_end, len(scan) - 2)] ^= 1 << rng.randrange(8)
    add("bitflip_scan.jpg", bytes(scan), "40 random bits flipped in the entropy-coded data",
        expect="either")

    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # last byte of the IHDR CRC
    add("bad_crc.png", bytes(bad_crc), "PNG whose IHDR checksum is wrong", match=DAMAGED)

    # --- decompression bombs ----------------------------------------------------------------
    add("bomb_100000x100000.png", _png(100_000, 100_000, zlib.compress(bytes(1000))),
        "PNG whose IHDR claims 100000 x 100000 px (10 gigapixels; CRC recomputed), 1 kB of data",
        match=BOMB)
    add("bomb_65000x65000.jpg", _set_jpeg_size(jpeg, 65_000, 65_000),
        "256x256 JPEG whose SOF0 header was edited to claim 65000 x 65000 px", match=BOMB)
    add("zipbomb_12000x12000.png", _png(12_000, 12_000, _zeros_zlib(12_000 * 12_001)),
        "greyscale PNG 12000 x 12000 (144 MP) whose IDAT is 144 MB of zeros deflated to ~140 kB",
        match=TOO_LARGE)
    add("bomb_9000x9000.png", _png(9_000, 9_000, _zeros_zlib(9_000 * 9_001)),
        "greyscale PNG 9000 x 9000 (81 MP, just over the 80 MP limit), IDAT of zeros",
        match=TOO_LARGE)
    iccp_bomb = zlib.compress(bytes(80 * 1024 * 1024), 9)
    raw = np.asarray(base.convert("L"))
    rows = b"".join(b"\x00" + row.tobytes() for row in raw)
    add("iccp_bomb.png", _png(256, 256, zlib.compress(rows), extra=_png_chunk(
        b"iCCP", b"icc\x00\x00" + iccp_bomb)),
        "valid 256x256 PNG with an iCCP colour profile that inflates to 80 MB", match=DAMAGED)

    # --- tiny and empty ---------------------------------------------------------------------
    add("tiny_32x32.png", _save(base.resize((32, 32)), "PNG"), "a 32 x 32 px PNG thumbnail",
        match=r"only 32 x 32 pixels")
    add("zero_width.png", _png(0, 256, zlib.compress(b"")), "PNG whose IHDR says width 0",
        match=DAMAGED + "|only 0 x")
    add("empty.jpg", b"", "an empty file named .jpg", match=r"empty \(0 bytes\)")

    # --- other formats renamed .jpg ---------------------------------------------------------
    add("gif_renamed.jpg", _save(base, "GIF"), "a GIF image named .jpg", match="GIF")
    add("bmp_renamed.jpg", _save(base, "BMP"), "a BMP image named .jpg", match="BMP")
    add("tiff_renamed.jpg", _save(base, "TIFF"), "a TIFF image named .jpg", match="TIFF")
    add("webp_renamed.jpg", _save(base, "WEBP", quality=50), "a WebP image named .jpg",
        match="WebP")
    pdf = _save(base.convert("RGB"), "PDF", creationDate=_FIXED_DATE, modDate=_FIXED_DATE)
    add("pdf_renamed.jpg", pdf, "a one-page PDF named .jpg",
        match="PDF")
    add("svg_renamed.jpg",
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="256" '
        b'height="256"><script>alert(document.cookie)</script><rect width="256" '
        b'height="256"/></svg>\n', "an SVG with a script element named .jpg", match="SVG")
    add("html_renamed.jpg",
        b"<!DOCTYPE html><html><body><script>fetch('/steal?c='+document.cookie)</script>"
        b"</body></html>\n", "an HTML page with a script named .jpg", match="HTML")
    add("text_renamed.jpg", b"Patient: nobody\nThis is just text pretending to be a photo.\n" * 4,
        "plain text named .jpg", match="text file")
    add("random.jpg", rng.randbytes(4096), "4096 random bytes named .jpg",
        match="not a recognisable image")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("evil.sh", date_time=(2025, 1, 1, 0, 0, 0)), "echo hello\n")
    add("zip_renamed.jpg", archive.getvalue(), "a ZIP archive named .jpg", match="ZIP")
    add("mp4_renamed.heic",
        struct.pack(">I", 24) + b"ftypisom" + b"\x00\x00\x02\x00" + b"isomiso2"
        + struct.pack(">I", 8) + b"free", "an MP4 header named .heic", match="video")
    add("avif_renamed.heic",
        struct.pack(">I", 28) + b"ftypavif" + b"\x00\x00\x00\x00" + b"avifmif1miaf"
        + struct.pack(">I", 8) + b"free", "an AVIF header named .heic", match="AVIF")

    # --- polyglots --------------------------------------------------------------------------
    add("polyglot_jpeg_zip.jpg", jpeg + archive.getvalue(),
        "a valid JPEG with a ZIP archive appended (opens as both)", match="ZIP archive hidden")
    comment = b"%PDF-1.4\n% hidden document starts here\n"
    add("polyglot_jpeg_pdf.jpg", jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2)
        + comment + jpeg[2:] + pdf,
        "a valid JPEG whose COM segment starts a PDF, with a PDF appended (opens as both)",
        match="also contains a PDF")
    add("polyglot_png_zip.png", png + archive.getvalue(),
        "a valid PNG with a ZIP archive appended after IEND", match="ZIP archive hidden")
    add("pdf_with_jpeg_inside.jpg", pdf, "a PDF whose page is a JPEG (starts with %PDF)",
        match="PDF")

    # --- valid photos carrying private or hostile metadata --------------------------------------
    add("accept_gps_exif.jpg", _save(base, "JPEG", quality=85, exif=_gps_exif(),
                                    comment=b"Patient Jane Example, DOB 1970-01-01"),
        "valid JPEG with EXIF Make/Model/Software, capture time, GPS position and a COM segment",
        expect="accept")
    broken = _gps_exif().tobytes()
    broken = broken[:20] + b"\xff\xff\xff\x7f" + broken[24:]  # an IFD entry pointing far away
    add("accept_broken_exif.jpg", _save(base, "JPEG", quality=85, exif=broken),
        "valid JPEG whose EXIF has an entry with an out-of-range offset", expect="accept")
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "Patient Jane Example")
    info.add_text("Author", "SecretEditor", zip=True)
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>GPSLatitude 52,22.2N</x:xmpmeta>")
    add("accept_text_chunks.png", _save(base, "PNG", pnginfo=info, exif=_gps_exif()),
        "valid PNG with tEXt, zTXt, iTXt (XMP) chunks and an eXIf chunk with GPS", expect="accept")

    manifest: dict[str, dict[str, object]] = {}
    for old in out.iterdir():
        if old.is_file():
            old.unlink()
    for name, (content, how, expect, match) in sorted(files.items()):
        (out / name).write_bytes(content)
        entry: dict[str, object] = {"how": how, "expect": expect, "bytes": len(content)}
        if match:
            entry["match"] = match
        if name.startswith("accept_"):
            entry["must_not_contain"] = ["Jane Example", "CandorTestCam", "SecretEditor",
                                         "GPSLatitude"]
        manifest[name] = entry
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


if __name__ == "__main__":
    result = build()
    total = sum(cast(int, entry["bytes"]) for entry in result.values())  # written as an int
    print(f"wrote {len(result)} files, {total / 1e6:.2f} MB, into {OUT}")
