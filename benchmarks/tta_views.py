"""What test-time views buy a trained model: its scores with no averaging, with the mirror,
and with the mirror plus copies shifted towards the four corners (``train.tta_shift``), on
the splits its task holds, the view set chosen on validation only.

    python benchmarks/tta_views.py --model models:/ferops-image/7 \
        --data artifacts/preprocess/image [--exp NAME] [--shifts 1 2 3 4] [--name NAME]

``--model`` is a registered version (``models:/NAME/VERSION``) or a train stage's run folder;
``--data`` the preprocessed task it was trained on (the recipe's preprocess output), read from
the workspace, or with ``--exp NAME`` as DVC experiment NAME left it (from DVC's cache: what
``benchmarks/fer2013_accuracy.py``'s ``dvc exp run --temp`` trained on, the workspace and
its commit untouched). Every
score is the platform's own (:func:`components.training.run.score` through the model's
:class:`~components.models.classifier.ViewAverage`), so a view set chosen here is what
``train.tta_shift`` makes the pipeline, the registry and serving compute. Published FER2013
figures average ten crops (mirror and shift 2 on 48 px faces). Writes
``benchmarks/results/<name>.{json,md}`` with the commit and machine; ``--markdown-only``
rewrites the ``.md`` from the ``.json``. Ten views cost about five times the mirror's
scoring time (the ``s`` columns).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import (  # noqa: E402
    RESULTS_DIR,
    git_commit,
    machine_facts,
    pct,
    publish,
    results_name,
)
from components.errors import DataError, one_line  # noqa: E402

SPLITS: tuple[str, ...] = ("val", "test", "test_dedup")
SELECT_SPLIT = "val"
SELECT_METRIC = "accuracy"  # the fer2013 recipe's train.monitor
# What each split of a FER2013 recipe's task is, under every table of a trained model's scores.
SPLITS_NOTE = ("Splits as the recipe's preprocess wrote them. FER2013: `val` is what the recipe "
               "validates on, PublicTest without the rows that duplicate training images, each "
               "face beside its occluded twin (1:1, as the augment stage mixes every split but "
               "the tests); `test` is the official PrivateTest, all rows, clean; `test_dedup` "
               "the PrivateTest without the rows that duplicate training images.")


def load_model(model: str, task_dir: Path) -> tuple[Any, Any]:
    """The model's spec and classifier, loaded the way ``ferops predict`` loads them
    (:func:`~components.serving.pyfunc.resolve_model`): a registered or logged model from
    the project's store, or a run folder fit on ``task_dir``."""
    from components.serving.pyfunc import resolve_model
    from components.tracking.store import configure_tracking

    if ":/" in model:
        configure_tracking()  # the project's store (or MLFLOW_TRACKING_URI), as ferops uses
    loaded = resolve_model(model, data_dir=task_dir.parent)
    return loaded.settings.spec, loaded.classifier


def view_sets(shifts: list[int]) -> list[tuple[str, bool, int]]:
    """(name, mirror, shift) of every view set measured, fewest views first."""
    sets = [("none (1 view)", False, 0), ("mirror (2 views)", True, 0)]
    sets += [(f"mirror + shift {s} (10 views)", True, s) for s in shifts]
    return sets


def measure(model: str, data: Path, shifts: list[int]) -> dict[str, Any]:
    """Scores per view set and split, with the seconds each scoring took."""
    from components.models import TorchClassifier
    from components.training.run import score

    spec, classifier = load_model(model, data)
    if not isinstance(classifier, TorchClassifier):
        raise DataError(f"{model}: {spec.arch} predicts through its own members: "
                        "test-time views do not apply")
    splits = [s for s in SPLITS if (data / s / "y.npy").is_file()]
    if SELECT_SPLIT not in splits:
        raise DataError(f"{data}: no {SELECT_SPLIT} split to choose the view set on")
    rows = []
    for name, mirror, shift in view_sets(shifts):
        model = TorchClassifier(classifier.net, classifier.needs, mirror=mirror, shift=shift)
        row: dict[str, Any] = {"views": name, "mirror": mirror, "shift": shift, "splits": {}}
        for split in splits:
            started = time.perf_counter()
            report = score(model, spec, data, split)
            row["splits"][split] = {
                "faces": len(report["labels"]), "accuracy": report["accuracy"],
                "uar": report["uar"], "macro_f1": report["macro_f1"],
                "seconds": round(time.perf_counter() - started, 1)}
            print(f"{name}: {split} accuracy {pct(report['accuracy'])}, "
                  f"UAR {pct(report['uar'])}", flush=True)
        rows.append(row)
    chosen = max(rows, key=lambda r: r["splits"][SELECT_SPLIT][SELECT_METRIC])
    return {"arch": spec.arch, "trained_with": {"tta_mirror": spec.tta_mirror,
                                                "tta_shift": spec.tta_shift},
            "splits": splits, "rows": rows, "chosen": chosen["views"]}


def markdown(payload: dict[str, Any]) -> list[str]:
    """The results file for people: one table per split, the chosen view set marked."""
    result = payload["result"]
    lines = [
        "# Test-time views of a trained model",
        "",
        f"- command: `{payload['command']}`",
        f"- commit: `{payload['commit']}`",
        f"- model: `{payload['model']}` ({result['arch']}; the views it was saved with: mirror "
        f"{result['trained_with']['tta_mirror']}, shift {result['trained_with']['tta_shift']});"
        f" data: {data_text(payload)}",
        f"- machine: {payload['machine']['cpu']}, {payload['machine']['cpu_count']} cores, "
        f"torch {payload['machine']['torch']} ({payload['machine']['torch_threads']} threads)",
        f"- chosen on `{SELECT_SPLIT}` by {SELECT_METRIC} (the test splits play no part): "
        f"**{result['chosen']}**",
        "",
    ]
    for split in result["splits"]:
        lines += [f"## `{split}`", "", "| views | faces | accuracy | UAR | macro-F1 | s |",
                  "|---|---|---|---|---|---|"]
        for row in result["rows"]:
            s = row["splits"][split]
            mark = " (chosen)" if row["views"] == result["chosen"] else ""
            lines.append(f"| {row['views']}{mark} | {s['faces']} | {pct(s['accuracy'])} | "
                         f"{pct(s['uar'])} | {pct(s['macro_f1'])} | {s['seconds']} |")
        lines.append("")
    lines.append(f"{SPLITS_NOTE} One model, no retraining.")
    return lines


def data_text(payload: dict[str, Any]) -> str:
    """Where the scored data came from, for a results file: the folder, and the experiment
    whose copy of it was read (``--exp``) when one was named."""
    text = f"`{payload['data']}`"
    return f"{text} of experiment `{payload['experiment']}`" if payload.get("experiment") else text


def model_args(description: str, name: str) -> argparse.ArgumentParser:
    """The arguments every script scoring one trained model shares: ``--model``, ``--data``,
    ``--exp`` (read ``--data`` as a DVC experiment left it), ``--name`` and
    ``--markdown-only`` (rewrite ``<name>.md`` from ``<name>.json``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--exp", metavar="NAME",
                        help="read --data (a path inside this project) as DVC experiment "
                             "NAME left it, from DVC's cache: a `dvc exp run --temp` run's "
                             "data, without `dvc exp apply` rewriting the workspace")
    parser.add_argument("--name", default=name, type=results_name)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--markdown-only", action="store_true",
                        help="rewrite <name>.md from <name>.json (no scoring)")
    return parser


def measure_on_data(args: argparse.Namespace,
                    measure: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """``measure(task folder)`` on ``--data``: the workspace's folder, or with ``--exp`` a
    copy of the experiment's, checked out of DVC's cache into a temporary folder (removed
    afterwards) so the workspace and the commit it records stay as they are."""
    if not args.exp:
        return measure(args.data)
    from components.experiments import checkout_output

    with tempfile.TemporaryDirectory(prefix="ferops-exp-data-") as tmp:
        print(f"checking out {args.data} of experiment {args.exp} from DVC's cache", flush=True)
        return measure(checkout_output(REPO_ROOT, args.exp, args.data, Path(tmp)))


def run_model_script(args: argparse.Namespace, argv: list[str] | None, script: str,
                     measure: Callable[[Path], dict[str, Any]],
                     markdown: Callable[[dict[str, Any]], list[str]]) -> int:
    """Measure ``measure(task folder)`` (or, with ``--markdown-only``, only re-render) and
    publish the results of a script built on :func:`model_args`; a bad model, data path or
    experiment name is one ``error:`` line and exit code 2."""
    if args.markdown_only:
        payload = json.loads((args.out_dir / f"{args.name}.json").read_text())
        publish(args.name, payload, markdown(payload), args.out_dir)
        return 0
    try:
        result = measure_on_data(args, measure)
    except (DataError, OSError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    given = sys.argv[1:] if argv is None else argv
    payload = {"command": "python " + shlex.join([script, *given]),
               "commit": git_commit(REPO_ROOT), "model": args.model, "data": str(args.data),
               "machine": machine_facts(), "result": result}
    if args.exp:
        payload["experiment"] = args.exp
    publish(args.name, payload, markdown(payload), args.out_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = model_args(__doc__.split("\n\n")[0], "tta_views")
    parser.add_argument("--shifts", type=int, nargs="+", default=[1, 2, 3, 4])
    args = parser.parse_args(argv)
    if any(s < 1 for s in args.shifts):
        parser.error("--shifts: each must be >= 1 pixel")
    return run_model_script(args, argv, "benchmarks/tta_views.py",
                            lambda data: measure(args.model, data, args.shifts), markdown)


if __name__ == "__main__":
    sys.exit(main())
