"""The training chain for a raw request: find faces, align by the eyes, stretch, normalise.

Everything here reuses the preprocess stage's own functions (``align``, ``intensity``, the
stage's per-modality finishing step), so a face reaches the network exactly as a training
sample did: same detector settings, same warp, same percentile stretch and depth window, same
float16 rounding. Photos may hold several faces: each detected face becomes one sample.

Unlike the training stage (whose ``preprocess.face_policy`` may centre-crop a face-less
sample, since every training sample is known to hold a face), serving never invents a face: a
photo without a detected face yields no row, so a noise or blank image is answered "no face",
not with an expression. A caller whose input already is a face crop says so (``crop``): the
whole image is then the face, framed as the stage frames an aligned crop. Small images (the
stage's ``input: auto`` rule, longest side <= 64 px) are crops already. A row that gives its
eye centres (``eyes`` / ``eyes2d``) skips detection: each quadruple is one face, located as the
stage locates a sample with landmarks (:mod:`components.serving.eyes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.data.io import match_channels, to_grey
from components.preprocess import align, intensity
from components.preprocess.process import TaskPlan, finish_clip, finish_stills, is_crop
from components.serving.decode import InputError
from components.serving.eyes import Quad, located_by_eyes
from components.serving.inputs import missing_inputs
from components.serving.settings import ServingSettings
from components.training.data import COLOUR_MODALITIES

Box = tuple[int, int, int, int]


@dataclass
class Request:
    """One input row, decoded: a still (colour, optional depth / 2-D image) or a clip."""

    color: np.ndarray | None = None
    depth: np.ndarray | None = None
    color2d: np.ndarray | None = None
    frames: list[np.ndarray] | None = None
    eyes: list[Quad] | None = None  # given eye centres in the colour image, one per face
    eyes2d: Quad | None = None  # given eye centres in the 2-D camera image
    crop: bool = False  # the caller says the image (each frame) already is a face crop


@dataclass
class Face:
    """One face ready for the model: its stacked input and where it was found."""

    index: int  # input row
    face: int  # face number within the row (largest first)
    box: Box  # x, y, w, h in the colour image (the whole image for a crop)
    source: str  # how the eyes were found: landmarks (given), haar, proportional, aligned_crop
    sample: np.ndarray  # float32 (C, H, W) or (T, C, H, W), modalities stacked


def plan_for(settings: ServingSettings) -> TaskPlan:
    """The preprocess stage's plan for this model's task (same finishing steps)."""
    if settings.is_video:
        return TaskPlan("video", settings.size, settings.channels, ("frames",),
                        settings.preprocess)
    modalities = tuple(m for m in ("color", "depth", "color2d") if m in settings.spec.inputs
                       or m == "color")
    return TaskPlan("image", settings.size, settings.channels, modalities, settings.preprocess)


def locate_faces(image: np.ndarray, settings: ServingSettings,
                 eyes: list[Quad] | None = None, crop: bool = False) -> list[align.Located]:
    """Where the faces of one colour image are, by the stage's rules (see module doc).

    Given ``eyes`` (checked by the caller) give one ``landmarks`` face each, in their order,
    and no detection runs; ``crop`` (or a small image) makes the whole image one face.
    Returns one :class:`align.Located` per face, largest first; none when no face is found.
    """
    canonical = settings.preprocess.eye_points
    if eyes:
        return [located_by_eyes(image, quad, canonical, settings.size) for quad in eyes]
    if crop or is_crop(image.shape, False, settings.preprocess.input):
        return [align.locate(image, None, is_crop=True, canonical=canonical)]
    return align.find_faces(match_channels(image, 1), settings.limits.max_faces, canonical)


def still_faces(index: int, request: Request, settings: ServingSettings) -> list[Face]:
    """The model inputs for every face of one still request (none when no face is found).

    Raises:
        InputError: the model needs a depth map and none was given.
    """
    plan = plan_for(settings)
    colour = request.color
    if colour is None:
        raise InputError(f"row {index}: no image given")
    given = {"image"} | ({"depth"} if request.depth is not None else set())
    missing = missing_inputs(settings.spec.arch, settings.spec.inputs, given)
    if missing:
        raise InputError(f"row {index}: {missing}")
    if request.depth is not None:
        _check_registered(index, colour, request.depth)
    canonical = settings.preprocess.eye_points
    second = None
    if "color2d" in plan.modalities:
        second = _second_view(request, settings)
    faces: list[Face] = []
    warped: dict[str, list[np.ndarray]] = {m: [] for m in plan.modalities}
    for number, located in enumerate(locate_faces(colour, settings, request.eyes,
                                                  request.crop)):
        matrix = _matrix(located, colour, plan, canonical)
        warped["color"].append(
            intensity.to_channels(align.warp(colour, matrix, plan.size), plan.channels))
        if "depth" in plan.modalities:
            depth_matrix = align.rescale_matrix(matrix, colour.shape[:2],
                                                request.depth.shape[:2])
            warped["depth"].append(
                align.warp(request.depth, depth_matrix, plan.size, nearest=True)[None])
        if second is not None:
            image2d, located2d = second
            matrix2d = align.matrix_for(located2d, image2d.shape[:2], canonical, plan.size,
                                        rotate=plan.config.align)
            warped["color2d"].append(
                intensity.to_channels(align.warp(image2d, matrix2d, plan.size), plan.channels))
        box = located.box or (0, 0, colour.shape[1], colour.shape[0])
        faces.append(Face(index, number, tuple(int(v) for v in box), located.source,
                          np.empty(0, np.float32)))
    if not faces:
        return []
    finished = {m: finish_stills(np.stack(v), m, plan) for m, v in warped.items()}
    samples = stack_inputs(finished, settings)
    for face, sample in zip(faces, samples, strict=True):
        face.sample = sample
    return faces


def _second_view(request: Request, settings: ServingSettings
                 ) -> tuple[np.ndarray, align.Located]:
    """The 2-D image (the colour photo when none was sent) and its one located face.

    Given eyes win, as landmarks do in the stage: ``eyes2d`` for a sent 2-D image, the first
    colour ``eyes`` when the colour photo stands in for it; otherwise the largest face.
    """
    canonical = settings.preprocess.eye_points
    if request.color2d is not None:
        if request.eyes2d is not None:
            return request.color2d, located_by_eyes(request.color2d, request.eyes2d, canonical,
                                                    settings.size)
        return request.color2d, _largest(request.color2d, settings)
    colour = request.color
    if request.eyes:
        return colour, located_by_eyes(colour, request.eyes[0], canonical, settings.size)
    return colour, _largest(colour, settings)


def _largest(image: np.ndarray, settings: ServingSettings, crop: bool = False
             ) -> align.Located:
    """The one face of an image (the 2-D camera's, a clip frame), located as the stage does
    (largest face); a ``center_crop`` entry when none is found."""
    return align.locate(image, None, canonical=settings.preprocess.eye_points,
                        is_crop=crop or is_crop(image.shape, False, settings.preprocess.input))


def _matrix(located: align.Located, colour: np.ndarray, plan: TaskPlan, canonical):
    if located.source == "aligned_crop" and colour.shape[:2] == (plan.size, plan.size):
        return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # the stage's identity shortcut
    return align.matrix_for(located, colour.shape[:2], canonical, plan.size,
                            rotate=plan.config.align)


def _check_registered(index: int, colour: np.ndarray, depth: np.ndarray) -> None:
    """Depth shares the colour camera's view: same aspect ratio (any resolution)."""
    ch, cw = colour.shape[:2]
    dh, dw = depth.shape[:2]
    if abs(ch / cw - dh / dw) > 0.02:
        raise InputError(f"row {index}: depth map {dw}x{dh} does not match the colour image "
                         f"{cw}x{ch} (registered views need the same aspect ratio)")


def clip_face(index: int, frames: list[np.ndarray], settings: ServingSettings,
              crop: bool = False) -> list[Face]:
    """The model input of one clip: per-frame largest face, resampled to the stage's T.

    Frames without a face are dropped as in training; a clip with none yields no row.
    ``crop`` takes every frame as an aligned face crop.
    """
    plan = plan_for(settings)
    canonical = settings.preprocess.eye_points
    aligned: list[np.ndarray] = []
    box: Box | None = None
    source = "aligned_crop"
    for frame in frames:
        located = _largest(frame, settings, crop)
        if located.fallback:
            continue
        box = box or located.box or (0, 0, frame.shape[1], frame.shape[0])
        source = located.source if len(aligned) == 0 else source
        matrix = align.matrix_for(located, frame.shape[:2], canonical, plan.size,
                                  rotate=plan.config.align)
        aligned.append(intensity.to_channels(align.warp(frame, matrix, plan.size),
                                             plan.channels))
    if not aligned or box is None:
        return []
    clip = finish_clip(np.stack(aligned), plan)  # (T, C, H, W) float16
    sample = stack_inputs({"frames": clip[None]}, settings)[0]
    return [Face(index, 0, tuple(int(v) for v in box), source, sample)]


def stack_inputs(arrays: dict[str, np.ndarray], settings: ServingSettings) -> np.ndarray:
    """Float32 batch of the model's modalities stacked on the channel axis, as training read
    them (``load_split``: float16 arrays, luma for grey models, ``MODEL_INPUTS`` order)."""
    parts = []
    for modality in settings.spec.inputs:
        part = np.asarray(arrays[modality], dtype=np.float32)
        axis = part.ndim - 3
        if settings.spec.grey and modality in COLOUR_MODALITIES:
            part = to_grey(part, axis)
        parts.append(part)
    axis = parts[0].ndim - 3
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=axis)
