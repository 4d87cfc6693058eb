"""Scoring every trained run on the clean and occluded test splits: the evaluate stage's work.

One report per (architecture, test split) from the run's own saved model and the task's
arrays; the flat ``comparison.json`` (every number), ``comparison.md`` (a table sorted by
clean accuracy) and the accuracy-vs-occlusion plot. For DVC's views it also writes
``summary.json`` (the best UAR and accuracy per task: the only metrics file, so
``dvc metrics show`` and ``dvc exp show`` fit a screen), ``tasks/<task>.json`` (one
comparison file per task), ``predictions/<arch>.json`` (clean-test labels and predictions
for DVC's confusion template), ``occlusion.csv`` and ``learning_curves.csv`` (long tables,
one line per architecture in the plots).

When the manifest records sample attributes, the test splits are also scored by them
(pseudo-splits): the clean test split per lighting level and for the extreme levels together
(``test_light_<level>``: colour fails in extreme light and depth does not, which is what the
RGB-D methods claim), per head-yaw bin (``test_yaw_<lo>_<hi>`` degrees, claim 1's pose
curve), and the occluded test splits pooled per occluder kind (``test_occluder_<kind>``:
eyes band, lower face, one eye, mouth, random blocks; claim 14). An ensemble's
parts are scored alone too (``test_member_<name>``: svm_fusion's NN2 and NN3), and a model
that exposes features (C3D) has its clean-test features exported (``features/<arch>.npz``)
and their clustering by class measured (intra/inter distance ratio, silhouette).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.data.manifest import DEDUP_SPLIT
from components.errors import DataError
from components.jsonio import write_json
from components.models import load_trained
from components.training.data import (
    load_split,
    occlusion_levels,
    occlusion_percent,
    task_folder,
    task_name,
)
from components.training.metrics import classification_report
from components.training.plots import plot_occlusion_curves
from components.training.report import SCALARS, SUB_MODELS_FILE
from components.training.run import score, score_data, test_splits

log = logging.getLogger(__name__)

LIGHT_COLUMN = "light_level"
EXTREME_LIGHT: tuple[str, ...] = ("dark", "bright")
LIGHT_PREFIX = "test_light_"
YAW_PREFIX = "test_yaw_"
YAW_EDGES: tuple[int, ...] = (0, 15, 30, 45, 90)  # |yaw| bins in degrees (claim 1)
OCCLUDER_PREFIX = "test_occluder_"
ATTRIBUTE_COLUMNS: tuple[str, ...] = (LIGHT_COLUMN, "yaw", "occluder")
FEATURE_SCALARS: tuple[str, ...] = ("feature_distance_ratio", "feature_silhouette")
FEATURES_DIR = "features"  # <arch>.npz: clean-test features, labels and ids (C3D)
MEMBER_PREFIX = "test_member_"  # clean test split scored by one part of an ensemble
SUMMARY_FILE = "summary.json"  # the DVC metrics file: best UAR and accuracy per task
OCCLUSION_TABLE = "occlusion.csv"  # architecture, occlusion (%), accuracy
CURVES_TABLE = "learning_curves.csv"  # architecture, epoch, losses and validation scores
CURVE_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "val_loss", "train_accuracy",
                                  "val_accuracy", "val_uar")


def score_run(run_dir: Path, data_dir: Path, attributes: pd.DataFrame | None = None
              ) -> tuple[str, dict[str, dict[str, Any]]]:
    """The model's task (``image``, ``rgbd`` or ``video``) and its reports per test split
    (clean first, then by occlusion), plus the pseudo-splits by sample attribute (lighting,
    yaw bin, occluder kind) when ``attributes`` (indexed by sample id) is given.

    Raises:
        DataError: no model file, or the model's task folder is missing.
    """
    spec, classifier = load_trained(run_dir)
    task_dir = Path(data_dir) / task_folder(spec.task)
    if not task_dir.is_dir():
        raise DataError(f"{task_dir}: task folder of {spec.arch} not found (run preprocess)")
    # The clean test split is loaded once: scored here, and read again by members/features.
    test = load_split(task_dir, "test", spec.inputs, grey=spec.grey)
    reports = {split: (score_data(classifier, test, spec.classes) if split == "test"
                       else score(classifier, spec, task_dir, split))
               for split in test_splits(task_dir)}
    for name, member in classifier.members().items():
        # an ensemble's parts alone on the clean test split (svm_fusion: NN2 and NN3)
        reports[f"{MEMBER_PREFIX}{name}"] = score_data(member, test, spec.classes)
    features = classifier.feature_vectors(test.rows(slice(None)))
    if features is not None and "test" in reports:
        reports["test"]["features"] = features
        reports["test"].update(feature_clustering(features, np.asarray(test.y)))
    if attributes is not None:
        reports.update(attribute_reports(reports, task_dir, attributes, spec.classes))
    if "test" in reports:
        reports["test"]["classes"] = list(spec.classes)
    return task_name(task_dir, tuple(spec.inputs)), reports


def feature_clustering(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """How tightly test features cluster by class (claim 18): the mean distance between
    same-class pairs over the mean between different-class pairs (lower is tighter) and the
    silhouette score (higher is better); NaN where a class structure is missing."""
    from scipy.spatial.distance import pdist, squareform
    from sklearn.metrics import silhouette_score

    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if len(set(labels.tolist())) < 2 or len(labels) < 3:
        return {"feature_distance_ratio": float("nan"), "feature_silhouette": float("nan")}
    dist = squareform(pdist(features))
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    intra = dist[same & off_diagonal]
    inter = dist[~same]
    ratio = float(intra.mean() / inter.mean()) if inter.mean() > 0 else float("nan")
    return {"feature_distance_ratio": ratio,
            "feature_silhouette": float(silhouette_score(features, labels))}


def sample_attributes(manifest_path: Path | None) -> pd.DataFrame | None:
    """The manifest's per-sample attributes the bins read (lighting, yaw, occluder kind),
    indexed by id; None when the file is missing or records none of them."""
    if manifest_path is None or not Path(manifest_path).is_file():
        return None
    frame = pd.read_parquet(manifest_path)
    columns = [c for c in ATTRIBUTE_COLUMNS if c in frame and not frame[c].isna().all()]
    if not columns:
        return None
    return frame.drop_duplicates("id").set_index("id")[columns]


def attribute_reports(reports: dict[str, dict[str, Any]], task_dir: Path,
                      attributes: pd.DataFrame, classes: list[str]) -> dict[str, dict[str, Any]]:
    """Pseudo-split reports: the clean test split by lighting and by yaw bin, the occluded
    test splits pooled by occluder kind (each from the split's ``ids.npy``)."""
    out: dict[str, dict[str, Any]] = {}
    ids = _split_ids(task_dir, "test")
    if "test" in reports and ids is not None:
        labels = np.asarray(reports["test"]["labels"])
        predictions = np.asarray(reports["test"]["predictions"])
        if LIGHT_COLUMN in attributes:
            out.update(light_reports(reports["test"], ids, attributes[LIGHT_COLUMN], classes))
        if "yaw" in attributes:
            bins = yaw_bins(attributes["yaw"].reindex(ids))
            out.update(_binned(labels, predictions, bins, YAW_PREFIX, classes))
    if "occluder" in attributes:
        pooled = [(reports[s], _split_ids(task_dir, s)) for s in occlusion_levels(reports)]
        pooled = [(r, i) for r, i in pooled if i is not None]
        if pooled:
            labels = np.concatenate([np.asarray(r["labels"]) for r, _ in pooled])
            predictions = np.concatenate([np.asarray(r["predictions"]) for r, _ in pooled])
            kinds = attributes["occluder"].reindex(np.concatenate([i for _, i in pooled]))
            out.update(_binned(labels, predictions, kinds.to_numpy(dtype=object),
                               OCCLUDER_PREFIX, classes))
    return out


def yaw_bins(yaw: pd.Series) -> np.ndarray:
    """``"<lo>_<hi>"`` per sample from the absolute yaw in degrees (None where unknown)."""
    magnitude = pd.to_numeric(yaw, errors="coerce").abs().to_numpy(dtype=np.float64)
    names = np.full(len(magnitude), None, dtype=object)
    for low, high in zip(YAW_EDGES[:-1], YAW_EDGES[1:], strict=True):
        names[(magnitude >= low) & (magnitude < high)] = f"{low}_{high}"
    return names


def _binned(labels: np.ndarray, predictions: np.ndarray, bins: np.ndarray, prefix: str,
            classes: list[str]) -> dict[str, dict[str, Any]]:
    """One report per bin value present (samples whose bin is unknown are left out)."""
    known = np.array([b is not None and b == b for b in bins], dtype=bool)
    return {f"{prefix}{name}": classification_report(labels[mask], predictions[mask], classes)
            for name in sorted({str(b) for b in bins[known]})
            for mask in [known & (bins.astype(str) == name)]}


def _split_ids(task_dir: Path, split: str) -> np.ndarray | None:
    path = Path(task_dir) / split / "ids.npy"
    return np.load(path, allow_pickle=False).astype(str) if path.is_file() else None


def light_reports(test: dict[str, Any], ids: np.ndarray, light: pd.Series,
                  classes: list[str]) -> dict[str, dict[str, Any]]:
    """Clean-test reports per lighting level and for dark + bright together (``extreme``)."""
    levels = light.reindex(ids).to_numpy()
    labels, predictions = np.asarray(test["labels"]), np.asarray(test["predictions"])
    masks = {str(level): levels == level for level in sorted(set(levels[pd.notna(levels)]))}
    extreme = np.isin(levels, EXTREME_LIGHT)
    if extreme.any() and len([m for m in EXTREME_LIGHT if m in masks]) > 1:
        masks["extreme"] = extreme
    return {f"{LIGHT_PREFIX}{name}": classification_report(labels[mask], predictions[mask],
                                                           classes)
            for name, mask in masks.items() if mask.any()}


def evaluate_stage(
    params: dict[str, Any], train_dir: Path, data_dir: Path, out_dir: Path,
    manifest: Path | None = None,
) -> dict[str, float]:
    """Score all runs under ``train_dir`` and write the comparison files (``manifest``: the
    sample attributes, for the scores by lighting, yaw and occluder kind).

    Runs whose ``metrics.json`` says skipped, or that hold no model, are listed as skipped
    in the markdown and left out of the metrics.

    Returns:
        The flat comparison written to ``comparison.json``.
    """
    results: dict[str, dict[str, dict[str, Any]]] = {}
    tasks: dict[str, str] = {}
    skipped: dict[str, str] = {}
    owned = (params.get("train") or {}).get("architectures")
    attributes = sample_attributes(manifest)
    for run_dir in sorted(p for p in Path(train_dir).iterdir() if p.is_dir()):
        if isinstance(owned, list) and run_dir.name not in owned:
            continue  # left over from an earlier architecture list
        reason = _skip_reason(run_dir)
        if reason:
            skipped[run_dir.name] = reason
            continue
        log.info("scoring %s", run_dir.name)
        tasks[run_dir.name], results[run_dir.name] = score_run(run_dir, data_dir, attributes)
    out_dir = Path(out_dir)
    flat = {
        f"{arch}/{split}/{metric}": report[metric]
        for arch, splits in results.items()
        for split, report in splits.items()
        for metric in (*SCALARS, *FEATURE_SCALARS) if metric in report
    }
    write_json(out_dir / "comparison.json", flat)
    (out_dir / "comparison.md").write_text(comparison_table(results, skipped))
    curves = {
        arch: {occlusion_percent(split): splits[split]["accuracy"]
               for split in ["test", *occlusion_levels(splits)] if split in splits}
        for arch, splits in results.items()
    }
    plot_occlusion_curves(curves, out_dir / "accuracy_vs_occlusion.png")
    write_views(results, tasks, curves, Path(train_dir), out_dir)
    return flat


def headline(splits: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The few numbers per model that ``dvc metrics show`` lists: clean-test accuracy and
    UAR, accuracy under normal and extreme light (when the data records lighting) and at the
    heaviest occlusion level."""
    test = splits.get("test", {})
    numbers = {"accuracy": test.get("accuracy"), "uar": test.get("uar")}
    for level in ("normal", "extreme"):
        numbers[f"{level}_light"] = splits.get(f"{LIGHT_PREFIX}{level}", {}).get("accuracy")
    occluded = occlusion_levels(splits)
    if occluded:
        worst = occluded[-1]
        numbers[f"occluded_{occlusion_percent(worst)}"] = splits[worst].get("accuracy")
    return {k: round(float(v), 4) for k, v in numbers.items()
            if isinstance(v, float) and v == v}


def write_views(
    results: dict[str, dict[str, dict[str, Any]]], tasks: dict[str, str],
    curves: dict[str, dict[int, float]], train_dir: Path, out_dir: Path,
) -> dict[str, float]:
    """The files ``dvc metrics``, ``dvc exp show`` and ``dvc plots`` read; returns the summary.

    ``summary.json`` is the pipeline's only DVC metrics file: the best clean-test UAR and
    accuracy of each task, six short unique keys, so both ``dvc metrics show`` and
    ``dvc exp show`` fit a screen. ``tasks/<task>.json`` compares that task's models (their
    :func:`headline` numbers). ``predictions/<arch>.json`` feeds DVC's confusion template;
    ``occlusion.csv`` and ``learning_curves.csv`` are long tables drawn one line per model
    (``.dvc/plots/by_architecture.json``). Folders are rewritten whole, so an architecture
    dropped from the list leaves no stale file."""
    out_dir = Path(out_dir)
    for name in ("tasks", "predictions", FEATURES_DIR):
        shutil.rmtree(out_dir / name, ignore_errors=True)
        (out_dir / name).mkdir(parents=True)
    by_task: dict[str, dict[str, dict[str, float]]] = {}
    occlusion, learning = [], []
    for arch, splits in results.items():
        by_task.setdefault(tasks[arch], {})[arch] = headline(splits)
        if "test" in splits:
            write_json(out_dir / "predictions" / f"{arch}.json", prediction_rows(splits["test"]))
        if "features" in splits.get("test", {}):
            test = splits["test"]
            np.savez_compressed(out_dir / FEATURES_DIR / f"{arch}.npz",
                                features=np.asarray(test["features"], dtype=np.float32),
                                labels=np.asarray(test["labels"]),
                                predictions=np.asarray(test["predictions"]),
                                classes=np.asarray(test["classes"]))
        occlusion += [{"architecture": arch, "occlusion": pct, "accuracy": round(acc, 4)}
                      for pct, acc in sorted(curves[arch].items())]
        learning += learning_curve_frames(Path(train_dir) / arch, arch)
    for task, models in by_task.items():
        write_json(out_dir / "tasks" / f"{task}.json", models)
    columns = ["architecture", "occlusion", "accuracy"]
    pd.DataFrame(occlusion, columns=columns).to_csv(out_dir / OCCLUSION_TABLE, index=False)
    table = pd.concat(learning) if learning else pd.DataFrame(columns=["architecture", "epoch"])
    table.insert(0, "architecture", table.pop("architecture"))
    table.to_csv(out_dir / CURVES_TABLE, index=False)
    summary = task_summary(by_task)
    write_json(out_dir / SUMMARY_FILE, summary)
    return summary


def learning_curve_frames(run_dir: Path, arch: str) -> list[pd.DataFrame]:
    """The curve rows of one trained model: its ``history.csv`` under ``arch``, and for an
    estimator each validated network of ``sub_models.csv`` under ``"<arch>: <part>"`` (its
    own history is one row, so without them its line in the plot is a single point)."""
    frames = []
    history = run_dir / "history.csv"
    if history.is_file():
        frame = pd.read_csv(history)
        frames.append(frame[[c for c in CURVE_COLUMNS if c in frame]].round(4)
                      .assign(architecture=arch))
    networks = run_dir / SUB_MODELS_FILE
    if networks.is_file():
        table = pd.read_csv(networks)
        if "val_uar" in table:
            for part, rows in table.dropna(subset=["val_uar"]).groupby("part", sort=False):
                frames.append(rows[[c for c in CURVE_COLUMNS if c in rows]].round(4)
                              .assign(architecture=f"{arch}: {part}"))
    return frames


def task_summary(by_task: dict[str, dict[str, dict[str, float]]]) -> dict[str, float]:
    """``<task>_uar`` and ``<task>_acc``: the best clean-test UAR and accuracy among a
    task's models (each maximised on its own)."""
    summary = {}
    for task in sorted(by_task):
        for key, metric in (("uar", "uar"), ("acc", "accuracy")):
            values = [m[metric] for m in by_task[task].values() if metric in m]
            if values:
                summary[f"{task}_{key}"] = max(values)
    return summary


def prediction_rows(test: dict[str, Any]) -> list[dict[str, str]]:
    """``[{actual, predicted}]`` with class names: the rows of DVC's confusion template."""
    classes = test["classes"]
    return [{"actual": classes[int(a)], "predicted": classes[int(p)]}
            for a, p in zip(test["labels"], test["predictions"], strict=True)]


def _skip_reason(run_dir: Path) -> str | None:
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        try:
            metrics = json.loads(metrics_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{metrics_path}: not valid JSON ({exc})") from exc
        if metrics.get("skipped"):
            return str(metrics.get("reason", "skipped by the train stage"))
    if not ((run_dir / "model.pt").exists() or (run_dir / "model.pkl").exists()):
        return "no trained model in the run folder"
    return None


def comparison_table(
    results: dict[str, dict[str, dict[str, Any]]], skipped: dict[str, str]
) -> str:
    """Markdown: one row per architecture; clean scores, then accuracy per occlusion level."""
    levels = occlusion_levels({s for splits in results.values() for s in splits})
    dedup = any(DEDUP_SPLIT in splits for splits in results.values())
    header = ["architecture", "accuracy", "UAR", "macro-F1"]
    header += ["accuracy (de-duplicated test)"] if dedup else []
    header += [f"acc @ {occlusion_percent(s)}% occl." for s in levels]
    lines = ["# Model comparison (test split)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arch in sorted(results, key=lambda a: -_score(results[a].get("test"), "accuracy")):
        test = results[arch].get("test", {})
        cells = [arch] + [_fmt(test.get(m)) for m in SCALARS]
        cells += [_fmt(results[arch].get(DEDUP_SPLIT, {}).get("accuracy"))] if dedup else []
        cells += [_fmt(results[arch].get(s, {}).get("accuracy")) for s in levels]
        lines.append("| " + " | ".join(cells) + " |")
    lines += bin_tables(results)
    lines += member_table(results)
    lines += feature_table(results)
    if skipped:
        lines += ["", "Skipped:", ""] + [f"- `{a}`: {r}" for a, r in sorted(skipped.items())]
    return "\n".join(lines) + "\n"


BIN_TABLES: tuple[tuple[str, str], ...] = (
    (LIGHT_PREFIX, "Clean test accuracy by lighting"),
    (YAW_PREFIX, "Clean test accuracy by head yaw (|degrees|)"),
    (OCCLUDER_PREFIX, "Occluded test accuracy by occluder kind (all levels pooled)"),
)


def bin_tables(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Markdown lines: accuracy per bin of each attribute the data records."""
    return [line for prefix, title in BIN_TABLES for line in bin_table(results, prefix, title)]


def bin_table(results: dict[str, dict[str, dict[str, Any]]], prefix: str,
              title: str) -> list[str]:
    """Markdown lines: accuracy per pseudo-split of ``prefix`` (none when there is none)."""
    bins = sorted({s for splits in results.values() for s in splits if s.startswith(prefix)},
                  key=_bin_order)
    if not bins:
        return []
    names = [b.removeprefix(prefix).replace("_", "-") if prefix == YAW_PREFIX
             else b.removeprefix(prefix) for b in bins]
    lines = ["", f"## {title}", "",
             "| architecture | " + " | ".join(f"{n} (n={_count(results, b)})"
                                              for n, b in zip(names, bins, strict=True)) + " |",
             "|" + "---|" * (len(bins) + 1)]
    for arch in sorted(results, key=lambda a: -_score(results[a].get("test"), "accuracy")):
        lines.append(f"| {arch} | " + " | ".join(
            _fmt(results[arch].get(b, {}).get("accuracy")) for b in bins) + " |")
    return lines


def member_table(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Markdown lines: each ensemble beside its parts alone on the clean test split."""
    rows = []
    for arch in sorted(results):
        members = sorted(s for s in results[arch] if s.startswith(MEMBER_PREFIX))
        if members:
            rows.append(f"| {arch} (fused) | {_fmt(results[arch]['test'].get('accuracy'))} | "
                        f"{_fmt(results[arch]['test'].get('uar'))} |")
            rows += [f"| {arch}: {m.removeprefix(MEMBER_PREFIX)} alone | "
                     f"{_fmt(results[arch][m].get('accuracy'))} | "
                     f"{_fmt(results[arch][m].get('uar'))} |" for m in members]
    if not rows:
        return []
    return ["", "## Ensembles and their parts alone (clean test)", "",
            "| model | accuracy | UAR |", "|---|---|---|", *rows]


def feature_table(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Markdown lines: how the test features of models that expose them cluster by class."""
    rows = [f"| {arch} | {_fmt(results[arch]['test'].get('feature_distance_ratio'))} | "
            f"{_fmt(results[arch]['test'].get('feature_silhouette'))} |"
            for arch in sorted(results) if "feature_silhouette" in results[arch].get("test", {})]
    if not rows:
        return []
    return ["", "## Test features by class (the layer the feature loss acts on)", "",
            "| model | intra/inter distance ratio (lower: tighter) | silhouette |",
            "|---|---|---|", *rows]


def _bin_order(split: str) -> tuple[int, float, str]:
    """Lighting in its natural order, yaw bins by angle, anything else by name."""
    order = ["normal", "dark", "bright", "extreme"]
    name = split.removeprefix(LIGHT_PREFIX)
    if split.startswith(LIGHT_PREFIX) and name in order:
        return (order.index(name), 0.0, name)
    if split.startswith(YAW_PREFIX):
        return (0, float(split.removeprefix(YAW_PREFIX).split("_")[0]), split)
    return (len(order), 0.0, split)


def _count(results: dict[str, dict[str, dict[str, Any]]], split: str) -> int:
    """Samples of a pseudo-split (the first architecture that has it)."""
    for splits in results.values():
        if split in splits:
            return int(np.asarray(splits[split]["confusion"]).sum())
    return 0


def _score(report: dict[str, Any] | None, metric: str) -> float:
    value = (report or {}).get(metric)
    return float(value) if isinstance(value, float) and value == value else -1.0


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) and value == value else "n/a"
