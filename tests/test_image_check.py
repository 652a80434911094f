"""A frame counts as done only when its file reads as a complete image."""

import struct
import zlib

import pytest

from braas_globus.worker.image_check import is_valid_image


def png_bytes(width=4, height=3) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "000001.png"
    path.write_bytes(png_bytes())
    return path


def test_complete_png_is_valid(png):
    assert is_valid_image(png)


def test_png_cut_short_is_not_valid(png):
    data = png.read_bytes()
    for cut in (len(data) - 1, len(data) - 12, len(data) // 2, 20):
        png.write_bytes(data[:cut])
        assert not is_valid_image(png), cut


def test_png_with_a_flipped_byte_is_not_valid(png):
    data = bytearray(png.read_bytes())
    data[45] ^= 0xFF  # inside IDAT: the CRC no longer matches
    png.write_bytes(bytes(data))
    assert not is_valid_image(png)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n"])
def test_junk_is_not_valid(tmp_path, content):
    path = tmp_path / "000001.png"
    path.write_bytes(content)
    assert not is_valid_image(path)


def test_missing_file_is_not_valid(tmp_path):
    assert not is_valid_image(tmp_path / "nope.png")


def test_jpeg_needs_its_end_marker(tmp_path):
    path = tmp_path / "000001.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40 + b"\xff\xd9")
    assert is_valid_image(path)
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    assert not is_valid_image(path)
