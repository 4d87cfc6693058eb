"""What a served model needs besides its weights: the training chain's settings and limits.

A served model must see a face exactly as training saw it, so the ``preprocess`` settings and
the model spec (classes, modalities, grey, input side) travel with the model as one JSON file
(``serving.json``). The ``serving`` params section adds the request limits that protect the
server: the largest image side and area a request may decode, and the most faces per image.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.config import build_config
from components.errors import ConfigError, DataError
from components.jsonio import write_json
from components.models import ModelSpec
from components.preprocess.config import PreprocessConfig, preprocess_config

WHERE = "params.yaml:serving"
SETTINGS_FILE = "serving.json"
SETTINGS_VERSION = 1


@dataclass(frozen=True)
class ServingConfig:
    """The ``serving`` params section: request limits of the raw-input model."""

    max_side: int = 4096  # longest image side a request may send, in pixels
    max_megapixels: float = 25.0  # largest image area, in millions of pixels
    max_faces: int = 16  # faces scored per image (largest first); the rest are ignored
    max_frames: int = 1000  # frames per clip for the video task
    min_side: int = 8  # smaller images cannot hold a face
    # A face whose top class probability is below this is flagged ``low_confidence``.
    min_confidence: float = 0.4
    allow_paths_when_served: bool = False  # REST requests may name files on the server

    def __post_init__(self) -> None:
        for key in ("max_side", "max_faces", "max_frames", "min_side"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{WHERE}.{key}: must be >= 1, got {getattr(self, key)}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError(f"{WHERE}.min_confidence: must be in [0, 1], got "
                              f"{self.min_confidence}")
        if self.max_megapixels <= 0:
            raise ConfigError(f"{WHERE}.max_megapixels: must be > 0, got {self.max_megapixels}")


def serving_config(values: dict[str, Any] | None) -> ServingConfig:
    """Build the limits from the ``serving`` section (missing keys take defaults).

    Raises:
        ConfigError: an unknown key, a wrongly typed value or a value out of range.
    """
    return build_config(ServingConfig, dict(values or {}), where=WHERE)


@dataclass(frozen=True)
class ServingSettings:
    """Everything the raw-input chain needs: model spec, preprocessing and limits.

    ``size`` is the side of the arrays the model was trained on (it wins over
    ``preprocess.size`` should the two disagree, since the network's input is fixed by it).
    """

    spec: ModelSpec
    preprocess: PreprocessConfig
    size: int
    channels: int  # colour channels of the preprocessed arrays (1 = grey task, 3 = RGB)
    limits: ServingConfig = field(default_factory=ServingConfig)

    @property
    def classes(self) -> list[str]:
        """Class names in the model's output order."""
        return list(self.spec.classes)

    @property
    def is_video(self) -> bool:
        """True for clip models (input ``frames``)."""
        return "frames" in self.spec.inputs

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (see :func:`settings_from_dict` for the inverse)."""
        return {
            "version": SETTINGS_VERSION,
            "spec": {**dataclasses.asdict(self.spec), "inputs": list(self.spec.inputs)},
            "preprocess": self.preprocess.as_dict(),
            "size": self.size,
            "channels": self.channels,
            "limits": dataclasses.asdict(self.limits),
        }

    def write(self, path: Path) -> Path:
        """Write the settings as JSON to ``path`` and return it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, self.to_dict())
        return path


def settings_from_dict(values: dict[str, Any], *, where: str = SETTINGS_FILE) -> ServingSettings:
    """Rebuild settings written by :meth:`ServingSettings.to_dict`.

    Raises:
        DataError: a key is missing or the file was written by a newer version.
    """
    try:
        if int(values.get("version", 0)) > SETTINGS_VERSION:
            raise DataError(f"{where}: settings version {values['version']} is newer than "
                            f"this ferops understands ({SETTINGS_VERSION})")
        spec_values = dict(values["spec"])
        spec_values["inputs"] = tuple(spec_values["inputs"])
        return ServingSettings(
            spec=ModelSpec(**spec_values),
            preprocess=preprocess_config(values["preprocess"]),
            size=int(values["size"]),
            channels=int(values["channels"]),
            limits=serving_config(values.get("limits")),
        )
    except (KeyError, TypeError) as exc:
        raise DataError(f"{where}: malformed serving settings ({exc!r})") from exc


def read_settings(path: Path) -> ServingSettings:
    """Load ``serving.json``.

    Raises:
        DataError: the file is missing, not JSON, or malformed.
    """
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read serving settings ({exc})") from exc
    return settings_from_dict(values, where=str(path))


def build_settings(
    spec: ModelSpec,
    size: int,
    channels: int,
    preprocess_values: dict[str, Any] | None,
    serving_values: dict[str, Any] | None = None,
) -> ServingSettings:
    """Settings for a trained model.

    Args:
        size: side of the square arrays the model was trained on.
        channels: colour channels of the preprocessed colour arrays (1 or 3), before any
            grey conversion the model applies on read.
        preprocess_values: the ``preprocess`` params section (None: defaults).

    Raises:
        ConfigError: a preprocess or serving value is invalid.
    """
    if channels not in (1, 3):
        raise ConfigError(f"{WHERE}: colour arrays with {channels} channels cannot be served")
    return ServingSettings(spec=spec, preprocess=preprocess_config(preprocess_values),
                           size=int(size), channels=int(channels),
                           limits=serving_config(serving_values))
