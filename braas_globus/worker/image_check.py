"""Does a rendered frame read as a valid image? Stdlib only.

A frame counts as done only when its file exists and passes this check, so a file
cut short by a killed process or a full disk is rendered again, never shipped.
PNG is walked chunk by chunk with CRCs; the other formats Blender writes are
checked by their magic bytes and, where the format records it, their length or
end marker.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_ok(data: bytes) -> bool:
    if not data.startswith(_PNG_SIGNATURE):
        return False
    pos = len(_PNG_SIGNATURE)
    seen_header = False
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            return False
        body = data[pos + 4 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : end])
        if zlib.crc32(body) != crc:
            return False
        if kind == b"IHDR":
            width, height = struct.unpack(">II", data[pos + 8 : pos + 16])
            seen_header = width > 0 and height > 0
        if kind == b"IEND":
            return seen_header
        pos = end
    return False


def _jpeg_ok(data: bytes) -> bool:
    return data.startswith(b"\xff\xd8\xff") and data.rstrip(b"\x00").endswith(b"\xff\xd9")


def _riff_ok(data: bytes) -> bool:  # WebP
    return (
        data[:4] == b"RIFF"
        and data[8:12] == b"WEBP"
        and struct.unpack("<I", data[4:8])[0] + 8 == len(data)
    )


def _bmp_ok(data: bytes) -> bool:
    return data[:2] == b"BM" and struct.unpack("<I", data[2:6])[0] == len(data)


_MAGIC_ONLY = (
    b"\x76\x2f\x31\x01",  # OpenEXR
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    b"#?RADIANCE",  # Radiance HDR
    b"#?RGBE",
    b"\x00\x00\x00\x0cjP  ",  # JPEG 2000
    b"\xffO\xffQ",  # JPEG 2000 codestream
    b"SDPX",  # DPX
    b"XPDS",
    b"\x80\x2a\x5f\xd7",  # Cineon
    b"\x01\xda",  # IRIS / SGI
)


def is_valid_image(path: str | Path) -> bool:
    """True when ``path`` is a complete image file in a format Blender writes."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    if len(data) < 16:
        return False
    if data.startswith(_PNG_SIGNATURE):
        return _png_ok(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_ok(data)
    if data.startswith(b"RIFF"):
        return _riff_ok(data)
    if data.startswith(b"BM"):
        return _bmp_ok(data)
    if any(data.startswith(magic) for magic in _MAGIC_ONLY):
        return True
    # Targa has no magic number; Blender writes an uncompressed or RLE header.
    return path_suffix(path) == ".tga" and data[2] in (2, 3, 10, 11)


def path_suffix(path: str | Path) -> str:
    return Path(path).suffix.lower()
