"""What the demo's training time buys: its architectures retrained under variants of the demo
recipe (smaller faces, fewer epochs), through the pipeline's own stages, timed and scored.

    python benchmarks/demo_variants.py [--spec benchmarks/demo_variants.yaml]

`make repro` spends most of its time training (benchmarks/results/demo.md times every stage);
this measures, on the machine at hand, how much of that time each cheaper variant saves and
what it costs in accuracy, against the recipe's own run measured in the same invocation.
Needs the demo's data stages (`make repro` first). Every data variant is `pipelines.preprocess`
over the demo's augment output with the variant's params; every run is `pipelines.train`
(untuned: the recipe's settings; untracked) then `pipelines.evaluate` on its own folder, each a
subprocess as DVC runs it, so a run's seconds are the stage's, start-up included. One seed:
a point of accuracy is within the test split's noise (about 2 points at these sizes).

Writes ``benchmarks/results/<spec name>.{json,md}`` with the commit, recipe and machine;
scratch folders go under ``artifacts/benchmarks/<spec name>/``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.demo_report import CLIP_UAR_TARGET, STILL_TARGET  # noqa: E402
from benchmarks.report import git_commit, machine_facts, publish  # noqa: E402
from components.errors import ConfigError, DataError, one_line  # noqa: E402

DEFAULT_SPEC = REPO_ROOT / "benchmarks" / "demo_variants.yaml"
DEMO_MANIFEST = REPO_ROOT / "artifacts" / "augment" / "manifest.parquet"
CLIP_ARCHS = ("c3d_ecstfl", "r2plus1d_ecstfl")
RUN_KEYS = {"arch", "data", "overrides", "versus"}


@dataclass(frozen=True)
class VariantRun:
    """One architecture on one data variant with its own train overrides."""

    name: str
    arch: str
    data: str
    overrides: dict[str, Any] = field(default_factory=dict)
    versus: str | None = None


@dataclass(frozen=True)
class VariantSpec:
    """The benchmark's plan: a recipe, a seed, data variants and the runs on them."""

    name: str
    recipe: str
    seed: int
    data: dict[str, dict[str, Any]]
    runs: dict[str, VariantRun]


def load_spec(path: Path, architectures: list[str]) -> VariantSpec:
    """Read and check a variants file (see benchmarks/demo_variants.yaml).

    Raises:
        ConfigError: unknown keys, a data variant setting anything but ``preprocess.*``,
            a run naming an unknown data variant, architecture or ``versus`` run.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such variants file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({one_line(str(exc))})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with data, recipe, runs, seed")
    if not isinstance(raw.get("seed", 0), int):
        raise ConfigError(f"{path}: seed: expected an integer, got {raw['seed']!r}")
    unknown = sorted(set(raw) - {"recipe", "seed", "data", "runs"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; known: data, recipe, runs, seed")
    data = {str(k): dict(v or {}) for k, v in (raw.get("data") or {}).items()}
    for name, overrides in data.items():
        foreign = sorted(k for k in overrides if not str(k).startswith("preprocess."))
        if foreign:
            raise ConfigError(f"{path}: data.{name}: {foreign}: a data variant sets only "
                              "preprocess.* (ingest and augment are the demo's own)")
    runs = {str(name): _run(path, str(name), entry or {}, data, architectures)
            for name, entry in (raw.get("runs") or {}).items()}
    if not runs:
        raise ConfigError(f"{path}: no runs")
    for run in runs.values():
        if run.versus is not None and run.versus not in runs:
            raise ConfigError(f"{path}: runs.{run.name}.versus: unknown run {run.versus!r}")
    return VariantSpec(path.stem, str(raw.get("recipe", "demo")), int(raw.get("seed", 0)),
                       data, runs)


def _run(path: Path, name: str, entry: dict[str, Any], data: dict[str, dict[str, Any]],
         architectures: list[str]) -> VariantRun:
    where = f"{path}: runs.{name}"
    unknown = sorted(set(entry) - RUN_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(RUN_KEYS)}")
    if entry.get("arch") not in architectures:
        raise ConfigError(f"{where}: arch {entry.get('arch')!r}; choose from {architectures}")
    if entry.get("data") not in data:
        raise ConfigError(f"{where}: data {entry.get('data')!r}; declared: {sorted(data)}")
    return VariantRun(name, str(entry["arch"]), str(entry["data"]),
                      dict(entry.get("overrides") or {}), entry.get("versus"))


def run_overrides(spec: VariantSpec, run: VariantRun) -> dict[str, Any]:
    """Everything a run sets over the recipe: its data variant's preprocess keys, the seed,
    the one architecture, no tracking or progress bars, then its own overrides."""
    return {**spec.data[run.data], "train.seed": spec.seed,
            "train.architectures": [run.arch], "train.track": False,
            "train.progress": False, **run.overrides}


def compose(spec: VariantSpec, overrides: dict[str, Any]) -> str:
    """The params text of the recipe plus ``overrides`` (Hydra, as `dvc exp run -S`)."""
    from components.claims.spec import hydra_overrides
    from components.recipes import compose_text

    return compose_text(REPO_ROOT, spec.recipe, hydra_overrides(overrides))


def run_stage(stage: str, args: list[object]) -> tuple[float, float]:
    """Run ``python -m pipelines.<stage>`` (as dvc.yaml does) and return its wall and CPU
    seconds (user + system of the child).

    Raises:
        DataError: the stage failed.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", f"pipelines.{stage}", *map(str, args)],
                          cwd=REPO_ROOT, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise DataError(f"stage {stage} failed (exit {done.returncode}): "
                        f"{shlex.join(map(str, args))}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def prepare_data(spec: VariantSpec, name: str, work: Path) -> dict[str, Any]:
    """Preprocess the demo's augmented data with data variant ``name``'s params."""
    folder = work / "data" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    params = folder / "params.yaml"
    params.write_text(compose(spec, spec.data[name]), encoding="utf-8")
    print(f"== data {name}: preprocess", flush=True)
    wall, cpu = run_stage("preprocess", ["--params", params, "--manifest", DEMO_MANIFEST,
                                         "--out", folder / "preprocess"])
    return {"overrides": spec.data[name], "preprocess_seconds": round(wall, 1),
            "preprocess_cpu_seconds": round(cpu, 1)}


def train_and_score(spec: VariantSpec, run: VariantRun, work: Path) -> dict[str, Any]:
    """Train ``run`` untuned and score it with the evaluate stage; its seconds and scores."""
    folder = work / "runs" / run.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    params = folder / "params.yaml"
    params.write_text(compose(spec, run_overrides(spec, run)), encoding="utf-8")
    data = work / "data" / run.data / "preprocess"
    print(f"== run {run.name}: train {run.arch} on {run.data}", flush=True)
    wall, cpu = run_stage("train", ["--params", params, "--arch", run.arch, "--data", data,
                                    "--out", folder / "train" / run.arch,
                                    "--tune-dir", folder / "untuned"])
    run_stage("evaluate", ["--params", params, "--train", folder / "train", "--data", data,
                           "--out", folder / "evaluate", "--manifest", DEMO_MANIFEST])
    import yaml

    from components.claims.record import planned_epochs

    metrics = json.loads((folder / "train" / run.arch / "metrics.json").read_text())
    flat = json.loads((folder / "evaluate" / "comparison.json").read_text())
    scores = {f"{split}_{metric}": flat[key] for key in flat
              for arch, split, metric in [key.split("/")]
              if arch == run.arch and split in ("test", "test_light_normal", "test_light_extreme")
              and metric in ("accuracy", "uar")}
    return {"arch": run.arch, "data": run.data, "overrides": run.overrides,
            "versus": run.versus, "train_seconds": round(wall, 1),
            "train_cpu_seconds": round(cpu, 1),
            "epochs_planned": planned_epochs(yaml.safe_load(params.read_text()), run.arch),
            # an estimator (svm_fusion, hierarchical) reports its one fit, not its nets' epochs
            "epochs_run": metrics.get("epochs_run") if "best_epoch" in metrics else None,
            "epochs_by_network": network_epochs(folder / "train" / run.arch / "sub_models.csv"),
            "scores": scores, **target(run.arch, scores)}


def network_epochs(sub_models: Path) -> dict[str, int]:
    """The epochs an estimator's networks ran, by network (folds of one network merged, the
    parenthesised detail of a name dropped: ``second (anger + fear)`` is ``second``), from
    the train stage's ``sub_models.csv``; empty for a plain network."""
    import csv
    import re

    if not sub_models.is_file():
        return {}
    epochs: dict[str, int] = {}
    with sub_models.open(newline="") as handle:
        for row in csv.DictReader(handle):
            name = re.sub(r"( fold \d+| \(.*\))$", "", row["part"])
            epochs[name] = max(epochs.get(name, 0), int(row["epoch"]))
    return epochs


def target(arch: str, scores: dict[str, float]) -> dict[str, Any]:
    """Issue 13's learning target for ``arch`` and whether this run meets it."""
    if arch in CLIP_ARCHS:
        name, value, bar = "test_uar", scores.get("test_uar", float("nan")), CLIP_UAR_TARGET
    else:
        name, bar = "test_light_normal_accuracy", STILL_TARGET
        value = scores.get(name, float("nan"))
    return {"target": f"{name} >= {bar}", "target_value": value, "target_met": value >= bar}


def against_versus(results: dict[str, dict[str, Any]]) -> None:
    """Add each run's time ratio and target-metric difference to its ``versus`` run."""
    for result in results.values():
        versus = results.get(result["versus"] or "")
        if versus is None:
            continue
        result["time_ratio"] = round(result["train_seconds"] / versus["train_seconds"], 3)
        result["target_difference"] = result["target_value"] - versus["target_value"]


def markdown(command: str, payload: dict[str, Any]) -> list[str]:
    """The results for people: one row per run, its reference beside it."""
    machine = payload["machine"]
    rows = []
    for name, r in payload["runs"].items():
        s = r["scores"]
        versus = "" if not r["versus"] else (
            f"{r['time_ratio']:.2f}x of {r['versus']}, {100 * r['target_difference']:+.1f} pts")
        rows.append(f"| {name} | {r['data']} | {_overrides(r['overrides'])} | "
                    f"{r['train_seconds']:.0f} | {_epochs(r)} | "
                    f"{s.get('test_accuracy', float('nan')):.3f} | "
                    f"{s.get('test_light_normal_accuracy', float('nan')):.3f} | "
                    f"{s.get('test_light_extreme_accuracy', float('nan')):.3f} | "
                    f"{s.get('test_uar', float('nan')):.3f} | "
                    f"{'met' if r['target_met'] else 'missed'} | {versus} |")
    data = [f"- `{name}`: {_overrides(d['overrides']) or 'the recipe as it is'} "
            f"(preprocess {d['preprocess_seconds']:.0f} s)" for name, d in payload["data"].items()]
    return [
        "# The demo recipe's training under variants: time against accuracy", "",
        f"- command: `{command}`", f"- commit: `{payload['commit']}`",
        f"- recipe: `{payload['recipe']}`, seed {payload['seed']} unless a run sets "
        "`train.seed`, untuned (the recipe's settings); one run each",
        f"- machine: {machine['cpu']}, {machine['cpu_count']} cores, torch {machine['torch']} "
        f"({machine['torch_threads']} threads)",
        "- seconds: the train stage's process, start-up and test scoring included; targets "
        f"(issue 13): still nets normal-light accuracy >= {STILL_TARGET}, clip nets UAR >= "
        f"{CLIP_UAR_TARGET}",
        "- against: the run's train seconds as a multiple of its reference run's, and the "
        "difference of their target metrics (normal-light accuracy, or UAR for clip nets) in "
        "points", "", "Data variants (over the demo's augment output):", *data, "",
        "| run | data | overrides | train s | epochs run/planned | test acc | normal light | "
        "extreme light | test UAR | target | against |",
        "|---|---|---|---|---|---|---|---|---|---|---|", *rows, "",
        "Ratios and differences are against runs measured in the same invocation; with one "
        "seed, differences of a point or two are within the test split's noise.",
    ]


def _epochs(result: dict[str, Any]) -> str:
    """``run/planned`` for a network; for an estimator the epochs its networks ran (one
    count when they all ran the same), else what was planned per network."""
    planned = result.get("epochs_planned")
    if result.get("epochs_run") is not None:
        return f"{result['epochs_run']}/{planned}"
    ran = result.get("epochs_by_network") or {}
    if len(set(ran.values())) == 1:
        return f"{next(iter(ran.values()))} per network"
    if ran:
        return ", ".join(f"{name} {count}" for name, count in ran.items())
    return f"{planned} per network"


def _overrides(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="variants file")
    args = parser.parse_args(argv)
    from components.models import available_models

    spec = load_spec(args.spec, available_models())
    if not DEMO_MANIFEST.is_file():
        raise DataError(f"{DEMO_MANIFEST}: missing (run `make repro` first)")
    command = shlex.join(["python", "benchmarks/demo_variants.py",
                          *(sys.argv[1:] if argv is None else argv)])
    work = REPO_ROOT / "artifacts" / "benchmarks" / spec.name
    commit = git_commit(REPO_ROOT)
    data = {name: prepare_data(spec, name, work)
            for name in dict.fromkeys(run.data for run in spec.runs.values())}
    results = {name: train_and_score(spec, run, work) for name, run in spec.runs.items()}
    against_versus(results)
    payload = {"command": command, "commit": commit, "machine": machine_facts(),
               "recipe": spec.recipe, "seed": spec.seed, "data": data, "runs": results}
    publish(spec.name, payload, markdown(command, payload))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
