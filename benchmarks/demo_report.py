"""The demo as the pipeline left it: per-architecture scores, lighting bins, champions and
the held-out photos, read from what the stages wrote (no model is trained or scored here).

    python benchmarks/demo_report.py            # after `make repro`
    python benchmarks/demo_report.py --run      # runs `make repro` first and times it

With ``--run`` it also times every stage: ``make repro``'s output is passed through and each
``Running stage`` line is stamped, so a stage's time runs from its start to the next one's
(the last one's to the end, with the champions' summary).

Writes ``benchmarks/results/demo.{json,md}`` with the commit, the recipe and the machine. The
issue targets are checked and reported as met or missed, never assumed.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.report import git_commit, machine_facts, publish  # noqa: E402
from components.errors import DataError  # noqa: E402
from components.evaluation import MEMBER_PREFIX  # noqa: E402

STILL_TARGET = 0.80  # normal-light clean test accuracy of every still architecture
CLIP_UAR_TARGET = 0.60
RGBD_TWINS: dict[str, str] = {"fusion_early": "baseline_cnn", "fusion_twostream": "baseline_cnn",
                              "svm_fusion": "baseline_cnn"}
ARTIFACTS = REPO_ROOT / "artifacts"
STAGE_LINE = re.compile(r"Running stage '([^']+)'")
BEFORE_DVC = "(before dvc repro: install check, data)"


def stage_count() -> int:
    """Stages `dvc repro` knows (foreach stages counted per item), from the lock file."""
    import yaml

    lock = yaml.safe_load((REPO_ROOT / "dvc.lock").read_text()) or {}
    return len(lock.get("stages") or {})


def timed_repro(command: tuple[str, ...] = ("make", "repro")) -> tuple[float, dict[str, float]]:
    """Run `make repro` (or ``command``), echoing its output, and return its wall seconds
    and the seconds of every stage it ran, in order (the first entry is the time before
    DVC's first stage).

    Raises:
        subprocess.CalledProcessError: the command failed.
    """
    started = time.perf_counter()
    marks: list[tuple[str, float]] = []
    with subprocess.Popen(list(command), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            sys.stdout.buffer.write(raw)
            sys.stdout.buffer.flush()
            found = STAGE_LINE.search(raw.decode(errors="replace"))
            if found:
                marks.append((found.group(1), time.perf_counter()))
    ended = time.perf_counter()
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, list(command))
    stages = {BEFORE_DVC: (marks[0][1] if marks else ended) - started}
    for (name, start), stop in zip(marks, [t for _, t in marks[1:]] + [ended], strict=True):
        stages[name] = stop - start
    return ended - started, stages


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: missing (run `make repro` first)")
    return json.loads(path.read_text())


def scores(flat: dict[str, float]) -> dict[str, dict[str, dict[str, float]]]:
    """``arch -> split -> metric`` from the flat comparison."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key, value in flat.items():
        arch, split, metric = key.split("/")
        out.setdefault(arch, {}).setdefault(split, {})[metric] = value
    return out


def registry_outcomes(report: str) -> dict[str, str]:
    """``registered model -> outcome line`` from the promote stage's report, with the
    champion the task has afterwards (a re-run that rebuilds the champion's exact model is
    refused, and the task keeps its champion)."""
    outcomes = {}
    for section in re.split(r"^(?=## )", report, flags=re.M):
        heading = re.match(r"## (\S+): (.+)$", section, flags=re.M)
        if heading is None:
            continue
        champion = re.search(r"· champion (\S+) ·", section)
        after = "" if champion is None else (
            "; no champion" if champion.group(1) == "none"
            else f"; champion {champion.group(1)}{_architecture(section, champion.group(1))}")
        outcomes[heading.group(1)] = heading.group(2) + after
    return outcomes


def _architecture(section: str, version: str) -> str:
    """`` (arch)`` of ``version`` (``v3``) where the report names it (``v3 (svm_fusion)``);
    empty for a champion kept from an earlier run, which this section does not describe."""
    named = re.search(rf"\b{re.escape(version)} \((\w+)\)", section)
    return f" ({named.group(1)})" if named else ""


def targets(by_arch: dict[str, dict[str, dict[str, float]]]) -> list[tuple[str, bool, str]]:
    """The issue's learning targets, each with whether it is met and the numbers."""
    checks = []
    for arch, splits in sorted(by_arch.items()):
        if arch == "c3d_ecstfl":
            uar = splits.get("test", {}).get("uar", float("nan"))
            checks.append((f"{arch}: clip test UAR >= {CLIP_UAR_TARGET}",
                           uar >= CLIP_UAR_TARGET, f"{uar:.3f}"))
            continue
        normal = splits.get("test_light_normal", {}).get("accuracy", float("nan"))
        checks.append((f"{arch}: normal-light test accuracy >= {STILL_TARGET}",
                       normal >= STILL_TARGET, f"{normal:.3f}"))
    for rgbd, twin in RGBD_TWINS.items():
        if rgbd in by_arch and twin in by_arch:
            mine = by_arch[rgbd].get("test_light_extreme", {}).get("accuracy", float("nan"))
            theirs = by_arch[twin].get("test_light_extreme", {}).get("accuracy", float("nan"))
            checks.append((f"{rgbd} above {twin} under extreme light", mine > theirs,
                           f"{mine:.3f} vs {theirs:.3f}"))
    if "hierarchical" in by_arch and "baseline_cnn" in by_arch:
        mine = by_arch["hierarchical"]["test"]["accuracy"]
        theirs = by_arch["baseline_cnn"]["test"]["accuracy"]
        checks.append(("hierarchical at least as good as baseline_cnn (clean test accuracy)",
                       mine >= theirs, f"{mine:.3f} vs {theirs:.3f}"))
    return checks


def part_lines(by_arch: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Markdown: ensembles beside their parts alone, and how clip features cluster."""
    lines = []
    for arch, splits in sorted(by_arch.items()):
        parts = {s.removeprefix(MEMBER_PREFIX): r for s, r in splits.items()
                 if s.startswith(MEMBER_PREFIX)}
        if parts:
            lines += ["", f"## {arch} and its parts alone (clean test accuracy)", "",
                      f"- fused: {splits['test']['accuracy']:.3f}"]
            lines += [f"- {name} alone: {r['accuracy']:.3f}" for name, r in sorted(parts.items())]
        test = splits.get("test", {})
        if "feature_silhouette" in test:
            lines += ["", f"## {arch}: clean-test features by class", "",
                      f"- intra/inter-class distance ratio {test['feature_distance_ratio']:.3f}"
                      f" (lower: tighter); silhouette {test['feature_silhouette']:.3f}"]
    return lines


def class_recall(train_dir: Path, archs: list[str]) -> dict[str, dict[str, float | None]]:
    """Each architecture's clean-test recall per class, ``arch -> class -> recall`` (None for
    a class with no test rows), as the train stage wrote it (``per_class.json``). Where a
    model's accuracy is lost (say, the classes a two-stage model lets stand alone, or the
    ones it merges) is what the one accuracy per model hides. Architectures without the
    file are left out."""
    out: dict[str, dict[str, float | None]] = {}
    for arch in archs:
        path = Path(train_dir) / arch / "per_class.json"
        if path.is_file():
            out[arch] = read_json(path)["splits"]["test"]["per_class_recall"]
    return out


def recall_lines(recall: dict[str, dict[str, float | None]]) -> list[str]:
    """Markdown: one table per set of classes (stills and clips may differ), a row per
    architecture, its rows in the order given."""
    lines: list[str] = []
    by_classes: dict[tuple[str, ...], list[str]] = {}
    for arch, per_class in recall.items():
        by_classes.setdefault(tuple(per_class), []).append(arch)
    for classes, archs in by_classes.items():
        if not lines:
            lines += ["", "## Clean-test recall per class (the train stage's per_class.json)"]
        lines += ["", "| architecture | " + " | ".join(classes) + " |",
                  "|---" * (len(classes) + 1) + "|"]
        lines += [f"| {arch} | " + " | ".join(_cell(recall[arch][c]) for c in classes) + " |"
                  for arch in archs]
    return lines


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def train_minutes(archs: list[str]) -> dict[str, float]:
    """Each architecture's training run, MLflow start to end (fit, scoring, model logging),
    in minutes: where `make repro`'s time goes. Empty where a run is not recorded."""
    from mlflow import MlflowClient

    from components.tracking.store import configure_tracking

    client = MlflowClient(configure_tracking())
    minutes = {}
    for arch in archs:
        record = ARTIFACTS / "tracking" / "train" / f"{arch}.json"
        run_id = json.loads(record.read_text()).get("run_id") if record.is_file() else None
        if run_id:
            info = client.get_run(run_id).info
            if info.end_time:
                minutes[arch] = (info.end_time - info.start_time) / 60000
    return minutes


def expression_groups(train_dir: Path, archs: list[str]) -> dict[str, list[list[str]]]:
    """The expression groups of every trained model that has them (seed 002's hierarchical
    model), by class name, read from the model the train stage saved: which expressions the
    demo's two-stage model merged is a result, not a setting (the threshold rule picks them)."""
    from components.models import expression_groups as model_groups

    found = {arch: model_groups(Path(train_dir) / arch) for arch in archs}
    return {arch: units for arch, units in found.items() if units is not None}


def group_lines(groups: dict[str, list[list[str]]]) -> list[str]:
    """Markdown: each model's merged groups (the expressions it tells apart in stage 2)."""
    lines = []
    for arch, units in sorted(groups.items()):
        merged = [unit for unit in units if len(unit) > 1]
        lines += ["", f"## {arch}: expression groups (read from the trained model)", ""]
        lines += [f"- {' + '.join(unit)}" for unit in merged] or ["- no expressions merged"]
        lines.append(f"- {len(units) - len(merged)} expressions stand alone")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run and time `make repro` first")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/demo_report.py",
                          *(sys.argv[1:] if argv is None else argv)])
    # Taken before the run: `make repro` rewrites dvc.lock, which would read as -dirty after.
    commit = git_commit(REPO_ROOT, ignore=("dvc.lock",))
    seconds, stages = None, {}
    if args.run:
        seconds, stages = timed_repro()
    by_arch = scores(read_json(ARTIFACTS / "evaluate" / "comparison.json"))
    examples = read_json(ARTIFACTS / "predict" / "examples.json")
    outcomes = registry_outcomes((ARTIFACTS / "registry" / "report.md").read_text())
    checks = targets(by_arch)
    minutes = train_minutes(sorted(by_arch))
    groups = expression_groups(ARTIFACTS / "train", sorted(by_arch))
    ranked = sorted(by_arch, key=lambda arch: -by_arch[arch]["test"]["accuracy"])
    recall = class_recall(ARTIFACTS / "train", ranked)
    kept = read_json(ARTIFACTS / "preprocess" / "metrics.json")
    test_sizes = {task: kept.get(f"{task}.test.kept") for task in ("image", "video")}
    import yaml

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    payload = {"command": command, "commit": commit, "machine": machine_facts(),
               "recipe": params.get("recipe"), "make_repro_seconds": seconds,
               "stage_seconds": stages,
               "test_sizes": test_sizes,
               "scores": by_arch, "class_recall": recall, "groups": groups,
               "train_minutes": minutes, "registry": outcomes,
               "examples": examples,
               "targets": [{"target": t, "met": m, "value": v} for t, m, v in checks]}
    machine = payload["machine"]
    wall = "not timed (report only)" if seconds is None else f"{seconds / 60:.1f} min"
    lines = ["# The demo (`make repro`) as the pipeline left it", "",
             f"- command: `{command}`", f"- commit: `{payload['commit']}`",
             f"- recipe: `{payload['recipe']}`; machine: {machine['cpu']}, "
             f"{machine['cpu_count']} cores, torch {machine['torch']}",
             f"- `make repro` wall time: {wall}",
             f"- clean test split: {test_sizes['image']} stills, {test_sizes['video']} clips "
             "(subject-disjoint)",
             "", "| architecture | test accuracy | test UAR | normal light | extreme light |",
             "|---|---|---|---|---|"]
    for arch, splits in sorted(by_arch.items(), key=lambda kv: -kv[1]["test"]["accuracy"]):
        cell = [splits.get(s, {}).get(m) for s, m in (("test", "accuracy"), ("test", "uar"),
                                                      ("test_light_normal", "accuracy"),
                                                      ("test_light_extreme", "accuracy"))]
        lines.append(f"| {arch} | " + " | ".join("n/a" if v is None else f"{v:.3f}"
                                                  for v in cell) + " |")
    lines += recall_lines(recall)
    lines += part_lines(by_arch)
    lines += group_lines(groups)
    lines += ["", "## Training wall time per architecture (MLflow run start to end)", ""]
    lines += [f"- {arch}: {m:.1f} min" for arch, m in sorted(minutes.items())]
    if stages:
        ran = len(stages) - 1
        lines += ["", "## `make repro` time per stage (start to the next stage's start)", "",
                  f"{ran} of the {stage_count()} stages ran; the others were up to date.", "",
                  "| stage | seconds |", "|---|---|"]
        lines += [f"| {name} | {sec:.0f} |" for name, sec in stages.items()]
    lines += ["", "## Targets (issue 13)", ""]
    lines += [f"- {'met' if m else '**missed**'}: {t} ({v})" for t, m, v in checks]
    lines += ["", "## Registry", ""] + [f"- `{k}`: {v}" for k, v in sorted(outcomes.items())]
    lines += example_lines(examples)
    publish("demo", payload, lines)
    return 0


def example_lines(examples: list[dict[str, Any]]) -> list[str]:
    """The predict stage's held-out photos: right answers with the recorded eye centres and,
    where the stage also sent them as plain photos (face detection), those too."""
    right = sum(e["predicted"] == e["true"] for e in examples)
    plain = all("plain_predicted" in e for e in examples) and bool(examples)
    title = f"## Held-out photos: {right} of {len(examples)} right"
    if plain:
        plain_right = sum(e["plain_predicted"] == e["true"] for e in examples)
        no_face = sum(e["plain_predicted"] is None for e in examples)
        title += (f" with the recorded eye centres; {plain_right} of {len(examples)} as plain "
                  f"photos ({no_face} without a found face)")
    lines = ["", title, ""]
    for e in examples:
        line = f"- {Path(e['photo']).name}: true {e['true']}, predicted {_said(e, '')}"
        lines.append(line + (f"; as a plain photo {_said(e, 'plain_')}" if plain else ""))
    return lines


def _said(example: dict[str, Any], prefix: str) -> str:
    predicted, probability = example[f"{prefix}predicted"], example[f"{prefix}probability"]
    return "no face" if predicted is None else f"{predicted} ({probability:.2f})"


if __name__ == "__main__":
    raise SystemExit(main())
