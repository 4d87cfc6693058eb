"""Class-aware batches: enough classes per batch, full coverage, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader, TensorDataset

from components.errors import ConfigError
from components.models.sampling import ClassAwareBatchSampler

# Imbalanced: a rare class must still appear without breaking the per-batch guarantee.
LABELS = np.array([0] * 40 + [1] * 25 + [2] * 10 + [3] * 5 + [4] * 3)


def test_every_batch_holds_the_requested_classes():
    sampler = ClassAwareBatchSampler(LABELS, batch_size=8, classes_per_batch=4, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        assert len(set(LABELS[batch])) >= 4
        assert len(batch) <= 8


def test_epoch_covers_every_sample():
    sampler = ClassAwareBatchSampler(LABELS, batch_size=8, classes_per_batch=3, seed=1)
    seen = np.concatenate(list(sampler))
    assert set(seen) == set(range(len(LABELS)))
    # repeats only top up batches short of classes at the end of the epoch
    assert len(seen) - len(LABELS) < 0.2 * len(LABELS)


def test_deterministic_per_seed_and_epoch():
    a = ClassAwareBatchSampler(LABELS, 8, 4, seed=3)
    b = ClassAwareBatchSampler(LABELS, 8, 4, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert list(ClassAwareBatchSampler(LABELS, 8, 4, seed=4)) != first


def test_works_as_a_dataloader_batch_sampler():
    data = TensorDataset(__import__("torch").arange(len(LABELS)))
    loader = DataLoader(data, batch_sampler=ClassAwareBatchSampler(LABELS, 10, 2, seed=0))
    assert sum(len(b[0]) for b in loader) >= len(LABELS)


def test_batch_smaller_than_classes_is_a_config_error():
    with pytest.raises(ConfigError, match="classes_per_batch"):
        ClassAwareBatchSampler(LABELS, batch_size=2, classes_per_batch=4)
