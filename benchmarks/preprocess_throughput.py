"""Faces per second of the preprocess stage against a naive one-image-at-a-time loop.

    python benchmarks/preprocess_throughput.py [--crops 20000] [--photos 80] [--workers 0]

Two workloads are synthesised in a temporary folder: (a) 48x48 grey face crops stored as one
``.npy`` array (FER2013 layout, ``store.npy#row`` refs) and (b) 640x480 photos with a drawn
face pasted in. Each is timed three ways in the same run: the naive loop (read one image,
detect at full resolution, stretch channel by channel, next image), the stage's code in one
process, and the stage's code on all cores. Ratios are to the naive loop.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import git_commit, machine_facts, write_results  # noqa: E402
from components.data.io import read_image, write_image  # noqa: E402
from components.preprocess import preprocess_config  # noqa: E402
from components.preprocess.align import alignment_matrix, center_crop_matrix  # noqa: E402
from components.preprocess.outputs import ArraySink  # noqa: E402
from components.preprocess.process import TaskPlan  # noqa: E402
from components.preprocess.runner import open_executor, resolve_workers, run_split  # noqa: E402

EYES = ((0.3, 0.38), (0.7, 0.38))


def draw_photo(rng: np.random.Generator, height: int = 480, width: int = 640) -> np.ndarray:
    """A cartoon frontal face (skin, brows, eyes, nose, mouth) on a noisy background."""
    image = (np.full((height, width, 3), (90, 110, 140)) + rng.integers(0, 20, (height, width, 3)))
    image = image.astype(np.uint8)
    fw = int(rng.integers(140, 220))
    cx, cy = int(rng.integers(200, 440)), int(rng.integers(200, 280))
    fh = int(fw * 1.3)
    cv2.ellipse(image, (cx, cy), (fw // 2, fh // 2), 0, 0, 360, (200, 170, 150), -1)
    for sx in (-1, 1):
        x, y = int(cx + sx * fw * 0.2), int(cy - fh * 0.12)
        cv2.ellipse(image, (x, int(y - fw * 0.1)), (int(fw * 0.1), int(fw * 0.025)), 0, 0, 360,
                    (60, 40, 30), -1)
        cv2.ellipse(image, (x, y), (int(fw * 0.08), int(fw * 0.04)), 0, 0, 360,
                    (250, 250, 250), -1)
        cv2.circle(image, (x, y), int(fw * 0.03), (30, 20, 20), -1)
    cv2.ellipse(image, (cx, int(cy + fh * 0.08)), (int(fw * 0.04), int(fw * 0.1)), 0, 0, 360,
                (170, 140, 120), -1)
    cv2.ellipse(image, (cx, int(cy + fh * 0.27)), (int(fw * 0.15), int(fw * 0.04)), 0, 0, 360,
                (120, 50, 60), -1)
    return cv2.GaussianBlur(image, (5, 5), 1.5)


def make_crops(folder: Path, count: int, rng: np.random.Generator) -> list[dict]:
    """``count`` 48x48 grey faces in one store, as manifest-like rows."""
    faces = [cv2.resize(cv2.cvtColor(draw_photo(rng, 240, 240)[20:220, 20:220],
                                     cv2.COLOR_RGB2GRAY), (48, 48)) for _ in range(64)]
    base = np.stack(faces)[rng.integers(0, 64, count)].astype(np.int16)
    store = folder / "crops.npy"
    np.save(store, np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8))
    return [{"id": f"c{i}", "color": f"{store}#{i}", "label": "neutral"} for i in range(count)]


def make_photos(folder: Path, count: int, rng: np.random.Generator) -> list[dict]:
    """``count`` 640x480 PNG photos with one drawn face each, as manifest-like rows."""
    return [{"id": f"p{i}", "color": str(write_image(folder / f"p{i}.png", draw_photo(rng))),
             "label": "neutral"} for i in range(count)]


def naive_stretch(image: np.ndarray) -> np.ndarray:
    """Per-channel 1-99 percentile stretch and /255, one image at a time."""
    channels = image[..., None] if image.ndim == 2 else image
    out = np.empty(channels.shape, np.float32)
    for c in range(channels.shape[2]):
        lo, hi = np.percentile(channels[..., c], [1, 99])
        out[..., c] = np.clip((channels[..., c] - lo) / max(hi - lo, 1e-6), 0, 1)
    return out.astype(np.float16)


def naive_crops(rows: list[dict]) -> int:
    """The obvious loop: read one crop, stretch it, store it."""
    for row in rows:
        naive_stretch(read_image(row["color"]))
    return len(rows)


def naive_photos(rows: list[dict], size: int) -> int:
    """The obvious loop: full-resolution Haar face + eyes, warp, stretch, one photo at a time."""
    faces = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    eyes = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")
    for row in rows:
        image = read_image(row["color"])
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        found = faces.detectMultiScale(grey, 1.1, 5)
        if len(found) == 0:
            matrix = center_crop_matrix(*grey.shape, size)
        else:
            x, y, w, h = max(found, key=lambda b: b[2] * b[3])
            pair = eyes.detectMultiScale(grey[y : y + h // 2, x : x + w], 1.1, 3)
            if len(pair) >= 2:
                (ax, ay, aw, ah), (bx, by, bw, bh) = sorted(pair[:2].tolist())
                points = ((x + ax + aw / 2, y + ay + ah / 2), (x + bx + bw / 2, y + by + bh / 2))
            else:
                points = ((x + 0.3 * w, y + 0.38 * h), (x + 0.7 * w, y + 0.38 * h))
            matrix = alignment_matrix(points, EYES, size)
        naive_stretch(cv2.warpAffine(image, matrix, (size, size)))
    return len(rows)


def stage(rows: list[dict], plan: TaskPlan, workers: int, out: Path) -> tuple[int, dict]:
    """The stage's own path (chunks, batched reads, vectorised stretch, memmap writes)."""
    executor = open_executor(workers)
    try:
        outcome = run_split(rows, plan, executor, ArraySink(out, len(rows), {}),
                            workers=workers, desc="", progress=False)
    finally:
        if executor is not None:
            executor.shutdown()
    return len(rows), outcome.report()


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=20000)
    parser.add_argument("--photos", type=int, default=80)
    parser.add_argument("--workers", type=int, default=0, help="0 = all cores")
    args = parser.parse_args()
    command = "python " + shlex.join(["benchmarks/preprocess_throughput.py", *sys.argv[1:]])
    print("$ " + command)
    measured: list[dict[str, object]] = []
    workers = resolve_workers(args.workers)
    cv2.setNumThreads(1)  # fair single-process numbers: no hidden OpenCV threads
    rng = np.random.default_rng(0)
    print(f"cores used for 'all cores': {workers}")
    print(f"{'workload':<22}{'mode':<16}{'faces':>7}{'seconds':>10}{'faces/s':>10}{'x naive':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        crops = make_crops(root, args.crops, rng)
        photos = make_photos(root, args.photos, rng)
        crop_plan = TaskPlan("image", 48, 1, ("color",), preprocess_config({"size": 48}))
        photo_plan = TaskPlan("image", 48, 3, ("color",), preprocess_config({"size": 48}))
        cases = [
            ("(a) 48x48 crops", crops, lambda r: naive_crops(r), crop_plan),
            ("(b) 640x480 photos", photos, lambda r: naive_photos(r, 48), photo_plan),
        ]
        for name, rows, naive, plan in cases:
            naive_s, _ = timed(naive, rows)
            lines = [("naive loop", naive_s, None)]
            for label, count in (("1 process", 1), (f"{workers} processes", workers)):
                seconds, (_, report) = timed(stage, rows, plan, count, root / f"o{count}")
                lines.append((label, seconds, report))
            for label, seconds, _ in lines:
                rate = len(rows) / seconds
                measured.append({"workload": name, "mode": label, "faces": len(rows),
                                 "seconds": seconds, "faces_per_s": rate,
                                 "x_naive": naive_s / seconds})
                print(f"{name:<22}{label:<16}{len(rows):>7}{seconds:>10.3f}{rate:>10.0f}"
                      f"{naive_s / seconds:>8.2f}x")
            if lines[-1][2] is not None:
                report = lines[-1][2]
                print(f"{'':<22}detection rate {report['detection_rate']}, eye sources "
                      f"{report['eye_sources']}")
    facts = machine_facts()
    payload = {"command": command, "commit": git_commit(REPO_ROOT), "machine": facts,
               "workers": workers, "rows": measured}
    table = ["| workload | mode | faces | seconds | faces/s | x naive |",
             "|---|---|---|---|---|---|"]
    table += [f"| {r['workload']} | {r['mode']} | {r['faces']} | {r['seconds']:.3f} | "
              f"{r['faces_per_s']:.0f} | {r['x_naive']:.2f} |" for r in measured]
    lines = ["# Preprocessing throughput", "", f"- command: `{command}`",
             f"- commit: `{payload['commit']}`",
             f"- machine: {facts['cpu']}, {facts['cpu_count']} cores ({workers} workers)", "",
             *table]
    for path in write_results("preprocess_throughput", payload, "\n".join(lines)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
