"""Class-aware mini-batches, so that every batch holds several classes (seed 004).

EC-STFL needs at least two classes in a batch (its denominator sums distances to other
classes); methods.md 5.2 recommends >= 4. Random batches of rare classes do not guarantee
that, so this sampler builds each batch from ``classes_per_batch`` classes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from components.errors import ConfigError


class ClassAwareBatchSampler(Sampler[list[int]]):
    """Yield index batches that each hold at least ``classes_per_batch`` classes.

    Every epoch visits every sample once. Each batch draws its classes among those with
    samples left (weighted by how many are left) and takes from them in turn. Near the end
    of an epoch, when fewer classes have samples left than requested, the batch is topped
    up with one repeated sample from each missing class, so the class guarantee holds for
    every batch whenever the data has that many classes. Deterministic per (seed, epoch);
    call :meth:`set_epoch` to change the order between epochs.

    Raises:
        ConfigError: batch_size < classes_per_batch, or a non-positive size.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        batch_size: int,
        classes_per_batch: int,
        seed: int = 0,
    ) -> None:
        if classes_per_batch < 1 or batch_size < classes_per_batch:
            raise ConfigError(
                f"class-aware sampler: need 1 <= classes_per_batch <= batch_size, got "
                f"classes_per_batch={classes_per_batch}, batch_size={batch_size}"
            )
        self.labels = np.asarray(labels).astype(np.int64)
        self.batch_size = int(batch_size)
        self.classes_per_batch = int(classes_per_batch)
        self.seed = int(seed)
        self.epoch = 0
        self.classes = np.unique(self.labels)
        self._by_class = {int(c): np.flatnonzero(self.labels == c) for c in self.classes}

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose (deterministic) batch order the next iteration yields."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._plan()

    def __len__(self) -> int:
        return len(self._plan())

    def _plan(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        pools = {c: list(rng.permutation(idx)) for c, idx in self._by_class.items()}
        wanted = min(self.classes_per_batch, len(pools))
        batches = []
        while any(pools.values()):
            left = [c for c in pools if pools[c]]
            weights = np.array([len(pools[c]) for c in left], dtype=float)
            n_chosen = min(wanted, len(left))
            chosen = list(rng.choice(left, n_chosen, replace=False, p=weights / weights.sum()))
            missing = wanted - n_chosen  # classes that must come from repeats
            batch = _take_round_robin(pools, chosen, self.batch_size - missing)
            others = [c for c in left if c not in chosen]
            batch += _take_round_robin(pools, others, self.batch_size - missing - len(batch))
            present = {int(self.labels[i]) for i in batch}
            absent = [c for c in pools if c not in present]
            short = max(0, wanted - len(present))
            for c in rng.choice(absent, short, replace=False) if short else []:
                batch.append(int(rng.choice(self._by_class[int(c)])))
            batches.append([int(i) for i in rng.permutation(batch)])
        return batches


def _take_round_robin(pools: dict[int, list[int]], classes: list[int], limit: int) -> list[int]:
    """Pop up to ``limit`` indices from the pools of ``classes``, one class at a time."""
    taken: list[int] = []
    while len(taken) < limit and any(pools[c] for c in classes):
        for c in classes:
            if pools[c] and len(taken) < limit:
                taken.append(pools[c].pop())
    return taken
