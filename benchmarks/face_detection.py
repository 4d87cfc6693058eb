"""What the face detector's speed settings cost in recall, on real faces.

    python benchmarks/face_detection.py [--csv PATH] [--faces 300] [--seed 0]

The project's one detector (:func:`components.preprocess.align.detect_faces`) runs one of
OpenCV's frontal-face Haar cascades over a downscaled copy of the photo (``max_side``) with a
window that grows by ``scale_step`` per level, keeping boxes where ``min_neighbors`` windows
agree; these set its cost, its misses and its false boxes. This benchmark measures that trade-off on
real faces: a seeded sample of FER2013 PrivateTest faces (read by the platform's own FER2013
reader, path from ``--csv`` or ``$FER2013_CSV``), each scaled to a face side of 64 to 208 px
and blended into a 640x480 scene (blurred noise of several scales, a new one per face). For
every setting it reports the recall (a box whose centre lies in the face and whose side is
0.6-1.8x the face side), false boxes per scene (the same scenes without the face) and the
median milliseconds per scene, as a ratio to the current defaults measured in the same run.

A second table measures the photo finder of training and serving
(:func:`components.preprocess.align.find_faces`: the upright search, then, when it finds
nothing, searches on a padded copy turned by each retry angle) against the upright search
alone, at the defaults: on the same kind of scenes with the face upright and with the face
rolled 15 degrees either way (seeded), the recall, the false boxes on the empty scenes and
the median milliseconds per scene with a face and per empty scene (where every retry runs).

A third table measures the finder on small photos (a 96x96 photo cut from a scene, the face
40 to 72 px: the size of the demo's renders and of many web thumbnails) with and without its
search on a copy enlarged twice, which runs when every other search found nothing.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import git_commit, machine_facts, publish  # noqa: E402
from components.data.sources.fer2013 import parse_pixels, read_fer2013_csv  # noqa: E402
from components.errors import FeropsError, one_line  # noqa: E402
from components.preprocess import PreprocessConfig  # noqa: E402
from components.preprocess.align import (  # noqa: E402
    DETECT_CASCADE,
    DETECT_MAX_SIDE,
    DETECT_MIN_NEIGHBORS,
    DETECT_SCALE_STEP,
    RETRY_ANGLES,
    RETRY_PAD,
    SMALL_PHOTO_SIDE,
    SMALL_PHOTO_ZOOM,
    detect_faces,
    find_faces,
)

DEFAULT_CSV = REPO_ROOT.parent / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"
SCENE = (480, 640)  # height, width
FACE_SIDES = (64, 96, 144, 208)
DEFAULT = "haarcascade_frontalface_default.xml"
ALT = "haarcascade_frontalface_alt.xml"
ALT2 = "haarcascade_frontalface_alt2.xml"
SETTINGS = (  # cascade, max_side, scale_step, min_neighbors
    (DEFAULT, 320, 1.1, 5), (DEFAULT, 320, 1.2, 5), (DEFAULT, 240, 1.1, 5),
    (ALT, 320, 1.1, 3), (ALT2, 320, 1.1, 3), (ALT2, 320, 1.2, 3), (ALT2, 240, 1.1, 3),
    (ALT2, 240, 1.2, 3),
)
KEYS = ("cascade", "max_side", "scale_step", "min_neighbors")
ROLLS = (0.0, 15.0)  # degrees a pasted face is turned in the finder's table (sign seeded)
SMALL_PHOTO = 96  # side of the small photos of the third table
SMALL_FACE_SIDES = (40, 56, 72)
CANONICAL = PreprocessConfig().eye_points  # the stage's default eyes (only boxes are scored)


def sample_faces(csv: Path, count: int, seed: int) -> np.ndarray:
    """``count`` PrivateTest faces (48x48 uint8), drawn with ``seed``."""
    frame = read_fer2013_csv(csv)
    test = frame[frame["Usage"] == "PrivateTest"]
    rows = np.random.default_rng(seed).choice(len(test), size=min(count, len(test)),
                                              replace=False)
    return parse_pixels(test["pixels"].iloc[np.sort(rows)], csv)


def background(rng: np.random.Generator) -> np.ndarray:
    """A grey 640x480 scene: noise blurred at three scales, so it has edges of many sizes."""
    height, width = SCENE
    scene = np.zeros(SCENE, np.float32)
    for sigma, weight in ((40.0, 60.0), (8.0, 25.0), (1.5, 10.0)):
        noise = rng.standard_normal(SCENE).astype(np.float32)
        scene += weight * cv2.GaussianBlur(noise, (0, 0), sigma) * sigma ** 0.5
    scene = 120 + scene * (40.0 / max(float(scene.std()), 1e-6))
    return np.clip(scene, 0, 255).astype(np.uint8).reshape(height, width)


def paste(scene: np.ndarray, face: np.ndarray, side: int, rng: np.random.Generator
          ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """``face`` scaled to ``side`` px and blended into ``scene`` (feathered border) at a
    random place; returns the scene and ``(x, y, side)`` of the face square."""
    height, width = scene.shape
    x = int(rng.integers(0, width - side))
    y = int(rng.integers(0, height - side))
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    ramp = np.minimum(np.arange(side), np.arange(side)[::-1]) / max(side * 0.08, 1.0)
    mask = np.clip(np.minimum.outer(ramp, ramp), 0.0, 1.0)
    out = scene.astype(np.float32)
    region = out[y:y + side, x:x + side]
    out[y:y + side, x:x + side] = mask * big + (1 - mask) * region
    return np.clip(out, 0, 255).astype(np.uint8), (x, y, side)


def is_hit(box: tuple[int, int, int, int], face: tuple[int, int, int]) -> bool:
    """A box centred inside the face square with a side 0.6-1.8x the face's."""
    bx, by, bw, bh = box
    x, y, side = face
    cx, cy = bx + bw / 2, by + bh / 2
    return x <= cx <= x + side and y <= cy <= y + side and 0.6 * side <= bw <= 1.8 * side


def measure(faces: np.ndarray, seed: int) -> pd.DataFrame:
    """One row per (setting, face side): recall, false boxes per scene, median ms."""
    rows = []
    for side in FACE_SIDES:
        rng = np.random.default_rng([seed, side])
        scenes = []
        for face in faces:
            empty = background(rng)
            scenes.append((empty, *paste(empty, face, side, rng)))
        for setting in SETTINGS:
            knobs = dict(zip(KEYS, setting, strict=True))
            hits, false_boxes, seconds = 0, 0, []
            for empty, scene, square in scenes:
                start = time.perf_counter()
                boxes = detect_faces(scene, 4, **knobs)
                seconds.append(time.perf_counter() - start)
                hits += any(is_hit(b, square) for b in boxes)
                false_boxes += len(detect_faces(empty, 4, **knobs))
            rows.append({**knobs, "face_px": side, "recall": hits / len(scenes),
                         "false_boxes_per_scene": false_boxes / len(scenes),
                         "ms_per_scene": 1000 * float(np.median(seconds))})
    table = pd.DataFrame(rows)
    table["cascade"] = table["cascade"].map(short)
    base = table[is_default(table)]
    speed = base.set_index("face_px")["ms_per_scene"]
    table["speedup_vs_default"] = speed.loc[table["face_px"]].to_numpy() / table["ms_per_scene"]
    return table


def turn(face: np.ndarray, degrees: float) -> np.ndarray:
    """A face crop turned ``degrees`` (counter-clockwise) about its centre, borders replicated."""
    side = face.shape[0]
    matrix = cv2.getRotationMatrix2D(((side - 1) / 2, (side - 1) / 2), degrees, 1.0)
    return cv2.warpAffine(face, matrix, (side, side), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)


def search(scene: np.ndarray, retries: bool) -> list[tuple[int, int, int, int]]:
    """The boxes of the upright search alone, or of the photo finder with its retries."""
    if retries:
        return [located.box for located in find_faces(scene, 4, CANONICAL)]
    return detect_faces(scene, 4)


def measure_finder(faces: np.ndarray, seed: int) -> pd.DataFrame:
    """One row per (face roll, search, face side): recall, false boxes per empty scene and
    the median ms per scene with a face and per empty one, at the detector's defaults."""
    rows = []
    for roll in ROLLS:
        for side in FACE_SIDES:
            rng = np.random.default_rng([seed, side, int(roll)])
            scenes = []
            for face in faces:
                empty = background(rng)
                shown = face if roll == 0 else turn(face, roll * float(rng.choice([-1, 1])))
                scenes.append((empty, *paste(empty, shown, side, rng)))
            for retries in (False, True):
                hits, false_boxes, seconds, empty_seconds = 0, 0, [], []
                for empty, scene, square in scenes:
                    start = time.perf_counter()
                    boxes = search(scene, retries)
                    seconds.append(time.perf_counter() - start)
                    hits += any(is_hit(b, square) for b in boxes)
                    start = time.perf_counter()
                    false_boxes += len(search(empty, retries))
                    empty_seconds.append(time.perf_counter() - start)
                rows.append({"face_roll": roll, "search": "with retries" if retries else
                             "upright only", "face_px": side, "recall": hits / len(scenes),
                             "false_boxes_per_scene": false_boxes / len(scenes),
                             "ms_per_scene": 1000 * float(np.median(seconds)),
                             "ms_per_empty_scene": 1000 * float(np.median(empty_seconds))})
    return pd.DataFrame(rows)


def small_photo(rng: np.random.Generator) -> np.ndarray:
    """A 96x96 grey photo: a 240-px square of a scene, shrunk (its edges shrink with it)."""
    scene = background(rng)
    y = int(rng.integers(0, SCENE[0] - 240))
    x = int(rng.integers(0, SCENE[1] - 240))
    return cv2.resize(scene[y:y + 240, x:x + 240], (SMALL_PHOTO, SMALL_PHOTO),
                      interpolation=cv2.INTER_AREA)


def measure_small(faces: np.ndarray, seed: int) -> pd.DataFrame:
    """One row per (search, face side) on small photos: the finder with and without its
    enlarged search; recall, false boxes per empty photo, median ms with a face and empty."""
    rows = []
    for side in SMALL_FACE_SIDES:
        rng = np.random.default_rng([seed, side, SMALL_PHOTO])
        photos = []
        for face in faces:
            empty = small_photo(rng)
            photos.append((empty, *paste(empty, face, side, rng)))
        for enlarge in (False, True):
            hits, false_boxes, seconds, empty_seconds = 0, 0, [], []
            for empty, photo, square in photos:
                start = time.perf_counter()
                found = find_faces(photo, 4, CANONICAL, enlarge_small=enlarge)
                seconds.append(time.perf_counter() - start)
                hits += any(is_hit(located.box, square) for located in found)
                start = time.perf_counter()
                false_boxes += len(find_faces(empty, 4, CANONICAL, enlarge_small=enlarge))
                empty_seconds.append(time.perf_counter() - start)
            rows.append({"search": "with the enlarged copy" if enlarge else "without",
                         "face_px": side, "recall": hits / len(photos),
                         "false_boxes_per_photo": false_boxes / len(photos),
                         "ms_per_photo": 1000 * float(np.median(seconds)),
                         "ms_per_empty_photo": 1000 * float(np.median(empty_seconds))})
    return pd.DataFrame(rows)


def finder_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per roll and search over all face sizes: mean recall and false boxes, median ms."""
    return (table.groupby(["face_roll", "search"], sort=False)
            .agg(recall=("recall", "mean"),
                 false_boxes_per_scene=("false_boxes_per_scene", "mean"),
                 ms_per_scene=("ms_per_scene", "median"),
                 ms_per_empty_scene=("ms_per_empty_scene", "median"))
            .reset_index())


def short(cascade: str) -> str:
    """``haarcascade_frontalface_alt2.xml`` -> ``alt2``."""
    return cascade.removeprefix("haarcascade_frontalface_").removesuffix(".xml")


def is_default(table: pd.DataFrame) -> pd.Series:
    """The rows measured with the detector's current defaults."""
    return ((table["cascade"] == short(DETECT_CASCADE)) & (table["max_side"] == DETECT_MAX_SIDE)
            & (table["scale_step"] == DETECT_SCALE_STEP)
            & (table["min_neighbors"] == DETECT_MIN_NEIGHBORS))


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting over all face sizes: mean recall, false boxes, median ms, speed-up."""
    return (table.groupby(list(KEYS), sort=False)
            .agg(recall=("recall", "mean"), false_boxes_per_scene=("false_boxes_per_scene",
                                                                   "mean"),
                 ms_per_scene=("ms_per_scene", "median"),
                 speedup_vs_default=("speedup_vs_default", "median"))
            .reset_index())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path,
                        default=Path(os.environ.get("FER2013_CSV", DEFAULT_CSV)))
    parser.add_argument("--faces", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        faces = sample_faces(args.csv, args.faces, args.seed)
    except FeropsError as exc:  # no csv there, or not a FER2013 csv
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    table = measure(faces, args.seed)
    overall = summary(table)
    finder = measure_finder(faces, args.seed)
    finder_overall = finder_summary(finder)
    small = measure_small(faces, args.seed)
    small_overall = (small.groupby("search", sort=False)
                     .agg(recall=("recall", "mean"),
                          false_boxes_per_photo=("false_boxes_per_photo", "mean"),
                          ms_per_photo=("ms_per_photo", "median"),
                          ms_per_empty_photo=("ms_per_empty_photo", "median"))
                     .reset_index())
    command = shlex.join(["python", "benchmarks/face_detection.py", *sys.argv[1:]])
    facts = machine_facts()
    payload = {"command": command, "commit": git_commit(REPO_ROOT), "machine": facts,
               "faces": len(faces), "seed": args.seed, "scene": list(SCENE),
               "defaults": dict(zip(KEYS, (DETECT_CASCADE, DETECT_MAX_SIDE, DETECT_SCALE_STEP,
                                           DETECT_MIN_NEIGHBORS), strict=True)),
               "rows": table.to_dict("records"), "summary": overall.to_dict("records"),
               "finder": {"retry_angles": list(RETRY_ANGLES), "retry_pad": RETRY_PAD,
                          "rolls": list(ROLLS), "rows": finder.to_dict("records"),
                          "summary": finder_overall.to_dict("records")},
               "small_photos": {"side": SMALL_PHOTO, "below_side": SMALL_PHOTO_SIDE,
                                "zoom": SMALL_PHOTO_ZOOM, "rows": small.to_dict("records"),
                                "summary": small_overall.to_dict("records")}}
    lines = [
        "# Face detector: speed settings against recall on real faces", "",
        f"- command: `{command}`", f"- commit: `{payload['commit']}`",
        f"- machine: {facts['cpu']}, {facts['cpu_count']} cores; OpenCV "
        f"{cv2.__version__}, {cv2.getNumThreads()} threads",
        f"- data: {len(faces)} FER2013 PrivateTest faces (seed {args.seed}) blended into "
        f"{SCENE[1]}x{SCENE[0]} scenes; the detector's defaults: {DETECT_CASCADE}, max side "
        f"{DETECT_MAX_SIDE}, step {DETECT_SCALE_STEP}, min neighbours {DETECT_MIN_NEIGHBORS}",
        "",
        "## Over all face sizes", "",
        overall.to_markdown(index=False, floatfmt=".3f"), "",
        "## By face size (px in the 640x480 scene)", "",
        table.to_markdown(index=False, floatfmt=".3f"), "",
        "## The photo finder's retries (`find_faces`) against the upright search alone", "",
        f"At the defaults above; when the upright search finds nothing, the finder searches a "
        f"copy padded by {RETRY_PAD:g} of the shorter side, turned by each of "
        f"{', '.join(f'{a:g}' for a in RETRY_ANGLES)} degrees. Faces upright (roll 0) or "
        f"turned {ROLLS[1]:g} degrees either way (seeded); false boxes and ms per empty scene "
        "on the same scenes without the face.", "",
        finder_overall.to_markdown(index=False, floatfmt=".3f"), "",
        "By face size:", "",
        finder.to_markdown(index=False, floatfmt=".3f"), "",
        "## Small photos: the finder's search on an enlarged copy", "",
        f"{SMALL_PHOTO}x{SMALL_PHOTO} photos (a 240-px square of a scene, shrunk), the face "
        f"{', '.join(map(str, SMALL_FACE_SIDES))} px, upright. A photo whose shorter side is "
        f"below {SMALL_PHOTO_SIDE} px where every search above found nothing is searched "
        f"again the same way on a copy enlarged {SMALL_PHOTO_ZOOM:g} times; false boxes and "
        "ms per empty photo on the same photos without the face.", "",
        small_overall.to_markdown(index=False, floatfmt=".3f"), "",
        "By face size:", "",
        small.to_markdown(index=False, floatfmt=".3f"),
    ]
    publish("face_detection", payload, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
