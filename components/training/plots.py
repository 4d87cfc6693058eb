"""PNG plots of a training run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_confusion(cm: list[list[int]], classes: list[str], path: Path, title: str) -> Path:
    """Row-normalised confusion heatmap with the raw counts written in each cell."""
    counts = np.asarray(cm, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = 1.0 + 0.6 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for t in range(len(classes)):
        for p in range(len(classes)):
            colour = "white" if norm[t, p] > 0.5 else "black"
            ax.text(p, t, int(counts[t, p]), ha="center", va="center", color=colour, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046, label="recall share")
    return _save(fig, path)


def plot_per_class(recall: dict[str, float | None], path: Path, title: str) -> Path:
    """Bar chart of per-class recall; classes without samples are shown as empty bars."""
    names = list(recall)
    values = [np.nan if recall[c] is None else recall[c] for c in names]
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(names), 3.5))
    ax.bar(range(len(names)), np.nan_to_num(values), color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("recall")
    ax.set_title(title)
    return _save(fig, path)


def plot_learning_curves(history: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Loss, accuracy and UAR per epoch for train and validation, one panel each."""
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, metric in zip(axes, ("loss", "accuracy", "uar"), strict=True):
        for prefix, style in (("train", "-o"), ("val", "-s")):
            key = f"{prefix}_{metric}"
            if any(key in h for h in history):
                ax.plot(epochs, [h.get(key, np.nan) for h in history], style, label=prefix)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    fig.suptitle(title)
    return _save(fig, path)


def plot_sub_model_curves(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """An estimator's networks, one line each: training loss, training accuracy and (for
    the networks that had validation data) validation UAR per epoch."""
    parts = list(dict.fromkeys(row["part"] for row in rows))  # in training order
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    panels = (("train_loss", "training loss"), ("train_accuracy", "training accuracy"),
              ("val_uar", "validation UAR"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for index, part in enumerate(parts):  # one colour per network in every panel
            points = [(row["epoch"], row[key]) for row in rows
                      if row["part"] == part and row.get(key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), "-o", markersize=3, label=part,
                        color=plt.get_cmap("tab10")(index % 10))
        ax.set_xlabel("epoch")
        ax.set_title(label)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title}: every network it trained")
    return _save(fig, path)


def plot_occlusion_curves(
    curves: dict[str, dict[int, float]], path: Path, metric: str = "accuracy"
) -> Path:
    """One line per architecture: ``metric`` against the occlusion percentage."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for arch, points in sorted(curves.items()):
        levels = sorted(points)
        ax.plot(levels, [points[level] for level in levels], "-o", label=arch)
    ax.set_xlabel("occluded area (%)")
    ax.set_ylabel(f"test {metric}")
    ax.set_ylim(0, 1)
    ax.set_title(f"{metric} vs occlusion")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
