"""Behavioural tests on trained artefacts (Made-With-ML style): invariances and directions a
facial-expression model must respect, checked on models the project's trainer fitted.

- a mirrored face keeps its label (expressions are left-right symmetric; training mirrors);
- covering more of the face does not raise confidence in the true class, on average;
- a face from one of seed 002's confusion groups is routed to that group.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.models import create_model
from components.training.config import TrainConfig
from components.training.data import load_split
from components.training.trainer import Trainer, make_train_fn, seed_everything
from tests.synthetic_task import make_synthetic_task
from tests.training.helpers import TinyCNN, quick_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A small CNN trained by the project's trainer on a learnable synthetic task."""
    task_dir = make_synthetic_task(tmp_path_factory.mktemp("behaviour"), "image", size=16,
                                   sizes={"train": 96, "val": 32, "test": 64},
                                   occlusion=(25, 50))
    seed_everything(0)
    model = TinyCNN(4, 3)
    splits = {s: load_split(task_dir, s, ("color",))
              for s in ("train", "val", "test", "test_occ25", "test_occ50")}
    Trainer(model, quick_config(epochs=8)).fit(splits["train"], splits["val"])
    return model.eval(), splits


def _proba(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(np.asarray(x, np.float32))), 1).numpy()


def test_trained_model_is_worth_testing(trained) -> None:
    model, splits = trained
    test = splits["test"]
    accuracy = (_proba(model, test.rows(slice(None))).argmax(1) == test.y).mean()
    assert accuracy >= 0.8  # chance is 0.25


def test_a_mirrored_face_keeps_its_label(trained) -> None:
    model, splits = trained
    x = splits["test"].rows(slice(None))
    plain = _proba(model, x).argmax(1)
    mirrored = _proba(model, x[..., ::-1].copy()).argmax(1)
    assert (plain == mirrored).mean() >= 0.9


def test_more_occlusion_does_not_raise_confidence_in_the_true_class(trained) -> None:
    model, splits = trained
    confidence = {}
    for split in ("test", "test_occ25", "test_occ50"):
        data = splits[split]
        proba = _proba(model, data.rows(slice(None)))
        confidence[split] = proba[np.arange(len(data.y)), data.y].mean()
    assert confidence["test"] >= confidence["test_occ25"] - 0.02
    assert confidence["test_occ25"] >= confidence["test_occ50"] - 0.02


def grouped_faces(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four classes in two look-alike pairs: 0/1 light the top band, 2/3 the bottom band;
    within a pair only the band's brightness differs, so they confuse each other."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), n_per_class)
    x = rng.normal(0.2, 0.08, size=(len(y), 1, 16, 16)).astype(np.float32)
    for i, label in enumerate(y):
        rows = slice(0, 6) if label < 2 else slice(10, 16)
        x[i, :, rows, 2:14] += 0.45 if label % 2 == 0 else 0.6
    return x, y


def test_a_face_is_routed_to_its_confusion_group() -> None:
    x, y = grouped_faces(24, seed=0)
    cfg = TrainConfig(epochs=6, lr=3e-3, batch_size=16, seed=0, optimizer="adam",
                      schedule="none", mirror=False, patience=0, progress=False, track=False)
    model = create_model("hierarchical", 4, 1, k=3, folds=2, seed=0,
                         class_names=["a", "b", "c", "d"], width=0.125, hidden=16)
    model.fit_arrays(x, y, make_train_fn(cfg))
    assert sorted(sorted(g) for g in model.groups_) == [["a", "b"], ["c", "d"]]
    held_x, held_y = grouped_faces(10, seed=1)
    unit_of = model.grouping_.unit_of()
    routed = model.unit_proba(held_x).argmax(1)
    expected = np.array([unit_of[int(c)] for c in held_y])
    assert (routed == expected).mean() >= 0.9
