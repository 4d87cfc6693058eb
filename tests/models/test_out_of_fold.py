"""Out of fold means out of fold: no sample's SVM feature (seed 000 B) or confusion entry
(seed 002) comes from a network that saw that sample in training.

The networks are replaced by a memoriser through the estimators' own ``train_fn`` seam: it
answers its training samples' labels with certainty and is uniform on anything else, so an
in-sample output would be visible as a confident, correct prediction.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from components.models.hierarchical import HierarchicalClassifier
from components.models.svm_fusion import SVMFusion

CLASSES = 4


class Memoriser(nn.Module):
    """Certain of the label of every input it was trained on, uniform elsewhere."""

    def __init__(self, x: np.ndarray, y: np.ndarray, num_classes: int) -> None:
        super().__init__()
        self.seen = {self.key(row): int(label) for row, label in zip(x, y, strict=True)}
        self.num_classes = num_classes

    @staticmethod
    def key(row: np.ndarray) -> bytes:
        return np.asarray(row, dtype=np.float32).tobytes()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), self.num_classes)
        for i, row in enumerate(x.numpy()):
            label = self.seen.get(self.key(row))
            if label is not None:
                logits[i, label] = 20.0
        return logits


def memorising_train_fn(model: nn.Module, x, y, x_val=None, y_val=None, *, part: str = ""
                        ) -> nn.Module:
    return Memoriser(x, y, CLASSES)


def _data(n: int = 48, channels: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, channels, 8, 8), dtype=np.float32)  # every sample distinct
    return x, np.arange(n) % CLASSES


def test_out_of_fold_memoriser_sees_no_sample_it_predicts() -> None:
    """The memoriser is honest: in sample it is certain, so the checks below can fail."""
    x, y = _data()
    model = memorising_train_fn(None, x, y)
    assert torch.equal(model(torch.from_numpy(x)).argmax(1), torch.from_numpy(y))


def test_hierarchical_confusion_comes_from_models_that_did_not_see_the_sample() -> None:
    x, y = _data()
    estimator = HierarchicalClassifier(CLASSES, 1, folds=3, k=2, seed=0, width=0.25)
    estimator.fit_arrays(x, y, memorising_train_fn)
    confusion = estimator.confusion_
    # Out of fold every prediction is the uniform argmax (class 0); in sample the
    # memoriser would put every count on the diagonal.
    assert confusion.sum() == len(y)
    assert confusion[1:, 1:].trace() == 0
    assert confusion[:, 0].sum() == len(y)


class RecordingSVM(SVMFusion):
    """Keeps the features the SVM is fitted on (the out-of-fold softmax outputs)."""

    def _choose_c(self, features: np.ndarray, y: np.ndarray, cv: int) -> float:
        self.seen_features = features.copy()
        return super()._choose_c(features, y, cv)


def test_svm_features_come_from_models_that_did_not_see_the_sample() -> None:
    x_depth, y = _data(channels=1, seed=1)
    x_color, _ = _data(channels=3, seed=2)
    estimator = RecordingSVM(CLASSES, folds=3, seed=0)
    estimator.fit_arrays(x_depth, x_color, y, memorising_train_fn)
    features = estimator.seen_features
    assert features.shape == (len(y), 2 * CLASSES)
    # Uniform softmax from both networks for every training sample: none was seen.
    np.testing.assert_allclose(features, 1.0 / CLASSES, atol=1e-9)
