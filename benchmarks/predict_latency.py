"""Per-face latency of the served model: network only and photo -> label, torch vs ONNX.

``python benchmarks/predict_latency.py [--model URI|run folder] [--repeats N] [--threads T]``
measures, in one run, the torch network and the onnxruntime export at batch 1 and batch 64
(model only, ms per face), the whole chain on a 640x480 photo with one face, as a JPEG
(quality 90, what cameras write) and as a PNG (lossless; decoding it alone costs several
milliseconds) (decode, Haar detection, alignment, stretch, network; batch 1 = one photo,
batch 64 = 64 photos in one request), and a folder of 128 such photos scored the way
``ferops predict --to`` scores one (files read, chunks of 32 photos, decoding and detection
spread over the cores). Ratios are
against torch batch 1 of the same run, so machines compare fairly. Targets: 0.5 ms per face
for the ONNX network, 15 ms per photo at batch 1, 100 photos/s (10 ms each) for a folder.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

# What `ferops predict` runs on: the pipelines' instruction-set caps, set before NumPy loads.
import pipelines  # noqa: E402, F401, I001

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.report import git_commit, machine_facts, write_results  # noqa: E402
from components.config import load_params  # noqa: E402
from components.serving.batch import CHUNK_FILES, predict_batch  # noqa: E402
from components.serving.onnx_export import example_batch, export_onnx, onnx_backend  # noqa: E402
from components.serving.predictor import Predictor, classifier_backend  # noqa: E402
from components.serving.pyfunc import resolve_model  # noqa: E402
from pipelines.predict import request_frame  # noqa: E402

DEFAULT_MODEL = "models:/ferops-rgbd@champion"
FALLBACK_MODEL = "artifacts/train/baseline_cnn"
TARGETS = {"model": 0.5, "photo": 15.0, "folder": 10.0}  # ms: ONNX net b1, photo b1, folder
FOLDER_PHOTOS = 128


def bench_photo(size: tuple[int, int] = (480, 640), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 640x480 photo with one drawn frontal face (Haar finds it) and a registered depth map."""
    import cv2

    rng = np.random.default_rng(seed)
    height, width = size
    image = (np.full((height, width, 3), (90, 110, 140)) + rng.integers(0, 20, (height, width, 3)))
    image = image.astype(np.uint8)
    cx, cy, fw = width // 2, height // 2 + 10, 180
    fh = int(fw * 1.3)
    cv2.ellipse(image, (cx, cy), (fw // 2, fh // 2), 0, 0, 360, (200, 170, 150), -1)
    for sx in (-1, 1):
        x, y = int(cx + sx * fw * 0.2), int(cy - fh * 0.12)
        cv2.ellipse(image, (x, y - int(fw * 0.1)), (int(fw * 0.1), int(fw * 0.025)), 0, 0, 360,
                    (60, 40, 30), -1)
        cv2.ellipse(image, (x, y), (int(fw * 0.08), int(fw * 0.04)), 0, 0, 360,
                    (250, 250, 250), -1)
        cv2.circle(image, (x, y), int(fw * 0.03), (30, 20, 20), -1)
    cv2.ellipse(image, (cx, int(cy + fh * 0.27)), (int(fw * 0.15), int(fw * 0.04)), 0, 0, 360,
                (120, 50, 60), -1)
    yy, xx = np.mgrid[0:height, 0:width]
    depth = 1500 - 400 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 90.0**2))
    return cv2.GaussianBlur(image, (5, 5), 1.5), np.round(depth).astype(np.uint16)


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


FORMATS = {"jpeg": ".jpg", "png": ".png"}
JPEG_QUALITY = 90


def encoded(image: np.ndarray, fmt: str) -> bytes:
    """``image`` (RGB, grey or uint16 depth) as JPEG (quality 90) or PNG file bytes."""
    import cv2

    flags = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if fmt == "jpeg" else []
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    return cv2.imencode(FORMATS[fmt], pixels, flags)[1].tobytes()


def write_folder(folder: Path, fmt: str, with_depth: bool) -> list[Path]:
    """``FOLDER_PHOTOS`` 640x480 photos in ``fmt`` (a new background each) for the folder
    run; RGB-D models get each photo's depth map beside it (always PNG: 16-bit)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for number in range(FOLDER_PHOTOS):
        colour, depth = bench_photo(seed=number + 1)
        path = folder / f"photo_{number:03d}{FORMATS[fmt]}"
        path.write_bytes(encoded(colour, fmt))
        if with_depth:
            (folder / f"photo_{number:03d}_depth.png").write_bytes(encoded(depth, "png"))
        files.append(path)
    return files


def timed_folder(predictor: Predictor, files: list[Path], repeats: int) -> float:
    """Median seconds to score every photo of the folder as ``ferops predict --to`` does."""
    names = [str(f) for f in files]
    depth_of = {str(f): str(f.with_name(f.stem + "_depth.png")) for f in files}
    with_depth = "depth" in predictor.settings.spec.inputs

    def request(part):
        return request_frame(predictor, part, [depth_of[n] for n in part] if with_depth else ())

    def score():
        result = predict_batch(predictor, names, request=request, progress=False)
        if result.bad or len(result.faces) != len(names):
            raise RuntimeError(f"folder run lost photos: {result.summary()}")

    return timed(score, repeats)


def run(model: str, repeats: int, threads: int, data: Path, params: dict) -> pd.DataFrame:
    """The latency table (ms per face or photo, per second, ratio to torch, target)."""
    import torch

    torch.set_num_threads(threads)
    loaded = resolve_model(model, data, params.get("preprocess"), params.get("serving"))
    settings = loaded.settings
    scratch = Path(tempfile.mkdtemp(prefix="ferops-bench-"))
    onnx_path = export_onnx(loaded, scratch / "m.onnx")
    backends = {"torch": classifier_backend(loaded.classifier),
                "onnx": onnx_backend(onnx_path, threads)}
    with_depth = "depth" in settings.spec.inputs
    colour, depth = bench_photo()
    rows = []
    for runtime, backend in backends.items():
        predictor = Predictor(settings, backend)
        for batch in (1, 64):
            x = example_batch(settings, batch)
            seconds = timed(lambda x=x, b=backend: b(x), repeats)
            rows.append({"runtime": runtime, "what": "model", "format": "", "batch": batch,
                         "ms_per_face": 1000 * seconds / batch})
        for fmt in FORMATS:
            row = {"image": encoded(colour, fmt)}
            if with_depth:
                row["depth"] = encoded(depth, "png")
            for batch in (1, 64):
                request = pd.DataFrame([row] * batch)
                n = max(1, repeats // (8 if batch > 1 else 1))
                seconds = timed(lambda p=predictor, r=request: p.predict(r), n)
                rows.append({"runtime": runtime, "what": "photo", "format": fmt,
                             "batch": batch, "ms_per_face": 1000 * seconds / batch})
            folder = write_folder(scratch / fmt, fmt, with_depth)
            seconds = timed_folder(predictor, folder, max(1, repeats // 25))
            rows.append({"runtime": runtime, "what": "folder", "format": fmt,
                         "batch": CHUNK_FILES, "ms_per_face": 1000 * seconds / len(folder)})
    table = pd.DataFrame(rows)
    table["per_second"] = 1000 / table["ms_per_face"]
    base = (table[table["runtime"] == "torch"].sort_values("batch")
            .groupby(["what", "format"])["ms_per_face"].first())  # torch, smallest batch
    table["vs_torch"] = [base[(r.what, r.format)] / r.ms_per_face for r in table.itertuples()]
    table["target_ms"] = [
        TARGETS["model"] if (r.what == "model" and r.runtime == "onnx" and r.batch == 1)
        else TARGETS["photo"] if (r.what == "photo" and r.batch == 1)
        else TARGETS["folder"] if r.what == "folder" else np.nan for r in table.itertuples()]
    table["meets"] = [("yes" if r.ms_per_face <= r.target_ms else "NO")
                      if not np.isnan(r.target_ms) else "" for r in table.itertuples()]
    table.attrs["arch"] = settings.spec.arch
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; exits 0 (targets are reported, not enforced)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help=f"serving URI or run folder (default: "
                        f"{DEFAULT_MODEL}, else {FALLBACK_MODEL})")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=Path("artifacts/preprocess"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = load_params(args.params) if args.params.exists() else {}
    model = args.model
    if model is None:
        try:
            resolve_model(DEFAULT_MODEL)
            model = DEFAULT_MODEL
        except Exception:  # noqa: BLE001 - no registry / champion yet: use the run folder
            model = FALLBACK_MODEL
    table = run(model, args.repeats, args.threads, args.data, params)
    print(f"model {model} ({table.attrs['arch']}), {args.threads} threads, "
          f"median of {args.repeats} repeats")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    command = shlex.join(["python", "benchmarks/predict_latency.py",
                          *(sys.argv[1:] if argv is None else argv)])
    facts = machine_facts()
    payload = {"command": command, "commit": git_commit(REPO_ROOT), "machine": facts,
               "model": model, "architecture": table.attrs["arch"], "threads": args.threads,
               "repeats": args.repeats, "rows": table.to_dict("records")}
    lines = [
        "# Prediction latency: torch vs onnxruntime, model only and photo to label", "",
        f"- command: `{command}`", f"- commit: `{payload['commit']}`",
        f"- machine: {facts['cpu']}, {facts['cpu_count']} cores, torch {facts['torch']}, "
        f"{args.threads} threads, kernels at {facts['torch_cpu_capability']} (the pipelines' "
        f"instruction-set cap); median of {args.repeats} repeats",
        f"- model: `{model}` ({table.attrs['arch']})", "",
        table.to_markdown(index=False, floatfmt=".3f") if _has_tabulate()
        else "```\n" + table.to_string(index=False) + "\n```",
    ]
    for path in write_results("predict_latency", payload, "\n".join(lines)):
        print(f"wrote {path}")
    return 0


def _has_tabulate() -> bool:
    import importlib.util

    return importlib.util.find_spec("tabulate") is not None


if __name__ == "__main__":
    raise SystemExit(main())
