"""``ferops predict``: expressions of the faces in photos, from a served model.

``ferops predict photo.jpg`` (the ``ferops-image`` champion) or ``ferops predict --model
models:/ferops-rgbd@champion photo.jpg --depth photo_depth.png`` prints per detected face its
box and top-3 expressions (``--json`` for machines) and can draw them (``--annotate
out.png``). A photo without a detected face is answered "no face" unless ``--crop`` says it
already is a face crop. ``--eyes lx,ly,rx,ry`` (one per photo, in order; ``-`` for "detect")
gives known eye centres, which align the face as training did and skip detection. A model
that needs an input the command lacks (a depth map, a clip) is refused before it loads. Of
several photos, one that cannot be read is named by its path and skipped, the others scored
(exit 2); ``--to`` scores folders and globs into a table.
``--runtime onnx`` runs the network exported by ``ferops export onnx`` with onnxruntime; the
face chain is the same Python code either way.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.errors import ConfigError, DataError
from components.serving.inputs import TOP_K
from pipelines._common import run_cli, stage_parser

if TYPE_CHECKING:  # the heavy imports wait until a command runs (``--help`` stays quick)
    import pandas as pd

    from components.serving.predictor import Predictor

RUNTIMES: tuple[str, ...] = ("torch", "onnx")
DEFAULT_MODEL = "models:/ferops-image@champion"  # takes a plain photo
NO_EYES = "-"  # an --eyes value that leaves that photo to face detection


def quiet_model_downloads() -> None:
    """No MLflow progress bars for copying a model's files out of the store.

    MLflow draws one per download (the metadata check, then the model: its code alone is
    about 120 small files): noise on every command, for a local copy of seconds. A caller
    who wants them sets ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` itself.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def load_model(model: str, data_dir: Path | None, params: dict[str, Any] | None) -> Any:
    """The serving model behind ``model`` (registry/run URI or run folder); registry and run
    URIs resolve in the project's store (``MLFLOW_TRACKING_URI`` or ``mlflow.db``), also
    from a ``dvc exp run --temp`` copy.

    Raises:
        DataError: nothing loadable at ``model``.
        TrackingError: the tracking server does not answer (one probe, no minutes of
            MLflow's retries).
    """
    from components.serving.pyfunc import resolve_model

    quiet_model_downloads()
    if model.startswith(("models:/", "runs:/")):
        from components.tracking.store import check_reachable, configure_tracking

        check_reachable(configure_tracking())
    params = params or {}
    return resolve_model(model, data_dir, params.get("preprocess"), params.get("serving"))


def build_predictor(model: str, runtime: str = "torch", onnx: Path | None = None,
                    data_dir: Path | None = None, params: dict[str, Any] | None = None,
                    threads: int = 0) -> Predictor:
    """The predictor for ``model`` on ``runtime``.

    For ``onnx`` an existing ``--onnx`` file (with its ``.serving.json``) is used as is;
    without one the model is exported to a temporary file first.

    Raises:
        ConfigError: an unknown runtime.
        DataError: the model cannot be loaded or exported.
    """
    from components.serving.onnx_export import export_onnx, onnx_predictor

    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime: {runtime!r} is not one of {list(RUNTIMES)}")
    if runtime == "onnx" and onnx is not None and Path(onnx).is_file():
        return onnx_predictor(Path(onnx), threads)
    loaded = load_model(model, data_dir, params)
    if runtime == "torch":
        if threads:
            import torch

            torch.set_num_threads(threads)
        return loaded.predictor()
    if onnx is not None:
        return onnx_predictor(export_onnx(loaded, Path(onnx)), threads)
    import tempfile

    # onnxruntime reads the file whole when the session starts: the export is scratch.
    with tempfile.TemporaryDirectory(prefix="ferops-onnx-") as folder:
        return onnx_predictor(export_onnx(loaded, Path(folder) / "model.onnx"), threads)


def check_counts(images: Sequence[str], depths: Sequence[str] = (),
                 color2d: Sequence[str] = (), eyes: Sequence[str] = (),
                 eyes2d: Sequence[str] = ()) -> None:
    """The per-photo options give one value per photo, or none.

    Raises:
        DataError: an option's count differs from the photos'.
    """
    for option, values in (("--depth", depths), ("--color2d", color2d), ("--eyes", eyes),
                           ("--eyes2d", eyes2d)):
        if values and len(values) != len(images):
            raise DataError(f"{option}: {len(values)} files for {len(images)} images "
                            "(give one per image, in the same order)")


def request_frame(predictor: Predictor, images: Sequence[str], depths: Sequence[str] = (),
                  color2d: Sequence[str] = (), eyes: Sequence[str] = (),
                  eyes2d: Sequence[str] = (), crop: bool = False) -> pd.DataFrame:
    """The request rows for files: one row per image (a clip folder/video for video models).

    ``eyes`` / ``eyes2d`` hold ``"lx,ly,rx,ry"`` text per image (``-``: detect the face);
    the predictor parses and checks them. ``crop`` marks every image as a face crop.

    Raises:
        DataError: ``--depth`` / ``--color2d`` / ``--eyes`` / ``--eyes2d`` counts differ from
            the images.
    """
    import pandas as pd

    from components.data.io import read_frames

    check_counts(images, depths, color2d, eyes, eyes2d)
    if predictor.settings.is_video:
        clips = pd.DataFrame({"frames": [read_frames(p) for p in images]})
        return clips.assign(crop=True) if crop else clips
    rows: dict[str, list[Any]] = {"image": [_file(p) for p in images]}
    if depths:
        rows["depth"] = [_file(p) for p in depths]
    if color2d:
        rows["color2d"] = [_file(p) for p in color2d]
    for column, values in (("eyes", eyes), ("eyes2d", eyes2d)):
        if values:
            rows[column] = [None if v.strip() == NO_EYES else v for v in values]
    if crop:
        rows["crop"] = [True] * len(images)
    return pd.DataFrame(rows)


def _file(path: str) -> bytes:
    """The file's bytes (not its path: a served-model policy may refuse paths)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: file not found")
    return file.read_bytes()


_COLUMN_PREFIX = re.compile(r"^row 0 (?P<column>\w+): ")


def name_the_file(message: str, index: int, images: Sequence[str],
                  by_column: dict[str, Sequence[str]]) -> str:
    """An input's error in the command line's words: the photo's own reason (see
    :func:`components.serving.batch.file_reason`) is prefixed with the photo file; one about
    another column of its request (``row 0 depth: ...``) names that option's file and its
    photo."""
    match = _COLUMN_PREFIX.match(message)
    column, rest = (match.group("column"), message[match.end():]) if match else (None, message)
    values = by_column.get(column or "") or ()
    if column in ("depth", "color2d") and values:
        return f"{values[index]} (--{column} of {images[index]}): {rest}"
    if column in ("eyes", "eyes2d") and values:
        return f"{images[index]} (--{column} {values[index]}): {rest}"
    return f"{images[index]}: {rest}"


def predict_each(predictor: Predictor, images: Sequence[str], depths: Sequence[str] = (),
                 color2d: Sequence[str] = (), eyes: Sequence[str] = (),
                 eyes2d: Sequence[str] = (), crop: bool = False
                 ) -> tuple[pd.DataFrame, dict[int, str]]:
    """The faces of every input that could be scored, and a one-line reason per input that
    could not (by position), naming its file: one corrupt photo of several loses only itself.

    Scored as ``--to`` scores a folder (:func:`components.serving.batch.predict_batch`:
    chunks, a failing chunk re-scored input by input), keyed by position.

    Raises:
        DataError: the per-photo options do not match the photos in number.
    """
    import pandas as pd

    from components.serving.batch import predict_batch

    check_counts(images, depths, color2d, eyes, eyes2d)
    per_image = {"depth": depths, "color2d": color2d, "eyes": eyes, "eyes2d": eyes2d}

    def request(keys: Sequence[str]) -> pd.DataFrame:
        picks = [int(key) for key in keys]
        own = {column: [values[i] for i in picks] if values else []
               for column, values in per_image.items()}
        return request_frame(predictor, [images[i] for i in picks], own["depth"],
                             own["color2d"], own["eyes"], own["eyes2d"], crop)

    batch = predict_batch(predictor, [str(i) for i in range(len(images))], request=request,
                          progress=False)
    failed = {int(key): name_the_file(reason, int(key), images, per_image)
              for key, reason in batch.bad}
    if batch.faces.empty:
        return pd.DataFrame({"input": pd.Series(dtype="int64")}), failed
    faces = batch.faces.rename(columns={"file": "input"})
    return faces.assign(input=faces["input"].astype("int64")), failed


def report_records(result: pd.DataFrame, classes: list[str], names: list[str], top: int,
                   failed: dict[int, str]) -> list[dict[str, Any]]:
    """The JSON records of every input, in order (see :func:`components.serving.report.
    records`); an input that could not be scored is one record with its ``error``."""
    from components.serving import report

    out: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        if index in failed:
            out.append({"input": name, "error": failed[index]})
        else:
            faces = result[result["input"] == index].assign(input=0)
            out += report.records(faces, classes, [name], top)
    return out


def report_text(result: pd.DataFrame, classes: list[str], names: list[str], top: int,
                failed: dict[int, str]) -> str:
    """The readable report of every input, in order; an input that could not be scored says
    why in its place."""
    from components.serving import report

    lines = []
    for index, name in enumerate(names):
        if index in failed:
            lines.append(f"not scored: {failed[index]}")
        else:
            faces = result[result["input"] == index].assign(input=0)
            lines.append(report.text(faces, classes, [name], top))
    return "\n".join(lines)


def given_inputs(images: Sequence[str], depths: Sequence[str]) -> set[str]:
    """What the command line holds, in :func:`missing_inputs`' words: clips (folders, video
    files) or photos, with or without depth maps."""
    from components.data.io import is_image_file

    clips = bool(images) and all(Path(p).is_dir() or (Path(p).is_file()
                                                      and not is_image_file(Path(p)))
                                 for p in images)
    given = {"frames"} if clips else {"image"}
    return given | ({"depth"} if depths else set())


def check_inputs(model: str, given: set[str], folders: bool = False) -> None:
    """Refuse, before any weights load, a request the registered model cannot take.

    Reads only the model's MLmodel metadata (``arch``, ``inputs``), so a photo sent to an
    RGB-D or clip model is answered at once with the missing option and the registered
    model that would take it. Run folders and ONNX files are checked when they load.

    ``folders``: the command line names folders, which a still model reads with ``--to``
    (every photo in them), so the refusal says so.

    Raises:
        DataError: the model needs an input the command line does not give.
    """
    if not model.startswith(("models:/", "runs:/")):
        return
    quiet_model_downloads()
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    from components.serving.inputs import missing_inputs, registered_prefix
    from components.tracking.store import check_reachable, configure_tracking

    check_reachable(configure_tracking())
    try:
        metadata = get_model_info(model).metadata or {}
    except (MlflowException, OSError) as exc:
        raise DataError(f"{model}: cannot load the model ({str(exc).splitlines()[0]})") from exc
    inputs = tuple(metadata.get("inputs") or ())
    if inputs:
        problem = missing_inputs(str(metadata.get("arch", "?")), inputs, given,
                                 registered_prefix(model))
        if problem and folders and "frames" not in inputs:
            problem += (f"; to label every photo in a folder: ferops predict --model {model} "
                        "--to faces.csv FOLDER")
        if problem:
            raise DataError(problem)


def annotate_file(image: str, result: pd.DataFrame, classes: list[str], out: Path,
                  index: int = 0) -> Path:
    """Draw the faces of input ``index`` onto ``image`` and write ``out``."""
    from components.data.io import read_image, write_image
    from components.serving import report

    faces = result[result["input"] == index]
    return write_image(out, report.annotate(read_image(image), faces, classes))


def _parser():
    parser = stage_parser("Expressions of the faces in photos, from a served model.")
    parser.add_argument("images", nargs="*", help="photos (clip folders / videos for video)")
    parser.add_argument("--examples", action="store_true",
                        help="score held-out photos (one per class) with the model of the "
                        "params' 'predict' section and print them beside their true labels "
                        "(the DVC stage)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="serving model URI, or a training run folder (default: %(default)s)")
    parser.add_argument("--depth", action="append", default=[],
                        help="depth map (16-bit mm) per photo, in order (RGB-D models)")
    parser.add_argument("--color2d", action="append", default=[],
                        help="second-camera 2-D photo per photo, in order (optional)")
    parser.add_argument("--eyes", action="append", default=[], metavar="LX,LY,RX,RY",
                        help="eye centres (pixels) per photo, in order; ';' separates faces, "
                             f"'{NO_EYES}' detects (skips face detection when given)")
    parser.add_argument("--eyes2d", action="append", default=[], metavar="LX,LY,RX,RY",
                        help="eye centres in the --color2d photo, per photo, in order")
    parser.add_argument("--crop", action="store_true",
                        help="the photos (clip frames) already are face crops: no face "
                        "detection, the whole image is the face")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--annotate", type=Path, default=None,
                        help="write the first photo with boxes and labels drawn")
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch")
    parser.add_argument("--onnx", type=Path, default=None,
                        help="exported model (with .serving.json beside) for --runtime onnx")
    parser.add_argument("--data", type=Path, default=Path("artifacts/preprocess"),
                        help="preprocessed data (only for a training run folder as --model)")
    parser.add_argument("--top", type=int, default=TOP_K, help="expressions per face")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the JSON records to this file (the DVC stage's output)")
    batch = parser.add_argument_group(
        "many photos", "with --to, IMAGES may be files, folders (searched recursively) and "
        "globs; files that cannot be read or that the model refuses are skipped and listed")
    batch.add_argument("--to", type=Path, default=None, metavar="FILE.csv|FILE.jsonl",
                       help="write one row per face (file, box, top label, every probability)")
    batch.add_argument("--annotate-dir", type=Path, default=None,
                       help="with --to: draw boxes and labels on every photo into this folder")
    batch.add_argument("--strict", action="store_true",
                       help="with --to: exit 2 when any file was skipped")
    return parser


def run_batch(args: Any, predictor: Predictor) -> int:
    """``--to``: score every file the arguments name, write the table, print a summary.

    Raises:
        DataError: a video model, per-photo options, or an argument naming nothing.
    """
    from components.data.io import read_image, write_image
    from components.serving import report
    from components.serving.batch import expand_inputs, predict_batch, write_faces

    if predictor.settings.is_video:
        raise DataError("--to scores photos; give video clips one by one without --to")
    if args.depth or args.color2d or args.eyes or args.eyes2d:
        raise DataError("--to takes colour photos only (no --depth, --color2d or --eyes)")
    files = expand_inputs(args.images)
    result = predict_batch(predictor, files,
                           request=lambda names: request_frame(predictor, names,
                                                               crop=args.crop))
    out = write_faces(result, args.to)
    if args.annotate_dir is not None:
        classes = predictor.settings.classes
        for name, faces in result.faces.groupby("file"):
            # the last folders in the name keep photos of different folders apart
            target = args.annotate_dir / ("__".join(Path(name).with_suffix("").parts[-3:])
                                          + ".png")
            write_image(target, report.annotate(read_image(name), faces, classes))
    print(result.summary())
    print(f"wrote {out}")
    return 2 if args.strict and result.bad else 0


def run_examples(args: Any, params: dict[str, Any]) -> int:
    """``--examples``: the champion on held-out photos, one per class, beside their true
    labels (the pipeline's last stage; settings from the ``predict`` params section).

    Raises:
        ConfigError: a malformed ``predict`` section.
        DataError: no manifest, no stills in the split, or the model cannot be loaded.
    """
    import pandas as pd

    from components.config import build_config
    from components.serving.examples import (
        ExampleConfig,
        example_records,
        example_request,
        examples_markdown,
        has_eyes,
        pick_examples,
    )

    values = params.get("predict") or {}
    model = str(values.get("model") or args.model)
    cfg = build_config(ExampleConfig, dict(values.get("examples") or {}),
                       where="predict.examples")
    manifest = Path(cfg.manifest)
    if not manifest.is_file():
        raise DataError(f"{manifest}: no manifest to take held-out photos from (run validate)")
    rows = pick_examples(pd.read_parquet(manifest), cfg)
    predictor = build_predictor(model, args.runtime, args.onnx, args.data, params)
    if predictor.settings.is_video:
        raise DataError(f"--examples shows photos; {model} scores clips")
    inputs = tuple(predictor.settings.spec.inputs)
    result = predictor.predict(example_request(rows, inputs))
    plain = (predictor.predict(example_request(rows, inputs, eyes=False)) if has_eyes(rows)
             else None)
    records = example_records(rows, result, plain)
    table = examples_markdown(records, model)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(records, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(table)
    print(table)
    return 0


def run_files(args: Any, predictor: Predictor) -> int:
    """Score the files of the command line and print (and with ``--out`` write) their
    faces; exits 2 when some file could not be scored, after reporting the others.

    Raises:
        DataError: the one file given could not be scored, or ``--annotate`` for clips.
    """
    result, failed = predict_each(predictor, args.images, args.depth, args.color2d,
                                  args.eyes, args.eyes2d, args.crop)
    if len(failed) == len(args.images) == 1:
        raise DataError(failed[0])
    classes = predictor.settings.classes
    records = report_records(result, classes, list(args.images), args.top, failed)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(records, indent=2) + "\n")
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        print(report_text(result, classes, list(args.images), args.top, failed))
    if args.annotate is not None:
        if predictor.settings.is_video:
            raise DataError("--annotate draws on photos; the model scores video clips")
        if 0 not in failed:
            annotate_file(args.images[0], result, classes, args.annotate)
    for reason in failed.values():
        print(f"error: {reason}", file=sys.stderr)
    return 2 if failed else 0


def _body(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from components.config import load_params

    params = load_params(args.params) if Path(args.params).exists() else {}
    if args.examples:
        return run_examples(args, params)
    if not args.images:
        parser.error("the following arguments are required: images")
    if not (args.runtime == "onnx" and args.onnx is not None and args.onnx.is_file()):
        check_inputs(args.model, {"image"} if args.to is not None
                     else given_inputs(args.images, args.depth),
                     folders=any(Path(p).is_dir() for p in args.images))
    predictor = build_predictor(args.model, args.runtime, args.onnx, args.data, params)
    if args.to is not None:
        return run_batch(args, predictor)
    return run_files(args, predictor)


def main(argv: Sequence[str] | None = None) -> int:
    """``ferops predict``; exits 0, or 2 with one line on a user error."""
    return run_cli(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
