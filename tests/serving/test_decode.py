"""What a caller sends, turned into image bytes; the served model reveals nothing of the
server's files."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from components.serving.decode import SERVING_ENV, InputError, image_bytes
from components.serving.settings import ServingConfig


def test_served_model_answers_existing_and_missing_paths_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = tmp_path / "secret.png"
    existing.write_bytes(b"\x89PNG not really")
    monkeypatch.setenv(SERVING_ENV, "true")
    messages = []
    for path in (existing, tmp_path / "missing.png"):
        with pytest.raises(InputError) as caught:
            image_bytes(str(path), "image", ServingConfig())
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "base64" in messages[0]
    assert str(tmp_path) not in messages[0]  # the request is not echoed back
    payload = base64.b64encode(b"image bytes").decode()
    assert image_bytes(payload, "image", ServingConfig()) == b"image bytes"


def test_the_cli_and_python_callers_may_name_files(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SERVING_ENV, raising=False)
    photo = tmp_path / "face.png"
    photo.write_bytes(b"bytes of a photo")
    assert image_bytes(str(photo), "image", ServingConfig()) == b"bytes of a photo"
    with pytest.raises(InputError, match="file not found"):
        image_bytes(str(tmp_path / "missing.png"), "image", ServingConfig())


def test_a_sideways_phone_photo_is_served_upright(tmp_path: Path) -> None:
    import io

    import numpy as np
    from PIL import Image

    from components.serving.decode import decode

    pixels = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to view
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", exif=exif)
    image = decode(buffer.getvalue(), "image", ServingConfig())
    np.testing.assert_array_equal(image, np.rot90(pixels, -1))
