"""What a served model needs in a request, checked before anything heavy happens.

A model's metadata (its MLmodel ``metadata``: ``arch``, ``task``, ``inputs``) says which
modalities it reads, so a request that lacks one (a plain photo for an RGB-D model, a photo
for a clip model) is refused before the weights load, in words that name the fix and the
registered model that would take the input as it is. This module imports nothing heavy.
"""

from __future__ import annotations

import re

TOP_K = 3  # expressions listed per face by the CLI and its reports
DEFAULT_PREFIX = "ferops"  # registry.model_prefix's default
TASK_SUFFIXES: tuple[str, ...] = ("image", "rgbd", "video")
_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)")


def registered_prefix(model_uri: str) -> str:
    """The registry prefix of a ``models:/<prefix>-<task>...`` URI (the default otherwise),
    so the alternative a message suggests lives in the same registry line."""
    match = _REGISTERED.match(model_uri or "")
    if match:
        name = match.group("name")
        for task in TASK_SUFFIXES:
            if name.endswith(f"-{task}"):
                return name[: -len(task) - 1]
    return DEFAULT_PREFIX


def alternative(task: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The champion URI of the registered model serving ``task``."""
    return f"models:/{prefix}-{task}@champion"


def missing_inputs(arch: str, inputs: tuple[str, ...] | list[str], given: set[str],
                   prefix: str = DEFAULT_PREFIX) -> str:
    """What a request lacks for model ``arch`` reading ``inputs``; "" when nothing is missing.

    ``given`` names what the request holds: ``image`` (a photo), ``depth``, ``frames`` (a
    clip). The message names the CLI option and the REST column, and the registered model
    that takes the input as it is.
    """
    reads_clips = "frames" in inputs
    if reads_clips and "frames" not in given:
        return (f"model {arch} scores video clips: give a clip (a folder of frames or a video "
                f"file; column 'frames'), or use {alternative('image', prefix)} for a photo")
    if not reads_clips and "frames" in given and "image" not in given:
        return (f"model {arch} scores still photos: give one image per input (column "
                f"'image'), or use {alternative('video', prefix)} for a clip")
    if "depth" in inputs and "depth" not in given:
        return (f"model {arch} reads RGB-D input and no depth map was given: use --depth "
                f"D.png (column 'depth'), or {alternative('image', prefix)} for a photo "
                "without depth")
    return ""
