"""The embedded synthetic RGB-D + video source: render a small, deterministic FER dataset.

No real RGB-D or video expression dataset can be downloaded, so the project ships this
generator (the renderer itself lives in :mod:`components.data.synth_render`). It writes

* ``<out>/rgbd``: the ``rgbd_folder`` layout: ``labels.csv`` (``id,label,subject,lx,ly,rx,ry,
  lx2d,ly2d,rx2d,ry2d,yaw,pitch,roll,light,light_level,intensity``) and per sample
  ``<id>_color.png`` (RGB, registered to the depth), ``<id>_depth.png`` (uint16 mm, 0 = hole)
  and ``<id>_2d.png`` (RGB from a second, offset camera with its own exposure/white balance);
* ``<out>/clips``: ``labels.csv`` (``clip,label,subject,light,light_level``) and per clip a
  folder of ``frame_000.png ...`` going from neutral to the apex (reached after the
  ``clip_onset`` share of the clip, then held), with ``landmarks.csv``;
* ``<out>/README.md`` naming the seed and configuration.

Every sample draws from its own ``np.random.default_rng([seed, kind, subject, class, index])``
so the output is byte-identical for a config whatever the order or number of workers.
Light is a per-sample attribute (``light_level`` dark / normal / bright, ``light`` = exposure
factor) that reaches only the colour images, so depth stays informative when colour fails.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from components.config import build_config
from components.data import synth_render as render
from components.data.io import write_image
from components.data.labels import CANONICAL_LABELS, canonical_label
from components.errors import DataError
from components.pool import process_pool

log = logging.getLogger(__name__)

MARKER = ".synthetic.json"  # identifies a folder this generator wrote (safe to replace)
RGBD_COLUMNS: tuple[str, ...] = (
    "id", "label", "subject", "lx", "ly", "rx", "ry", "lx2d", "ly2d", "rx2d", "ry2d",
    "yaw", "pitch", "roll", "light", "light_level", "intensity",
)
CLIP_COLUMNS: tuple[str, ...] = ("clip", "label", "subject", "light", "light_level")
_KIND_IDENTITY, _KIND_STILL, _KIND_CLIP = 1, 2, 3  # seed-sequence tags per random stream
_GOLDEN = 0.6180339887498949


@dataclass
class SyntheticConfig:
    """The ``synthetic`` params section.

    ``workers`` > 1 renders in that many processes; ``hole_rate`` is the fraction of depth
    pixels lost in dropout blobs (edges lose more); ``noise`` the colour read noise (linear,
    0-1 scale); ``depth_noise`` the depth noise in mm at 1 m (it grows with distance squared);
    ``extreme_light`` the fraction of samples shot in dark or over-exposed light (half each);
    ``clip_onset`` the share of a clip over which the expression builds to the apex (held
    after it; 1 = apex at the last frame). ``classes`` may use any alias of
    :mod:`components.data.labels`; they are stored canonical.
    """

    seed: int = 7
    out: str = "data/synthetic"
    subjects: int = 16
    stills_per_subject_class: int = 3
    image_size: int = 96
    clips_per_subject_class: int = 1
    clip_frames: int = 12
    clip_size: int = 64
    clip_onset: float = 1.0
    classes: list[str] = field(default_factory=lambda: list(CANONICAL_LABELS))
    workers: int = 1
    hole_rate: float = 0.02
    noise: float = 0.01
    depth_noise: float = 3.0
    extreme_light: float = 0.5

    def __post_init__(self) -> None:
        try:
            self.classes = [canonical_label(c, where="classes") for c in self.classes]
        except DataError as exc:
            raise ValueError(str(exc)) from exc
        checks = [
            (self.subjects >= 1, "subjects", "must be at least 1"),
            (self.stills_per_subject_class >= 0, "stills_per_subject_class", "must be >= 0"),
            (self.clips_per_subject_class >= 0, "clips_per_subject_class", "must be >= 0"),
            (self.stills_per_subject_class + self.clips_per_subject_class > 0,
             "stills_per_subject_class", "and clips_per_subject_class are both 0: nothing to do"),
            (self.image_size >= 32, "image_size", "must be >= 32 (eyes need a few pixels)"),
            (self.clip_size >= 32, "clip_size", "must be >= 32 (eyes need a few pixels)"),
            (self.clip_frames >= 2, "clip_frames", "must be >= 2 (neutral to apex)"),
            (0.0 < self.clip_onset <= 1.0, "clip_onset", "must be in (0, 1]"),
            (self.workers >= 1, "workers", "must be >= 1"),
            (0.0 <= self.hole_rate < 0.5, "hole_rate", "must be in [0, 0.5)"),
            (self.noise >= 0.0, "noise", "must be >= 0"),
            (self.depth_noise >= 0.0, "depth_noise", "must be >= 0"),
            (0.0 <= self.extreme_light <= 1.0, "extreme_light", "must be in [0, 1]"),
            (len(self.classes) > 0, "classes", "must name at least one class"),
            (len(set(self.classes)) == len(self.classes), "classes", "has duplicates"),
        ]
        for ok, key, problem in checks:
            if not ok:
                raise ValueError(f"{key} {problem} (got {getattr(self, key)!r})")

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> SyntheticConfig:
        """Build from the ``synthetic`` params section.

        Raises:
            ConfigError: an unknown key, a value of the wrong type or out of range.
        """
        return build_config(cls, dict(section), where="synthetic")


@dataclass(frozen=True)
class _Job:
    """One unit of work: a still sample or a clip, with its place in the dataset."""

    kind: int
    subject: int
    label: str
    index: int
    number: int

    @property
    def class_index(self) -> int:
        # The canonical index, so a subset of classes renders the same samples for the rest.
        return CANONICAL_LABELS.index(self.label)


def _subject_name(cfg: SyntheticConfig, subject: int) -> str:
    return f"s{subject:0{max(2, len(str(cfg.subjects - 1)))}d}"


def _still_id(cfg: SyntheticConfig, job: _Job) -> str:
    width = max(2, len(str(cfg.stills_per_subject_class - 1)))
    return f"{_subject_name(cfg, job.subject)}_{job.label}_{job.index:0{width}d}"


def _clip_name(job: _Job) -> str:
    return f"clip_{job.number:05d}"


def _jobs(cfg: SyntheticConfig) -> list[_Job]:
    jobs: list[_Job] = []
    for kind, per in ((_KIND_STILL, cfg.stills_per_subject_class),
                      (_KIND_CLIP, cfg.clips_per_subject_class)):
        number = 0
        for subject in range(cfg.subjects):
            for label in cfg.classes:
                for index in range(per):
                    jobs.append(_Job(kind, subject, label, index, number))
                    number += 1
    return jobs


def light_level(cfg: SyntheticConfig, job: _Job) -> str:
    """The job's light level: a low-discrepancy sequence so every class and subject gets
    close to ``extreme_light`` of dark + bright shots even with few samples each."""
    position = job.index + 3 * job.subject + 5 * job.class_index + 7 * job.kind
    u = (position * _GOLDEN + 0.5 * _GOLDEN) % 1.0
    if u < cfg.extreme_light / 2:
        return "dark"
    if u < cfg.extreme_light:
        return "bright"
    return "normal"


def _identity(cfg: SyntheticConfig, subject: int) -> render.Identity:
    return render.sample_identity(np.random.default_rng([cfg.seed, _KIND_IDENTITY, subject]))


def _job_rng(cfg: SyntheticConfig, job: _Job) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, job.kind, job.subject, job.class_index, job.index])


def _intensity(label: str, rng: np.random.Generator) -> float:
    return 0.0 if label == "neutral" else float(rng.uniform(0.65, 1.0))


def _render_still(cfg: SyntheticConfig, root: Path, job: _Job) -> dict[str, Any]:
    """Render and write one RGB-D sample (colour, depth, offset 2-D image); its csv row."""
    ident = _identity(cfg, job.subject)
    rng = _job_rng(cfg, job)
    level = light_level(cfg, job)
    intensity = _intensity(job.label, rng)
    units = render.expression_units(job.label, intensity, rng, ident)
    scene = render.sample_scene(rng, level)
    mesh = render.build_head(ident, units, render.mesh_spacing(cfg.image_size))
    main_cam = render.main_camera(cfg.image_size, rng)
    second_cam = render.offset_camera(cfg.image_size, rng, float(scene.head_pos[2]))
    main = render.render_view(main_cam, scene, ident, mesh, rng, noise=cfg.noise,
                              depth_noise=cfg.depth_noise, hole_rate=cfg.hole_rate)
    second = render.render_view(second_cam, scene, ident, mesh, rng, noise=cfg.noise)
    sample_id = _still_id(cfg, job)
    write_image(root / f"{sample_id}_color.png", main.color)
    write_image(root / f"{sample_id}_depth.png", main.depth)
    write_image(root / f"{sample_id}_2d.png", second.color)
    return {
        "id": sample_id, "label": job.label, "subject": _subject_name(cfg, job.subject),
        **dict(zip(("lx", "ly", "rx", "ry"), _round(main.eyes, 3), strict=True)),
        **dict(zip(("lx2d", "ly2d", "rx2d", "ry2d"), _round(second.eyes, 3), strict=True)),
        "yaw": round(scene.yaw, 2), "pitch": round(scene.pitch, 2), "roll": round(scene.roll, 2),
        "light": round(scene.exposure, 4), "light_level": level,
        "intensity": round(intensity, 3),
    }


def _round(values: tuple[float, ...], digits: int) -> list[float]:
    return [round(float(v), digits) for v in values]


def _rotate_y(vector: np.ndarray, degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    rot = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    return rot @ vector


def clip_expression_weights(frames: int, onset: float) -> list[float]:
    """How far each frame of a clip is from neutral (0) to the apex (1).

    The expression eases in (smoothstep) over the first ``onset`` share of the clip and is
    held at the apex after it: ``onset`` 1 is a posed sequence ending at the apex (CK+), a
    smaller one the in-the-wild case where most of the clip shows the expression (DFEW).
    """
    weights = []
    for t in range(frames):
        s = min(1.0, t / ((frames - 1) * onset))
        weights.append(s * s * (3 - 2 * s))
    return weights


class _MeshesByUnits:
    """One clip's head meshes, built once per distinct expression.

    The frames after a clip's onset hold the apex, so they repeat an expression already
    built (a neutral clip too: it eases between two slightly different neutral faces).
    Building the mesh is a large share of a frame's rendering, and it draws nothing from the
    random stream, so reusing it leaves every byte as it was.
    """

    def __init__(self, ident: render.Identity, spacing: float) -> None:
        self._ident = ident
        self._spacing = spacing
        self._built: dict[tuple[tuple[str, float], ...], render.HeadMesh] = {}

    def get(self, units: dict[str, float]) -> render.HeadMesh:
        """The mesh of ``units``, built on first use."""
        key = tuple(sorted(units.items()))
        if key not in self._built:
            self._built[key] = render.build_head(self._ident, units, self._spacing)
        return self._built[key]


def _render_clip(cfg: SyntheticConfig, root: Path, job: _Job) -> dict[str, Any]:
    """Render and write one clip (neutral -> apex, small head and light motion); its csv row."""
    ident = _identity(cfg, job.subject)
    rng = _job_rng(cfg, job)
    level = light_level(cfg, job)
    apex = render.expression_units(job.label, _intensity(job.label, rng), rng, ident)
    start = render.expression_units("neutral", 0.0, rng, ident)
    scene = render.sample_scene(rng, level)
    drift = rng.uniform(-4.0, 4.0, size=3)  # yaw, pitch, roll over the clip (degrees)
    shift = rng.uniform(-6.0, 6.0, size=3)  # head translation over the clip (mm)
    light_turn = rng.uniform(-30.0, 30.0)  # light azimuth change over the clip (degrees)
    cam = render.main_camera(cfg.clip_size, rng)
    spacing = render.mesh_spacing(cfg.clip_size)
    folder = root / _clip_name(job)
    width = max(3, len(str(cfg.clip_frames - 1)))
    marks = []
    weights = clip_expression_weights(cfg.clip_frames, cfg.clip_onset)
    meshes = _MeshesByUnits(ident, spacing)
    for t, ease in enumerate(weights):
        s = t / (cfg.clip_frames - 1)  # head and light move over the whole clip
        shot = replace(scene, yaw=scene.yaw + drift[0] * s, pitch=scene.pitch + drift[1] * s,
                       roll=scene.roll + drift[2] * s, head_pos=scene.head_pos + shift * s,
                       light_dir=_rotate_y(scene.light_dir, light_turn * s))
        mesh = meshes.get(render.blend_units(apex, start, ease))
        frame = render.render_view(cam, shot, ident, mesh, rng, noise=cfg.noise)
        write_image(folder / f"frame_{t:0{width}d}.png", frame.color)
        marks.append([t, *_round(frame.eyes, 3)])
    _write_csv(folder / "landmarks.csv", ("frame", "lx", "ly", "rx", "ry"), marks)
    return {"clip": _clip_name(job), "label": job.label,
            "subject": _subject_name(cfg, job.subject), "light": round(scene.exposure, 4),
            "light_level": level}


def _run_job(cfg: SyntheticConfig, staging: Path, job: _Job) -> dict[str, Any]:
    if job.kind == _KIND_STILL:
        return _render_still(cfg, staging / "rgbd", job)
    return _render_clip(cfg, staging / "clips", job)


def _write_csv(path: Path, columns: tuple[str, ...], rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[c] for c in columns] if isinstance(row, dict) else row)


def _check_target(target: Path) -> None:
    """Refuse to overwrite anything but an earlier synthetic output (or an empty folder)."""
    if target.exists() and not target.is_dir():
        raise DataError(f"{target}: exists and is not a folder; choose another synthetic.out")
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise DataError(
            f"{target}: folder is not empty and was not written by the synthetic generator; "
            "refusing to overwrite it (empty it or choose another synthetic.out)"
        )


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` with the finished ``staging`` folder by renames, never half-done."""
    old = target.parent / f".{target.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    if old.exists():
        shutil.rmtree(old)


def _data_settings(cfg: SyntheticConfig) -> dict[str, Any]:
    """The settings that decide the bytes written (``workers`` only decides the speed)."""
    settings = dataclasses.asdict(cfg)
    settings.pop("workers")
    return settings


def is_current(cfg: SyntheticConfig, out: Path | None = None) -> bool:
    """Whether ``out`` (default ``cfg.out``) holds a render of exactly these settings.

    Read from the marker the generator writes last, so an interrupted or hand-edited folder
    never counts as current; ``make repro`` re-renders when the params' section changed.
    """
    marker = Path(out if out is not None else cfg.out) / MARKER
    try:
        written = json.loads(marker.read_text()).get("config")
    except (OSError, ValueError, AttributeError):
        return False
    return written == json.loads(json.dumps(_data_settings(cfg)))


def _readme(cfg: SyntheticConfig, counts: dict[str, Any]) -> str:
    config = yaml.safe_dump({"synthetic": _data_settings(cfg)}, sort_keys=False)
    return f"""# Synthetic FER demo/test data (generated)

This folder was **generated** by the ferops synthetic renderer (`ferops data synth`,
`components/data/synthetic.py`). It is procedurally rendered demo and test data, not
photographs of people: parametric 3-D heads with action-unit-like expressions, varying identity,
pose and light. Do not edit it by hand; re-generate it instead (same config -> identical bytes).

* seed: {cfg.seed}
* still RGB-D samples: {counts['stills']} (`rgbd/`, {cfg.image_size}x{cfg.image_size})
* clips: {counts['clips']} of {cfg.clip_frames} frames (`clips/`, {cfg.clip_size}x{cfg.clip_size})
* light levels (stills): {counts['light_levels']}

## Layout
* `rgbd/labels.csv`: `{','.join(RGBD_COLUMNS)}`. Eye centres (`lx,ly` = image-left eye) in
  pixels of the colour image and of the 2-D image (`*2d`), pixel centres at integers.
  `yaw,pitch,roll` in degrees (positive yaw turns the face towards image right); `light` is
  the exposure factor (1 = normal) and `light_level` one of dark/normal/bright; `intensity` is
  the expression strength (0 for neutral, 1 = apex).
* `rgbd/<id>_color.png` RGB registered to `rgbd/<id>_depth.png` (uint16 millimetres, 0 = hole);
  `rgbd/<id>_2d.png` RGB from a second camera a few centimetres away with its own exposure and
  white balance.
* `clips/labels.csv`: `{','.join(CLIP_COLUMNS)}`; `clips/<clip>/frame_*.png` go from neutral
  to the apex, reached after {cfg.clip_onset:g} of the clip and held;
  `clips/<clip>/landmarks.csv`: `frame,lx,ly,rx,ry`.

## Configuration
```yaml
{config}```
"""


def generate(cfg: SyntheticConfig, out: Path | None = None, progress: bool = True) -> dict:
    """Render the dataset of ``cfg`` into ``out`` (default ``cfg.out``), replacing it whole.

    Rendering goes into a hidden sibling folder that is renamed into place at the end, so an
    interrupted run never leaves half a dataset behind.

    Returns:
        A summary: ``out``, ``stills``, ``clips``, ``frames``, ``subjects``, ``classes``,
        ``light_levels`` (still counts per level) and ``seconds``.

    Raises:
        DataError: ``out`` is a file, or a non-empty folder this generator did not write.
    """
    started = time.perf_counter()
    target = Path(out if out is not None else cfg.out)
    _check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        stills, clips = _render_all(cfg, staging, progress)
        counts = {"stills": len(stills), "clips": len(clips),
                  "light_levels": dict(sorted(Counter(r["light_level"] for r in stills).items()))}
        if stills:
            _write_csv(staging / "rgbd" / "labels.csv", RGBD_COLUMNS, stills)
        if clips:
            _write_csv(staging / "clips" / "labels.csv", CLIP_COLUMNS, clips)
        (staging / "README.md").write_text(_readme(cfg, counts))
        marker = {"generator": "ferops.synthetic", "config": _data_settings(cfg)}
        (staging / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, target)
    summary = {"out": str(target), **counts, "frames": len(clips) * cfg.clip_frames,
               "subjects": cfg.subjects, "classes": list(cfg.classes),
               "seconds": round(time.perf_counter() - started, 2)}
    log.info("synthetic: %d stills, %d clips in %s (%.1f s)", summary["stills"],
             summary["clips"], target, summary["seconds"])
    return summary


def _render_all(cfg: SyntheticConfig, staging: Path,
                progress: bool) -> tuple[list[dict], list[dict]]:
    """Run every job (in ``cfg.workers`` processes); rows come back in job order."""
    jobs = _jobs(cfg)
    work = partial(_run_job, cfg, staging)
    bar = tqdm(total=len(jobs), desc="synthetic", unit="sample", disable=not progress)
    rows: list[dict] = []
    try:
        if cfg.workers > 1:
            with process_pool(cfg.workers) as pool:
                for row in pool.map(work, jobs, chunksize=4):
                    rows.append(row)
                    bar.update()
        else:
            for job in jobs:
                rows.append(work(job))
                bar.update()
    finally:
        bar.close()
    stills = [r for r, j in zip(rows, jobs, strict=True) if j.kind == _KIND_STILL]
    clips = [r for r, j in zip(rows, jobs, strict=True) if j.kind == _KIND_CLIP]
    return stills, clips
