"""Headers before pixels: an image that promises too many pixels is refused undecoded."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.data.io import MAX_DECODE_PIXELS, header_size, read_image
from components.errors import DataError
from components.validation.facts import collect_facts


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` (8-bit RGB) and whose pixel data is
    one tiny compressed block: a few hundred bytes that would decode to gigabytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_a_20000_px_png_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(20000, 20000))
    assert bomb.stat().st_size < 1000 and 20000 * 20000 > MAX_DECODE_PIXELS
    with pytest.raises(DataError, match="not decoded"):
        read_image(bomb)


def test_the_side_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    wide = tmp_path / "wide.png"
    wide.write_bytes(png_header_only(5000, 8))
    assert header_size(np.fromfile(wide, dtype=np.uint8)) == (5000, 8)
    with pytest.raises(DataError, match="4096 px side limit"):
        read_image(wide, max_side=4096)


def test_validation_records_a_too_large_file_without_decoding_it(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(9000, 9000))
    manifest = pd.DataFrame([{"id": "a", "source": "image_folder", "split": "train",
                              "label": "anger",
                              "color": str(bomb), "depth": None, "color2d": None,
                              "frames": None, "width": 9000, "height": 9000, "channels": 3,
                              "n_frames": 0, "content_hash": "x"}])
    facts = collect_facts(manifest, workers=1, progress=False)  # 81 MP: over the guard
    assert not facts.loc[0, "decodes_ok"] and "MP decode limit" in facts.loc[0, "error"]
    facts = collect_facts(manifest, workers=1, progress=False, max_side=4096)
    assert not facts.loc[0, "decodes_ok"] and "4096 px side limit" in facts.loc[0, "error"]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(tmp_path: Path, orientation: int) -> None:
    """A photo stored sideways with its EXIF turn comes out upright, whatever the turn."""
    from PIL import Image, ImageOps

    pixels = np.random.default_rng(orientation).integers(0, 255, (12, 20, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path, exif=exif)
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    np.testing.assert_array_equal(read_image(path), expected)


def test_a_webp_named_jpg_decodes_from_its_bytes(tmp_path: Path) -> None:
    from PIL import Image

    pixels = np.full((16, 16, 3), (200, 30, 30), dtype=np.uint8)
    path = tmp_path / "mislabelled.jpg"
    Image.fromarray(pixels).save(path, format="WEBP", lossless=True)
    np.testing.assert_array_equal(read_image(path), pixels)
