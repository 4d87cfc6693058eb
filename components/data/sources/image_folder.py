"""Image folders: ``root/<class>/*`` or ``root/<split>/<class>/*``, any common format.

Class folder names go through the alias table, so ``happy/`` and ``joy/`` both mean
happiness. Every file must be an image: a stray file is reported by name rather than skipped,
because a silently ignored file is a silently missing sample.
"""

from __future__ import annotations

from pathlib import Path

from components.data.io import is_image_file, read_image
from components.data.labels import canonical_label
from components.data.manifest import content_hash
from components.data.sources.common import require_dir, visible_children
from components.errors import DataError

SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "publictest": "val",
    "test": "test",
    "testing": "test",
    "privatetest": "test",
}


def scan_image_folder(root: str | Path, source: str = "image_folder") -> list[dict]:
    """Return manifest rows for every image under ``root`` (split column null if not given).

    Raises:
        DataError: missing or empty root, unknown class folder, stray non-image file, or an
            image that does not decode.
    """
    root = require_dir(root)
    children = [p for p in visible_children(root) if p.is_dir()]
    if not children:
        raise DataError(f"{root}: no class folders found (expected root/<class>/ images)")
    if all(p.name.lower() in SPLIT_ALIASES for p in children):
        rows: list[dict] = []
        for split_dir in children:
            rows += _scan_classes(split_dir, SPLIT_ALIASES[split_dir.name.lower()], root, source)
        return rows
    return _scan_classes(root, None, root, source)


def _scan_classes(folder: Path, split: str | None, root: Path, source: str) -> list[dict]:
    rows = []
    for class_dir in visible_children(folder):
        if not class_dir.is_dir():
            raise DataError(f"{class_dir}: stray file where class folders are expected")
        label = canonical_label(class_dir.name, where=str(class_dir))
        for path in visible_children(class_dir):
            rows.append(image_row(path, label, split, root, source))
    if not rows:
        raise DataError(f"{folder}: class folders hold no images")
    return rows


def image_row(path: Path, label: str, split: str | None, root: Path, source: str) -> dict:
    if path.is_dir() or not is_image_file(path):
        raise DataError(f"{path}: not an image file (expected png, jpg, tif, bmp or webp)")
    image = read_image(path)
    relative = path.relative_to(root).with_suffix("")
    return {
        "id": f"{source}:{relative.as_posix()}",
        "source": source,
        "split": split,
        "label": label,
        "color": str(path),
        "width": image.shape[1],
        "height": image.shape[0],
        "channels": 1 if image.ndim == 2 else image.shape[2],
        "n_frames": 0,
        "content_hash": content_hash(image),
    }
