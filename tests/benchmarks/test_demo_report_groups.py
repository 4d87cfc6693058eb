"""The demo report names the expressions the hierarchical model merged, read from the model
the train stage saved (class names, not indices), and nothing for models without groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.demo_report import expression_groups, group_lines
from components.models.classifier import ModelSpec
from components.models.hierarchical import HierarchicalClassifier

CLASSES = ["anger", "fear", "happiness", "neutral"]


class ConfusesFearWithAnger(nn.Module):
    """Answers every input's label, except that it calls fear anger: the confusion the
    grouping should merge."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        super().__init__()
        self.label = {np.asarray(row, np.float32).tobytes(): int(v)
                      for row, v in zip(x, y, strict=True)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), len(CLASSES))
        for i, row in enumerate(x.numpy()):
            label = self.label.get(row.tobytes(), 0)
            logits[i, 0 if label == 1 else label] = 20.0
        return logits


def _labels_of(x: np.ndarray, y: np.ndarray):
    """A train_fn whose 'network' knows every sample's label (in and out of fold)."""
    def train_fn(model: nn.Module, *_args, **_kwargs) -> nn.Module:
        return ConfusesFearWithAnger(x, y)
    return train_fn


def test_the_merged_expressions_are_named_from_the_saved_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((48, 1, 8, 8), dtype=np.float32)
    y = np.arange(48) % len(CLASSES)
    model = HierarchicalClassifier(len(CLASSES), 1, folds=2, k=4, seed=0, width=0.25)
    model.fit_arrays(x, y, _labels_of(x, y))
    spec = ModelSpec("hierarchical", len(CLASSES), 1, ("color",), "image", CLASSES)
    model.save(tmp_path / "hierarchical", spec)
    (tmp_path / "baseline_cnn").mkdir()  # a folder without a model: skipped

    groups = expression_groups(tmp_path, ["baseline_cnn", "hierarchical", "c3d_ecstfl"])

    assert groups == {"hierarchical": [["anger", "fear"], ["happiness"], ["neutral"]]}
    lines = group_lines(groups)
    assert "- anger + fear" in lines and "- 2 expressions stand alone" in lines


def test_a_model_without_merges_says_so() -> None:
    lines = group_lines({"hierarchical": [["anger"], ["fear"]]})
    assert "- no expressions merged" in lines
