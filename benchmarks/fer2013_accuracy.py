"""FER2013 / FER+ accuracy of the platform's own pipeline: a thin driver over `dvc exp run`.

    python benchmarks/fer2013_accuracy.py [--recipe fer2013|fer2013_cpu|ferplus] [--csv PATH]
        [--ferplus PATH] [-S KEY=VALUE ...] [--name NAME] [--workspace]

It runs the recipe through the whole pipeline as any user would
(``dvc exp run --temp -S recipe=<recipe> -S ingest.path=<csv>``: ingest, validate, the 1:1
occlusion mix, preprocess, tune, train to the recipe's budget, evaluate, promote, predict),
then reads what the pipeline tracked: the training run in MLflow (tagged with the DVC
experiment name) and its registry version and aliases. It has no loader, training loop or
planner of its own; everything the recipe needs is a param in ``conf/recipe/<recipe>.yaml``.

FER2013's splits: Training -> train, PublicTest -> val (the only split that picks the
epoch and the tuned settings), PrivateTest -> test. ``test`` is the official PrivateTest
(all 3,589 rows, comparable with published figures); ``test_dedup`` leaves out the rows that
validation flags (copies of training images, blank images). Both are reported, with and
without the recipe's test-time averaging (the mirror, and `train.tta_shift`'s shifted copies
when set).

Writes ``benchmarks/results/<name>.json`` and ``<name>.md`` (command, commit, recipe,
machine facts, minutes, images/s, epochs, per-split scores, registry outcome); the README
quotes only numbers that stand in such a file. Targets are documented, not asserted.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import (  # noqa: E402
    git_commit,
    machine_facts,
    pct,
    results_name,
    write_results,
)
from components.errors import ConfigError, DataError  # noqa: E402

# Each recipe this driver runs, and the labels it scores against (which splits, anchors and
# target apply): `fer2013_cpu` is `fer2013` sized for a CPU without AMX, same data.
LABELS: dict[str, str] = {"fer2013": "fer2013", "fer2013_cpu": "fer2013", "ferplus": "ferplus"}
RECIPES: tuple[str, ...] = tuple(LABELS)
SHARED = REPO_ROOT.parent / "shared" / "datasets" / "fer2013"
# What each scored split is, per recipe: FER+ keeps only the rows with a majority label.
SPLITS: dict[str, tuple[tuple[str, str], ...]] = {
    "fer2013": (
        ("test", "PrivateTest, official (all rows)"),
        ("test_dedup", "PrivateTest, de-duplicated (flagged rows left out)"),
    ),
    "ferplus": (
        ("test", "FER+ PrivateTest (every row with a majority label)"),
        ("test_dedup", "FER+ PrivateTest, de-duplicated (flagged rows left out)"),
    ),
}
# Published reference points, never computed here; each says where it comes from.
ANCHORS: dict[str, tuple[dict[str, Any], ...]] = {
    "fer2013": (
        {"name": "ICML 2013 challenge winner (Tang, SVM top layer)", "accuracy": 0.7116,
         "source": "Goodfellow et al. 2013, Challenges in Representation Learning"},
        {"name": "VGG from scratch, 10-crop TTA, ~300 GPU epochs", "accuracy": 0.7328,
         "source": "Khaireddin & Chen 2021, Facial Emotion Recognition: SOTA on FER2013"},
        {"name": "ResNet-18 from scratch, 10-crop TTA", "accuracy": 0.7370,
         "source": "Pham et al. 2021, Facial Expression Recognition using Residual Masking"},
    ),
    "ferplus": (
        {"name": "VGG13, majority voting", "accuracy": 0.839,
         "source": "Barsoum et al. 2016, Training Deep Networks for FER with Crowd-Sourced "
                   "Label Distribution"},
    ),
}
TARGETS: dict[str, str] = {
    "fer2013": "PrivateTest accuracy >= 72.0 % and UAR >= 66 % within 60 min of training "
               "on 2 CPU cores",
    "ferplus": "majority-label test accuracy >= 84.0 % within 60 min of training on 2 CPU "
               "cores",
}


def default_paths(recipe: str) -> tuple[Path, Path | None]:
    """The csv (``$FER2013_CSV`` or the shared copy) and, for FER+, the label file."""
    csv = Path(os.environ.get("FER2013_CSV") or SHARED / "fer2013.csv.gz")
    labels = Path(os.environ.get("FERPLUS_CSV") or SHARED / "fer2013new.csv")
    return csv, (labels if LABELS[recipe] == "ferplus" else None)


def exp_command(args: argparse.Namespace, csv: Path, labels: Path | None) -> list[str]:
    """The ``dvc exp run`` call: the recipe, the data paths, then the user's overrides."""
    command = ["dvc", "exp", "run", "--name", args.name]
    if not args.workspace:
        command.insert(3, "--temp")
    sets = [f"recipe={args.recipe}", f"ingest.path={csv.resolve()}"]
    if labels is not None:
        sets.append(f"ingest.ferplus={labels.resolve()}")
    for item in [*sets, *args.set]:
        command += ["-S", item]
    return command


def run_pipeline(command: list[str], project: Path, log_path: Path) -> float:
    """Run ``command`` in ``project``, streaming its output to the console and a log file.

    Returns:
        Wall-clock minutes.

    Raises:
        DataError: the pipeline failed (the log names the stage).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # The stages' `python` and `dvc` are this interpreter's, also when it was started by path.
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    start = time.monotonic()
    with log_path.open("w") as log, subprocess.Popen(
        command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        bufsize=1, env=env,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        code = proc.wait()
    if code != 0:
        raise DataError(f"{shlex.join(command)} failed with exit {code}; see {log_path}")
    return (time.monotonic() - start) / 60.0


def newest_per_architecture(runs: list[Any]) -> list[Any]:
    """The newest of ``runs`` (newest first) for each architecture: an experiment name run
    again (on another commit, or after a change) keeps its earlier runs in MLflow, and only
    the latest is this result."""
    seen: set[str | None] = set()
    kept = []
    for run in runs:
        arch = run.data.tags.get("architecture")
        if arch not in seen:
            seen.add(arch)
            kept.append(run)
    return kept


def tracked_runs(project: Path, exp_name: str) -> list[Any]:
    """The newest finished MLflow training run of each architecture the experiment logged
    (tag ``dvc.exp_name``).

    Raises:
        DataError: none found (tracking was off, or the run logged elsewhere).
    """
    from mlflow import MlflowClient

    from components.tracking.store import configure_tracking

    os.environ.setdefault("FEROPS_PROJECT_ROOT", str(project))
    client = MlflowClient(configure_tracking())
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        experiments, f"tags.`dvc.exp_name` = '{exp_name}' and tags.stage = 'train' "
        "and attributes.status = 'FINISHED'",  # a stopped attempt is not a result
        order_by=["attributes.start_time DESC"],
    )
    if not runs:
        raise DataError(f"no MLflow training run tagged dvc.exp_name={exp_name!r}")
    return newest_per_architecture(list(runs))


def registry_outcome(run_id: str) -> dict[str, Any]:
    """The registry version made from ``run_id`` and its aliases (champion or not)."""
    from mlflow import MlflowClient

    from registry.versions import REFUSAL_TAG, REFUSED_AGAINST_TAG

    client = MlflowClient()
    for mv in client.search_model_versions(f"run_id = '{run_id}'"):
        full = client.get_model_version(mv.name, mv.version)
        return {"model": mv.name, "version": mv.version, "aliases": list(full.aliases),
                "uri": f"models:/{mv.name}/{mv.version}",
                "refused_against": (full.tags or {}).get(REFUSED_AGAINST_TAG),
                "refusal": (full.tags or {}).get(REFUSAL_TAG)}
    return {"model": None, "version": None, "aliases": [], "uri": None}


def per_class(run_id: str) -> dict[str, dict[str, Any]]:
    """Per split, the recall of each class and the sample count, from the run's
    ``reports/per_class.json``."""
    import json

    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id,
                                               artifact_path="reports/per_class.json")
    splits = json.loads(Path(path).read_text()).get("splits") or {}
    return {split: {"recall": dict(entry.get("per_class_recall") or {}), "n": entry.get("n")}
            for split, entry in splits.items() if isinstance(entry, dict)}


def run_row(run: Any, recipe: str) -> dict[str, Any]:
    """Scores, epochs, speed and settings of one tracked training run."""
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    reports = per_class(run.info.run_id)
    splits = {}
    for split, label in SPLITS[LABELS[recipe]]:
        if f"{split}_accuracy" not in metrics:
            continue
        entry: dict[str, Any] = {"label": label, "n": reports.get(split, {}).get("n")}
        for suffix, key in (("", "tta"), ("_notta", "no_tta")):
            entry[key] = {m: metrics.get(f"{split}{suffix}_{m}")
                          for m in ("accuracy", "uar", "macro_f1")}
            entry[key]["per_class_recall"] = reports.get(f"{split}{suffix}", {}).get("recall", {})
        splits[split] = entry
    return {
        "run_id": run.info.run_id,
        "architecture": tags.get("architecture"),
        "recipe": tags.get("recipe"),
        "git_commit": tags.get("git_commit"),
        "train_minutes": (run.info.end_time - run.info.start_time) / 60000.0
        if run.info.end_time else None,
        "epochs_run": metrics.get("epochs_run"),
        "epochs_planned": metrics.get("epochs_planned"),
        "epochs_planned_by_probe": metrics.get("epochs_planned_by_probe"),
        "best_epoch": metrics.get("best_epoch"),
        # a seed ensemble (model option ``members``): its members' epochs and best epochs
        "members": metrics.get("members"),
        "member_epochs": [
            {"epochs_run": metrics.get(f"member{k}_epochs_run"),
             "best_epoch": metrics.get(f"member{k}_best_epoch")}
            for k in range(1, int(metrics.get("members") or 0) + 1)],
        # measured over the run's epochs (training steps); runs tracked before the trainer
        # measured it carry the budget probe's estimate under this name
        "train_images_per_second": metrics.get("train_images_per_second"),
        "probe_images_per_second": metrics.get("probe_images_per_second"),
        "epoch_seconds": metrics.get("epoch_seconds"),
        # what the training process computed on (the run's tags; the driver's own process
        # is not the one that trained)
        "kernels": tags.get("machine.kernels"),
        "precision_used": tags.get("train.precision_used"),
        "probe_epoch_seconds": metrics.get("probe_epoch_seconds"),
        "splits": splits,
        "settings": {k: v for k, v in sorted(params.items()) if k.startswith("train.")},
        # the network's options as the run logged them (width, dropout, ensemble members):
        # a recipe's width changes over commits, so the results file keeps the one that ran
        "model": {k: v for k, v in sorted(params.items()) if k.startswith("model.")},
    }


def network_text(row: dict[str, Any]) -> str:
    """The network that ran, in words: architecture, width (or the blocks' own widths and
    conv counts, which replace it), and members when an ensemble."""
    model = {k: v for k, v in (row.get("model") or {}).items() if v not in (None, "None")}
    sized = "channels" if "model.channels" in model else "width"
    parts = [str(row["architecture"])]
    parts += [f"{key} {model[f'model.{key}']}" for key in (sized, "block_convs", "members")
              if f"model.{key}" in model]
    return ", ".join(parts)


def views_label(settings: dict[str, str]) -> str:
    """The run's test-time views in words, from its logged ``train.tta_*`` params."""
    mirror = str(settings.get("train.tta_mirror", "")).lower() == "true"
    shift = int(float(settings.get("train.tta_shift") or 0))
    parts = (["mirror"] if mirror else []) + ([f"shift {shift}"] if shift else [])
    return " + ".join(parts) or "none"


def _probe_plan(row: dict[str, Any]) -> str:
    """What the budget's probe had planned before the measured epochs re-planned it, if it
    differed (the probe times a few dozen batches; the epochs time them all)."""
    probe, final = row.get("epochs_planned_by_probe"), row.get("epochs_planned")
    if probe is None or probe == final:
        return ""
    rate = row.get("probe_images_per_second")
    measured = f" at {_num(rate, '.0f')} images/s" if rate is not None else ""
    return f" as last refitted (the probe{measured} had planned {_num(probe, '.0f')})"


def _epochs_text(row: dict[str, Any]) -> str:
    """Epochs run and planned, and the best epoch; for an ensemble each member's."""
    text = (f"{_num(row['epochs_run'], '.0f')} epochs run of "
            f"{_num(row['epochs_planned'], '.0f')} planned")
    if not row.get("members"):
        return f"{text}{_probe_plan(row)}, best epoch {_num(row['best_epoch'], '.0f')}"
    members = "; ".join(
        f"member {k}: {_num(m['epochs_run'], '.0f')} epochs, best {_num(m['best_epoch'], '.0f')}"
        for k, m in enumerate(row["member_epochs"], start=1))
    return (f"an ensemble of {row['members']:.0f} networks trained in turn, {text} in all "
            f"({members}); scored on the mean of their logits")


def _vectors(machine: dict) -> str:
    """``, widest vectors: AVX2 (family 23 model 1)`` where /proc/cpuinfo told them, else ``""``:
    two CPUs of one model name may differ in AVX-512 and so in what an hour trains."""
    isa, generation = machine.get("cpu_vector_isa"), machine.get("cpu_generation")
    if isa is None:
        return ""
    return f", widest vectors: {isa}" + (f" ({generation})" if generation else "")


def markdown(payload: dict[str, Any]) -> str:
    """The results file for people: what ran where, then one table per model."""
    machine = payload["machine"]
    lines = [
        f"# {payload['recipe']} through the pipeline", "",
        f"- command: `{payload['command']}`",
        f"- pipeline: `{payload['pipeline_command']}`",
        f"- commit: `{payload['commit']}`; recipe `{payload['recipe']}` "
        f"(conf/recipe/{payload['recipe']}.yaml)",
        f"- machine: {machine['cpu']}, {machine['cpu_count']} cores, torch {machine['torch']} "
        f"({machine['torch_threads']} threads), CPU computes bf16: {machine['native_bf16']}"
        + _vectors(machine),
        "- whole pipeline (all stages): " + (
            f"{payload['pipeline_minutes']:.1f} min wall" if payload["pipeline_minutes"]
            is not None else "not recorded (results read back with --report-only)"),
        f"- target (documented, not asserted): {payload['target']}", "",
    ]
    for row in payload["runs"]:
        reg = row["registry"]
        lines += [
            f"## {row['architecture']}", "",
            f"- network: {network_text(row)}",
            f"- training: {_num(row['train_minutes'], '.1f')} min (MLflow run), "
            f"{_epochs_text(row)}, "
            f"{_num(row['train_images_per_second'], '.0f')} training images/s"
            + (f" ({row['precision_used']} on {row['kernels']} kernels)"
               if row.get("kernels") else "")
            + (f", {_num(row['epoch_seconds'], '.1f')} s per epoch with validation"
               if row.get("epoch_seconds") is not None else "")
            + ("; the budget's deadline came before the last planned epoch (the best "
               "validated weights were kept)"
               if (row["epochs_run"] or 0) < (row["epochs_planned"] or 0) else ""),
            f"- registry: {reg['uri'] or 'not registered'}"
            f"{' aliases ' + ', '.join(reg['aliases']) if reg['aliases'] else ''}"
            + (f"; refused by the gate against champion v{reg['refused_against']}: "
               f"{reg.get('refusal') or 'see `ferops registry promote --dry-run`'}"
               if reg.get("refused_against") else ""),
            f"- MLflow run: `{row['run_id']}`", "",
            "| test split | faces | TTA | accuracy | UAR | macro-F1 |",
            "|---|---|---|---|---|---|",
        ]
        for entry in row["splits"].values():
            for key, name in (("tta", views_label(row["settings"])), ("no_tta", "none")):
                scores = entry[key]
                if scores.get("accuracy") is None:
                    continue
                lines.append(f"| {entry['label']} | {_num(entry.get('n'), ',.0f')} | {name} | "
                             f"{pct(scores['accuracy'])} | {pct(scores['uar'])} | "
                             f"{pct(scores['macro_f1'])} |")
        test = row["splits"].get("test", {}).get("tta", {}).get("per_class_recall", {})
        if test:
            lines += ["", f"Per-class recall, official test, {views_label(row['settings'])}"
                      " TTA: " + ", ".join(
                f"{k} {pct(v)}" for k, v in test.items())]
        lines.append("")
    lines += ["## Anchors (published, not measured here)", "",
              "| model | accuracy | source |", "|---|---|---|"]
    lines += [f"| {a['name']} | {pct(a['accuracy'])} | {a['source']} |"
              for a in payload["anchors"]]
    return "\n".join(lines)


def _previous(path: Path) -> dict[str, Any]:
    """The results file a --report-only call rewrites ({} when there is none: the driver
    stopped after the pipeline ran, so its wall time was not recorded)."""
    import json

    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def _num(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=RECIPES, default="fer2013")
    parser.add_argument("--csv", type=Path, default=None,
                        help="fer2013.csv(.gz) (default $FER2013_CSV or ../shared/datasets)")
    parser.add_argument("--ferplus", type=Path, default=None,
                        help="fer2013new.csv for --recipe ferplus (default $FERPLUS_CSV or "
                        "../shared/datasets)")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="another param override, as dvc exp run -S (repeatable)")
    parser.add_argument("--name", default=None, type=results_name,
                        help="experiment and results name (default: the recipe)")
    parser.add_argument("--workspace", action="store_true",
                        help="run in the workspace (default: a --temp copy; the workspace "
                        "and its params.yaml stay as they are)")
    parser.add_argument("--project", type=Path, default=REPO_ROOT,
                        help="the ferops checkout to run in (default: this one)")
    parser.add_argument("--results", type=Path, default=None,
                        help="results folder (default: benchmarks/results in the project)")
    parser.add_argument("--report-only", action="store_true",
                        help="do not run the pipeline: rewrite the results files from what the "
                        "experiment --name tracked (keeps the measured pipeline minutes)")
    args = parser.parse_args(argv)
    args.name = args.name or args.recipe
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the recipe through the pipeline, read what it tracked, write the results files."""
    args = parse_args(argv)
    project = args.project.resolve()
    csv, labels = default_paths(args.recipe)
    csv, labels = args.csv or csv, args.ferplus or labels
    for path in [csv] + ([labels] if labels else []):
        if not path.is_file():
            raise DataError(f"{path}: not found (set --csv / --ferplus or $FER2013_CSV)")
    if not (project / "data").is_dir():
        raise DataError(f"{project / 'data'}: missing; `make data` renders the demo set that "
                        "data.dvc tracks (the pipeline's last stage labels one of its photos)")
    command = shlex.join(["python", "benchmarks/fer2013_accuracy.py",
                          *(sys.argv[1:] if argv is None else argv)])
    pipeline = exp_command(args, csv, labels)
    results = args.results or project / "benchmarks" / "results"
    commit = git_commit(project)  # what `dvc exp run` copies: taken before anything runs
    if args.report_only:
        previous = _previous(results / f"{args.name}.json")
        command = previous.get("command") or command.replace(" --report-only", "")
        minutes, commit = previous.get("pipeline_minutes"), previous.get("commit", commit)
    else:
        print(f"command: {command}\npipeline: {shlex.join(pipeline)}", flush=True)
        minutes = run_pipeline(pipeline, project, results / f"{args.name}.log")
    runs = tracked_runs(project, args.name)
    rows = []
    for run in runs:
        row = run_row(run, args.recipe)
        row["registry"] = registry_outcome(run.info.run_id)
        rows.append(row)
    shown = [os.path.relpath(a, project) if os.path.isabs(a) else a for a in pipeline]
    shown = [a.replace(str(csv.resolve()), os.path.relpath(csv.resolve(), project))
             .replace(str(labels.resolve()) if labels else "\0",
                      os.path.relpath(labels.resolve(), project) if labels else "")
             for a in shown]
    payload = {
        "command": command,
        "pipeline_command": shlex.join(shown),  # data paths relative to the project
        "commit": runs[0].data.tags.get("git_commit") or commit,
        "recipe": args.recipe,
        "overrides": args.set,
        "data": {"csv": csv.name, "ferplus": labels.name if labels else None},
        "machine": machine_facts(),
        "pipeline_minutes": minutes,
        "target": TARGETS[LABELS[args.recipe]],
        "runs": rows,
        "anchors": list(ANCHORS[LABELS[args.recipe]]),
    }
    json_path, md_path = write_results(args.name, payload, markdown(payload), results)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return 0


def cli() -> int:
    """:func:`main` with bad input (options, data, a failed pipeline) as one ``error:`` line."""
    try:
        return main()
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(cli())
