"""Seed 003 random-occlusion augmentation: occluders, their placement on the face, 1:1 mixing.

``augment_manifest`` is the stage's work; ``occlude_still`` / ``occlude_clip`` occlude one
sample in memory; :mod:`components.augment.config` holds the params section.
"""

from components.augment.apply import Occluded, occlude_clip, occlude_image, occlude_still
from components.augment.config import (
    ALBU_KINDS,
    FILLS,
    KINDS,
    REGION_KINDS,
    AugmentConfig,
    augment_config,
    level_tag,
)
from components.augment.mixing import AugmentResult, augment_manifest, iter_occluded_test
from components.augment.occluders import OccluderSpec, draw_spec, strict_compose

__all__ = [
    "ALBU_KINDS",
    "FILLS",
    "KINDS",
    "REGION_KINDS",
    "AugmentConfig",
    "AugmentResult",
    "Occluded",
    "OccluderSpec",
    "augment_config",
    "augment_manifest",
    "draw_spec",
    "iter_occluded_test",
    "level_tag",
    "occlude_clip",
    "occlude_image",
    "occlude_still",
    "strict_compose",
]
