"""Canonical expression labels and the alias table every source maps through.

The canonical set is the eight categories of seed 000. Sources use many spellings (FER2013
says "angry", seed 000 says "nature" for neutral, FER+ says "happiness"), so each source maps
its names through :func:`canonical_label`; an unknown name is a user error, not a silent drop.
"""

from __future__ import annotations

from collections.abc import Iterable

from components.errors import DataError

CANONICAL_LABELS: tuple[str, ...] = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
)

_ALIASES: dict[str, str] = {
    "anger": "anger",
    "angry": "anger",
    "an": "anger",
    "contempt": "contempt",
    "co": "contempt",
    "disgust": "disgust",
    "disgusted": "disgust",
    "di": "disgust",
    "fear": "fear",
    "afraid": "fear",
    "fearful": "fear",
    "scared": "fear",
    "fe": "fear",
    "af": "fear",  # KDEF's code: afraid
    "happiness": "happiness",
    "happy": "happiness",
    "joy": "happiness",
    "ha": "happiness",
    "neutral": "neutral",
    "nature": "neutral",
    "natural": "neutral",
    "calm": "neutral",
    "ne": "neutral",
    "sadness": "sadness",
    "sad": "sadness",
    "sa": "sadness",
    "surprise": "surprise",
    "surprised": "surprise",
    "su": "surprise",
}

# FER2013's integer codes, in its own order (emotion column of the Kaggle csv).
FER2013_CODES: tuple[str, ...] = (
    "anger",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
    "neutral",
)


def canonical_label(name: str, *, where: str = "") -> str:
    """Return the canonical label for ``name`` (case and surrounding spaces ignored).

    Raises:
        DataError: the name is not a known spelling of any canonical category.
    """
    key = str(name).strip().lower().replace("-", "_")
    if key in _ALIASES:
        return _ALIASES[key]
    place = f"{where}: " if where else ""
    raise DataError(
        f"{place}unknown expression label {name!r}; expected one of "
        f"{', '.join(CANONICAL_LABELS)} or an alias such as angry/happy/sad/nature"
    )


def label_index(labels: Iterable[str]) -> dict[str, int]:
    """Map each label of a (sub)set to its class index, in canonical order."""
    present = set(labels)
    ordered = [name for name in CANONICAL_LABELS if name in present]
    return {name: i for i, name in enumerate(ordered)}
