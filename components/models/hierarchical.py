"""Seed 002 estimator: a planar model picks the groups, a first model routes to a group and
one second model per multi-member group picks the category (methods.md 3.5-3.6).

``fit_arrays`` trains the planar model out-of-fold to get an honest confusion matrix, groups the
categories with :func:`components.models.hierarchy.group_categories`, then trains the
group model and the second models with the injected ``train_fn``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import numpy as np
from torch import nn

from components.errors import ConfigError, DataError
from components.models.classifier import Classifier, Dataset, FitLoop, FitOutcome, TrainingNeeds
from components.models.cv import out_of_fold_proba, seeded_model
from components.models.hierarchy import Grouping, group_categories
from components.models.simple_fit import TrainFn, check_fit_settings, predict_proba

ROUTINGS = ("hard", "soft")
FIRST_INITS = ("scratch", "planar")
FIRST_LABELS = ("groups", "classes")
SECOND_INITS = ("scratch", "first", "planar")
SECOND_ROWS = ("group", "full")


class HierarchicalClassifier(Classifier):
    """Two-stage classifier over groups of mutually confused categories.

    Args:
        num_classes: categories (columns of ``predict_proba``).
        in_channels: input channels of every CNN.
        base: registry name of the CNN used for the planar, first and second models.
        k: the count rule of the grouping ("predetermined value", 4 in the patent).
        threshold: if set, the similarity threshold rule replaces the count rule.
        routing: "hard" (argmax group, then that group's distribution) or "soft"
            (P(c) = P(u) * P(c | u)).
        first_labels: "groups" (the patent's: the first model classifies the units) or
            "classes" (it classifies the categories, and a unit's probability is the sum of
            its members': the first stage then keeps the planar task's training signal,
            which the relabelling into units throws away).
        first_init: "scratch" (the patent's default: fresh weights) or "planar" (the first
            model starts from the last out-of-fold planar network, every layer but its
            classifier, so the planar training that only served the grouping also serves
            the features).
        second_init: "scratch" (fresh weights), "first" (from the trained first model;
            from the planar network when every category fell into one group, so there is
            no first model) or "planar" (from the last out-of-fold planar network), each
            copying every layer but the classifier; a second model then trains on its
            group's images alone. A
            group's images are a fraction of the set, so from scratch a second model learns
            its features from far fewer faces than the planar model it should beat; the
            first model is trained to give a group's members one answer, so its features
            tend to blur the very difference the second model has to find, which the
            planar network was trained to see.
        first_train: training settings of the first model alone (keys of
            ``components.models.simple_fit.FIT_SETTINGS``, e.g. ``{epochs_scale: 2, shift:
            1}``): the first model decides every category that stands alone, as the planar
            net does for all of them, so it may need the planar net's full training where
            the other networks (the out-of-fold planar nets for the grouping, the second
            models that start from a trained network) need less. Empty: the run's settings.
        folds: k of the out-of-fold planar predictions.
        seed: seeds folds and network initialisations.
        class_names: labels for reports (default "0", "1", ...).
        **base_kwargs: architecture kwargs of ``base``.

    Attributes after fit: ``confusion_`` (C x C out-of-fold counts, rows true),
    ``grouping_``, ``groups_`` (label tuples), ``merge_steps_``, ``group_model_``,
    ``second_models_`` (unit index -> model).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        base: str = "baseline_cnn",
        k: int = 4,
        threshold: float | None = None,
        routing: str = "hard",
        first_labels: str = "groups",
        first_init: str = "scratch",
        second_init: str = "scratch",
        second_rows: str = "group",
        first_train: dict[str, Any] | None = None,
        folds: int = 3,
        seed: int = 0,
        class_names: list[str] | None = None,
        **base_kwargs: Any,
    ) -> None:
        if routing not in ROUTINGS:
            raise ConfigError(f"hierarchical.routing: {routing!r} is not one of {ROUTINGS}")
        if first_labels not in FIRST_LABELS:
            raise ConfigError(
                f"hierarchical.first_labels: {first_labels!r} is not one of {FIRST_LABELS}"
            )
        if first_init not in FIRST_INITS:
            raise ConfigError(
                f"hierarchical.first_init: {first_init!r} is not one of {FIRST_INITS}"
            )
        if second_init not in SECOND_INITS:
            raise ConfigError(
                f"hierarchical.second_init: {second_init!r} is not one of {SECOND_INITS}"
            )
        if second_rows not in SECOND_ROWS:
            raise ConfigError(
                f"hierarchical.second_rows: {second_rows!r} is not one of {SECOND_ROWS}"
            )
        from components.models.registry import plain_networks  # it builds this class

        if base not in plain_networks():
            raise ConfigError(
                f"hierarchical.base: {base!r} is not a plain CNN of the registry; use one of "
                f"{', '.join(plain_networks())}"
            )
        if class_names is not None and len(class_names) != num_classes:
            raise ConfigError(
                f"hierarchical.class_names: {len(class_names)} names for {num_classes} classes"
            )
        self.num_classes, self.in_channels = num_classes, in_channels
        self.base, self.k, self.threshold, self.routing = base, k, threshold, routing
        self.first_labels, self.first_init, self.second_init = first_labels, first_init, second_init
        self.second_rows = second_rows
        self.first_train = check_fit_settings(first_train, "hierarchical.first_train")
        self.folds, self.seed = folds, seed
        self.class_names = list(class_names or [str(i) for i in range(num_classes)])
        self.base_kwargs = base_kwargs

    def _build(self, n_out: int) -> nn.Module:
        from components.models.registry import create_model  # the registry builds this class

        return create_model(self.base, n_out, self.in_channels, **self.base_kwargs)

    needs: ClassVar[TrainingNeeds] = TrainingNeeds(distributed=False, test_time_views=False)

    def fit(self, train: Dataset, val: Dataset, loop: FitLoop) -> FitOutcome:
        """Fit from the stacked batches; every network trains through ``loop``."""
        x_val = val.rows(slice(None)) if len(val) else None
        self.fit_arrays(train.rows(slice(None)), train.y,
                        loop.sub_model_fn(self.training_rows(len(train))),
                        x_val, val.y if len(val) else None)
        return FitOutcome()

    def fit_arrays(
        self,
        x: np.ndarray,
        y: np.ndarray,
        train_fn: TrainFn,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> HierarchicalClassifier:
        """Group the categories from out-of-fold planar confusion, then train both stages.

        Only classes present in ``y`` are grouped; absent ones get probability 0.
        Returns self. Raises:
            DataError: fewer than 2 classes in ``y`` or lengths differ.
        """
        y = np.asarray(y, dtype=np.int64)
        if len(x) != len(y):
            raise DataError(f"hierarchical: {len(x)} inputs but {len(y)} labels")
        present = np.unique(y)
        if len(present) < 2:
            raise DataError(
                f"hierarchical: need >= 2 classes in the training labels, got {len(present)}"
            )
        planar = partial(self._build, self.num_classes)
        fold_models: list[nn.Module] = []
        oof = out_of_fold_proba(planar, x, y, train_fn, self.folds, self.seed, keep=fold_models,
                                part="planar")
        self._planar = fold_models[-1]  # a start for later networks, not kept after fit
        self.confusion_ = confusion_counts(y, oof.argmax(axis=1), self.num_classes)
        sub = self.confusion_[np.ix_(present, present)]
        names = [self.class_names[c] for c in present]
        local = group_categories(sub, names, k=self.k, threshold=self.threshold)
        self.grouping_ = Grouping(
            units=local.units,
            unit_indices=[tuple(int(present[i]) for i in u) for u in local.unit_indices],
            steps=local.steps,
        )
        self.groups_ = self.grouping_.units
        self.merge_steps_ = self.grouping_.steps
        try:
            self._fit_stages(x, y, train_fn, x_val, y_val)
        finally:
            del self._planar
        return self

    def _fit_stages(
        self,
        x: np.ndarray,
        y: np.ndarray,
        train_fn: TrainFn,
        x_val: np.ndarray | None,
        y_val: np.ndarray | None,
    ) -> None:
        units = self.grouping_.unit_indices
        unit_of = self.grouping_.unit_of()
        self.group_model_: nn.Module | None = None
        if len(units) > 1:
            by_class = self.first_labels == "classes"
            target = {int(c): int(c) for c in np.unique(y)} if by_class else unit_of
            yu = np.array([target[int(c)] for c in y])
            xv, yv = _subset_val(x_val, y_val, target, None)
            first = seeded_model(
                partial(self._build, self.num_classes if by_class else len(units)), self.seed)
            if self.first_init == "planar":
                copy_trunk(self._planar, first)
            extra = {"settings": self.first_train} if self.first_train else {}
            self.group_model_ = train_fn(first, x, yu, xv, yv,
                                         part=f"first ({'classes' if by_class else 'groups'})",
                                         **extra)
        self.second_models_: dict[int, nn.Module] = {}
        for u, members in enumerate(units):
            if len(members) < 2:
                continue
            local = {c: i for i, c in enumerate(members)}
            mask = np.isin(y, members)
            yl = np.array([local[int(c)] for c in y[mask]])
            xv, yv = _subset_val(x_val, y_val, local, members)
            model = seeded_model(partial(self._build, len(members)), self.seed + 1 + u)
            if self.second_init != "scratch":
                first_trained = self.second_init == "first" and self.group_model_ is not None
                copy_trunk(self.group_model_ if first_trained else self._planar, model)
            repeats = group_repeats(len(y), int(mask.sum()), self.second_rows)
            self.second_models_[u] = train_fn(
                model, _repeat_rows(x[mask], repeats), _repeat_rows(yl, repeats), xv, yv,
                part=f"second ({' + '.join(self.grouping_.units[u])})")

    def unit_proba(self, x: np.ndarray) -> np.ndarray:
        """P(unit | x) from the first model, (N, units); a first model over the categories
        gives each unit its members' summed probability (renormalised over the categories
        the training labels held)."""
        if self.group_model_ is None:
            return np.ones((len(x), 1))
        proba = predict_proba(self.group_model_, x)
        if getattr(self, "first_labels", "groups") == "groups":  # models pickled before it
            return proba
        units = np.stack([proba[:, list(members)].sum(axis=1)
                          for members in self.grouping_.unit_indices], axis=1)
        return units / units.sum(axis=1, keepdims=True)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Per-class probabilities (N, num_classes), rows summing to 1.

        Hard routing: the chosen group's second-model distribution, zero elsewhere (a
        singleton group gives its category probability 1). Soft: P(c) = P(u) * P(c | u).
        """
        p_unit = self.unit_proba(x)
        chosen = p_unit.argmax(axis=1)
        out = np.zeros((len(x), self.num_classes))
        for u, members in enumerate(self.grouping_.unit_indices):
            within = (
                predict_proba(self.second_models_[u], x)
                if u in self.second_models_
                else np.ones((len(x), 1))
            )
            weight = (chosen == u).astype(float) if self.routing == "hard" else p_unit[:, u]
            out[:, list(members)] = weight[:, None] * within
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The most probable class index per sample."""
        return self.predict_proba(x).argmax(axis=1)

    def training_rows(self, n_train: int) -> float:
        """Rows all sub-model fits train on together, for sharing a time budget: the
        out-of-fold nets see (folds - 1) x N, the group net N, the second nets at most N
        together ("group": the groups split the set) or at most N each ("full"), with at most
        C // 2 groups of two or more; the group net's rows count ``first_train``'s
        ``epochs_scale`` times. An over-count leaves budget unused at the end; an
        under-count would hand one second net all the time left and starve the next."""
        second = 1 if self.second_rows == "group" else max(1, self.num_classes // 2)
        first = float(getattr(self, "first_train", {}).get("epochs_scale", 1.0))
        return float((self.folds - 1 + first + second) * n_train)


def group_repeats(n_train: int, n_group: int, second_rows: str) -> int:
    """How many copies of a group's images make one epoch of its second model: 1 for
    "group"; for "full" the whole copies that fit in ``n_train`` (at least 1), so the second
    model's epochs take about the planar model's steps without a copy past the set's size."""
    if second_rows == "group" or n_group <= 0:
        return 1
    return max(1, n_train // n_group)


def copy_trunk(source: nn.Module, target: nn.Module) -> int:
    """Copy every weight of ``source`` into ``target`` except the classifier (the last
    linear or convolution layer, a fully connected layer or ``partition_cnn``'s 1x1
    convolution: its outputs are the classes and so differ between the two models).

    Both are the same architecture built for different class counts. Returns the number of
    tensors copied. Raises:
        ConfigError: the two models' trunks differ (not the same architecture).
    """
    layers = [name for name, module in target.named_modules()
              if isinstance(module, nn.Linear | nn.modules.conv._ConvNd)]
    head = f"{layers[-1]}." if layers else None
    source_state, target_state = source.state_dict(), target.state_dict()
    trunk = {k: v for k, v in target_state.items() if head is None or not k.startswith(head)}
    mismatched = [k for k, v in trunk.items()
                  if k not in source_state or source_state[k].shape != v.shape]
    if mismatched:
        raise ConfigError(
            f"hierarchical: a trained network's layers do not fit the network it should "
            f"start ({', '.join(mismatched[:3])}); first_init/second_init: scratch avoids this"
        )
    target.load_state_dict({**target_state, **{k: source_state[k].clone() for k in trunk}})
    return len(trunk)


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts N[p][q] of true class p predicted as q; returns an int64 (C, C) array."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return counts


def _repeat_rows(a: np.ndarray, repeats: int) -> np.ndarray:
    """``a`` stacked ``repeats`` times along its first axis (itself when once)."""
    return a if repeats == 1 else np.concatenate([a] * repeats)


def _subset_val(
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    mapping: dict[int, int],
    members: tuple[int, ...] | None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Validation data relabelled through ``mapping``, restricted to ``members`` if given."""
    if x_val is None or y_val is None:
        return None, None
    y_val = np.asarray(y_val)
    keep = np.isin(y_val, list(mapping) if members is None else members)
    if not keep.any():
        return None, None
    return x_val[keep], np.array([mapping[int(c)] for c in y_val[keep]])
