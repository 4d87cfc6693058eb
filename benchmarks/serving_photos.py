"""How a trained model reads plain photos: the demo's held-out test stills through the
model's serving chain, with and without the eye centres the training chain aligns by.

    python benchmarks/serving_photos.py [--model MODEL ...] [--data DIR] [--name NAME]

The preprocess stage aligns every training and test face by the eye centres the renderer
recorded, so the pipeline's test scores say how well a model reads faces aligned exactly as
in training. A user's photo carries no eye centres: `ferops predict photo.png` finds the face
(OpenCV's Haar cascade), then the eyes (the Haar eye cascade, else the face box's
proportions). This scores the demo's clean test stills (the validated manifest's `test` split,
whose subjects no model trained on) through each model's own serving chain
(`components.serving.external`, what `ferops evaluate --model` runs), per light level, three
ways:

- `eyes given`: the recorded eye centres sent as the request's `eyes` (the training chain's
  alignment, so these scores repeat the pipeline's test split);
- `plain photo`: face and eye detection, as `ferops predict photo.png`;
- `face crop`: the whole photo taken as the face (`ferops predict --crop`).

An RGB-D model also gets each photo's depth map (and its second-camera image where it reads
one), as a user with an RGB-D camera sends them. A photo in which serving finds no face counts
as wrong in "of all photos". ``MODEL`` is a
registry or run URI or a training run folder (default: `models:/ferops-image@champion`);
``--data`` is the preprocess folder a run folder's model was trained from. Needs the demo's
stages (`make repro`). Writes ``benchmarks/results/<name>.{json,md}`` with the commit and
machine.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import git_commit, machine_facts, publish, results_name  # noqa: E402
from components.errors import DataError, FeropsError, one_line  # noqa: E402

MANIFEST = Path("artifacts/validate/manifest.parquet")
DEFAULT_MODEL = "models:/ferops-image@champion"
MODES = ("eyes given", "plain photo", "face crop")
LIGHTS = ("all", "normal", "dark", "bright")
STILL_COLUMNS = ["color", "depth", "color2d", "label", "light_level", "landmarks"]


def held_out_stills(manifest: Path) -> Any:
    """The manifest's clean test stills (colour, depth and second-camera paths, label, light
    level, landmarks)."""
    import pandas as pd

    if not manifest.is_file():
        raise DataError(f"{manifest}: no validated manifest (run `make repro` first)")
    rows = pd.read_parquet(manifest)
    stills = rows[(rows["split"] == "test") & (rows["n_frames"].fillna(0) == 0)]
    if stills.empty:
        raise DataError(f"{manifest}: no test stills")
    return stills.reindex(columns=STILL_COLUMNS).reset_index(drop=True)


def mode_request(predictor: Any, mode: str, stills: Any):
    """The request builder of one way of sending the photos (see the module doc). An RGB-D
    model also gets each photo's depth map, and its second-camera image where it reads one
    (with that image's eye centres when the colour photo's are given)."""
    from components.serving.examples import eyes_of
    from pipelines.predict import NO_EYES, request_frame

    inputs = set(predictor.settings.spec.inputs)
    by_file = {str(row.color): row for row in stills.itertuples(index=False)}

    def eyes(names, view):
        return [eyes_of(_view(by_file[n].landmarks, view)) or NO_EYES for n in names]

    def request(names):
        depths = [str(by_file[n].depth) for n in names] if "depth" in inputs else ()
        color2d = [str(by_file[n].color2d) for n in names] if "color2d" in inputs else ()
        if mode == "eyes given":
            return request_frame(predictor, names, depths, color2d, eyes=eyes(names, "color"),
                                 eyes2d=eyes(names, "color2d") if color2d else ())
        return request_frame(predictor, names, depths, color2d, crop=mode == "face crop")

    return request


def _view(landmarks: Any, view: str) -> str | None:
    """A manifest ``landmarks`` cell reduced to one camera's eyes, in the colour key
    :func:`components.serving.examples.eyes_of` reads."""
    import json

    if not isinstance(landmarks, str) or not landmarks:
        return None
    quads = (json.loads(landmarks) or {}).get(view)
    return json.dumps({"color": quads}) if quads else None


def scores(n_photos: int, n_scored: int, report: dict[str, Any]) -> dict[str, Any]:
    """One cell of the table: faces found, and accuracy over those and over every photo (a
    photo without a found face counts as wrong there)."""
    found = float(report["accuracy"]) if n_scored else None
    right = (found or 0.0) * n_scored
    return {"photos": n_photos, "faces_found": n_scored, "accuracy_of_found": found,
            "uar_of_found": float(report["uar"]) if n_scored else None,
            "accuracy_of_all": right / n_photos if n_photos else None}


def score_model(model: str, data: Path | None, stills: Any,
                params: dict[str, Any]) -> dict[str, Any]:
    """Every mode and light level of one model."""
    from components.serving.external import evaluate_external
    from pipelines.predict import build_predictor

    predictor = build_predictor(model, "torch", None, data, params)
    if predictor.settings.is_video:
        raise DataError(f"{model} scores clips; this benchmark sends photos")
    stills = stills.reindex(columns=STILL_COLUMNS)  # a caller's table may lack a view
    table: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        request = mode_request(predictor, mode, stills)
        for light in LIGHTS:
            rows = stills if light == "all" else stills[stills["light_level"] == light]
            if rows.empty:
                continue
            result = evaluate_external(predictor, rows[["color", "label"]], request,
                                       progress=False)
            table.setdefault(mode, {})[light] = scores(len(rows), result.n_scored,
                                                       result.report)
    return {"model": model, "version": registered_version(model),
            "arch": predictor.settings.spec.arch, "modes": table}


def registered_version(model: str) -> str | None:
    """``"<registered model> v<N>"`` behind a ``models:/`` URI (an alias moves; the results
    name the version they scored), else None."""
    if not model.startswith("models:/"):
        return None
    from mlflow import MlflowClient

    from components.tracking.store import configure_tracking
    from registry.external import resolve_version

    name, version = resolve_version(MlflowClient(configure_tracking()), model)
    return f"{name} v{version}"


def markdown(command: str, payload: dict[str, Any]) -> list[str]:
    """The comparison for people: one row per model, mode and light level."""
    machine = payload["machine"]
    lines = ["# Plain photos against the training chain's alignment (the demo's test stills)",
             "", f"- command: `{command}`", f"- commit: `{payload['commit']}`",
             f"- machine: {machine['cpu']}, {machine['cpu_count']} cores, torch "
             f"{machine['torch']}",
             f"- photos: the validated manifest's clean `test` stills ({payload['photos']}; "
             f"subjects no model trained on), each model's own serving chain",
             "- eyes given: the renderer's eye centres as the request's `eyes` (the training "
             "chain's alignment); plain photo: Haar face and eye detection, as `ferops "
             "predict photo.png`; face crop: the whole photo as the face (`--crop`)",
             "- of all photos: a photo without a found face counts as wrong", "",
             "| model | way | light | photos | faces found | accuracy of found | UAR of found "
             "| accuracy of all photos |", "|---|---|---|---|---|---|---|---|"]
    for result in payload["models"]:
        for mode, by_light in result["modes"].items():
            for light, s in by_light.items():
                lines.append(
                    f"| {_label(result)} | {mode} | {light} | "
                    f"{s['photos']} | {s['faces_found']} | {_opt(s['accuracy_of_found'])} | "
                    f"{_opt(s['uar_of_found'])} | {_opt(s['accuracy_of_all'])} |")
    return lines


def _label(result: dict[str, Any]) -> str:
    version = f", {result['version']}" if result.get("version") else ""
    return f"{result['model']} ({result['arch']}{version})"


def _opt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[],
                        help=f"registry/run URI or run folder from the project root "
                        f"(repeatable; default {DEFAULT_MODEL})")
    parser.add_argument("--data", type=Path, default=Path("artifacts/preprocess"),
                        help="preprocess folder of run-folder models")
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--name", type=results_name, default="serving_photos")
    args = parser.parse_args(argv)
    try:
        return run(args, argv)
    except FeropsError as exc:  # a missing manifest, an unknown model, a store that is down
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Score every model and publish the results files."""
    manifest, data = args.manifest.resolve(), args.data.resolve()  # as given, from here
    from components.config import load_params

    with contextlib.chdir(REPO_ROOT):  # the manifest's photo paths are relative to the project
        params = load_params("params.yaml")
        stills = held_out_stills(manifest)
        models = [score_model(m, data, stills, params) for m in args.model or [DEFAULT_MODEL]]
    command = shlex.join(["python", "benchmarks/serving_photos.py", *(argv or sys.argv[1:])])
    payload = {"command": command, "commit": git_commit(REPO_ROOT), "machine": machine_facts(),
               "photos": len(stills), "models": models}
    publish(args.name, payload, markdown(command, payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
