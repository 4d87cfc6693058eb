"""Seed 000 variant B: a depth CNN and a colour CNN fused by a linear SVM.

NN2 (depth) and NN3 (colour) are trained independently; their second-FC softmax outputs
(C each) are concatenated (2C numbers) and a linear SVM, Platt-calibrated so that it
returns probabilities summing to 1, decides. The SVM learns from out-of-fold outputs:
outputs of a network on its own training data are over-confident and would teach the SVM
to trust both networks blindly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
from torch import nn

from components.errors import DataError
from components.models.classifier import (
    Classifier,
    Dataset,
    FitLoop,
    FitOutcome,
    MemberClassifier,
    TrainingNeeds,
)
from components.models.cv import out_of_fold_proba, seeded_model
from components.models.seed000 import color_cnn, depth_cnn
from components.models.simple_fit import TrainFn, predict_proba

if TYPE_CHECKING:
    from sklearn.calibration import CalibratedClassifierCV

C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)


class SVMFusion(Classifier):
    """Variant B behind the classifier interface: ``fit(train, val, loop)`` and
    ``predict_proba(x)`` on the stacked depth + colour batch (``fit_arrays`` and
    ``predict_proba_pair`` take the two modalities apart).

    Args:
        num_classes: categories (columns of ``predict_proba``).
        depth_channels, color_channels: input channels of NN2 and NN3.
        folds: k of the out-of-fold feature computation (and of the SVM calibration).
        C: SVM regularisation; None picks it from ``c_grid`` by cross-validated accuracy.
        seed: seeds the folds, the network initialisations and the SVM.
        depth_kwargs, color_kwargs: extra architecture kwargs of NN2 / NN3.
    """

    def __init__(
        self,
        num_classes: int,
        depth_channels: int = 1,
        color_channels: int = 3,
        folds: int = 3,
        C: float | None = None,
        c_grid: tuple[float, ...] = C_GRID,
        seed: int = 0,
        depth_kwargs: dict | None = None,
        color_kwargs: dict | None = None,
    ) -> None:
        self.num_classes = num_classes
        self.depth_channels, self.color_channels = depth_channels, color_channels
        self.folds, self.C, self.c_grid, self.seed = folds, C, tuple(c_grid), seed
        self.depth_kwargs = dict(depth_kwargs or {})
        self.color_kwargs = dict(color_kwargs or {})

    def build_depth(self) -> nn.Module:
        """A fresh NN2 (depth network)."""
        return depth_cnn(self.num_classes, self.depth_channels, **self.depth_kwargs)

    def build_color(self) -> nn.Module:
        """A fresh NN3 (colour network)."""
        return color_cnn(self.num_classes, self.color_channels, **self.color_kwargs)

    needs: ClassVar[TrainingNeeds] = TrainingNeeds(distributed=False, test_time_views=False)

    def fit(self, train: Dataset, val: Dataset, loop: FitLoop) -> FitOutcome:
        """Fit from stacked batches; every sub-network trains through ``loop``."""
        depth, color = self.split(train.rows(slice(None)))
        depth_val, color_val = self.split(val.rows(slice(None))) if len(val) else (None, None)
        self.fit_arrays(depth, color, train.y, loop.sub_model_fn(self.training_rows(len(train))),
                        depth_val, color_val, val.y if len(val) else None)
        return FitOutcome()

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cut a stacked batch into its depth and colour parts (depth channels first).

        Raises:
            DataError: the channel count is not depth + colour.
        """
        x = np.asarray(x, dtype=np.float32)
        expected = self.depth_channels + self.color_channels
        if x.ndim != 4 or x.shape[1] != expected:
            raise DataError(f"svm_fusion: expected (N, {expected}, H, W) with {self.depth_channels}"
                            f" depth + {self.color_channels} colour channels, got {x.shape}")
        return x[:, :self.depth_channels], x[:, self.depth_channels:]

    def fit_arrays(
        self,
        x_depth: np.ndarray,
        x_color: np.ndarray,
        y: np.ndarray,
        train_fn: TrainFn,
        x_depth_val: np.ndarray | None = None,
        x_color_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> SVMFusion:
        """Train NN2 and NN3, then the SVM on their out-of-fold softmax outputs.

        Returns self. Raises:
            DataError: the inputs disagree in length, or a class has fewer than 2 samples
                (the SVM calibration needs two per class).
        """
        y = np.asarray(y, dtype=np.int64)
        if not len(x_depth) == len(x_color) == len(y):
            raise DataError(
                f"svm_fusion: depth ({len(x_depth)}), colour ({len(x_color)}) and labels "
                f"({len(y)}) differ in length"
            )
        present, sizes = np.unique(y, return_counts=True)
        if sizes.min() < 2:
            raise DataError(
                f"svm_fusion: class {int(present[sizes.argmin()])} has {int(sizes.min())} "
                "training sample(s); the SVM needs at least 2 per class"
            )
        oof = np.hstack([
            out_of_fold_proba(self.build_depth, x_depth, y, train_fn, self.folds, self.seed,
                              part="nn2_depth"),
            out_of_fold_proba(self.build_color, x_color, y, train_fn, self.folds, self.seed + 100,
                              part="nn3_color"),
        ])
        self.depth_model_ = train_fn(
            seeded_model(self.build_depth, self.seed), x_depth, y, x_depth_val, y_val,
            part="nn2_depth",
        )
        self.color_model_ = train_fn(
            seeded_model(self.build_color, self.seed + 100), x_color, y, x_color_val, y_val,
            part="nn3_color",
        )
        cv = min(self.folds, int(sizes.min()))
        self.C_ = self.C if self.C is not None else self._choose_c(oof, y, cv)
        self.svm_ = self._svm(self.C_, cv).fit(oof, y)
        self.classes_ = self.svm_.classes_
        return self

    def _svm(self, c: float, cv: int) -> CalibratedClassifierCV:
        from sklearn.calibration import CalibratedClassifierCV  # see components.models.cv
        from sklearn.svm import LinearSVC

        return CalibratedClassifierCV(
            LinearSVC(C=c, random_state=self.seed, max_iter=5000), method="sigmoid", cv=cv
        )

    def _choose_c(self, features: np.ndarray, y: np.ndarray, cv: int) -> float:
        """The grid value with the best cross-validated SVM accuracy (ties: the first).

        Calibration maps each class score monotonically, so it rarely changes the arg-max;
        scoring the plain SVM keeps the search cheap and avoids nested calibration folds.
        """
        from sklearn.model_selection import StratifiedKFold, cross_val_score
        from sklearn.svm import LinearSVC

        splitter = StratifiedKFold(cv, shuffle=True, random_state=self.seed)
        scores = [
            cross_val_score(
                LinearSVC(C=c, random_state=self.seed, max_iter=5000), features, y, cv=splitter
            ).mean()
            for c in self.c_grid
        ]
        return float(self.c_grid[int(np.argmax(scores))])

    def features(self, x_depth: np.ndarray, x_color: np.ndarray) -> np.ndarray:
        """The SVM input: both networks' softmax outputs side by side, (N, 2C)."""
        return np.hstack([
            predict_proba(self.depth_model_, x_depth),
            predict_proba(self.color_model_, x_color),
        ])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Per-class probabilities (N, num_classes) of a stacked depth + colour batch."""
        return self.predict_proba_pair(*self.split(x))

    def members(self) -> dict[str, Classifier]:
        """NN2 (depth) and NN3 (colour) alone, each reading its part of the stacked input:
        what the SVM fusion must beat (claim 4)."""
        return {
            "nn2_depth": MemberClassifier(
                lambda x: predict_proba(self.depth_model_, self.split(x)[0])),
            "nn3_color": MemberClassifier(
                lambda x: predict_proba(self.color_model_, self.split(x)[1])),
        }

    def predict_proba_pair(self, x_depth: np.ndarray, x_color: np.ndarray) -> np.ndarray:
        """Per-class probabilities (N, num_classes) summing to 1; absent classes get 0."""
        proba = self.svm_.predict_proba(self.features(x_depth, x_color))
        full = np.zeros((len(proba), self.num_classes))
        full[:, self.classes_] = proba
        return full

    def training_rows(self, n_train: int) -> float:
        """Rows all sub-model fits train on together, for sharing a time budget: per
        modality (folds - 1) x N out of fold plus N for the final net."""
        return float(2 * self.folds * n_train)
