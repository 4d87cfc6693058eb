"""The training loop: learning, reports, resume, early stopping, schedules, EC-STFL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from components.errors import ConfigError
from components.models import ModelSpec, TorchClassifier
from components.training.augment import mirror, shift
from components.training.config import resolve_config
from components.training.data import load_split
from components.training.run import train_run
from components.training.trainer import Trainer, make_train_fn, seed_everything
from tests.synthetic_task import make_synthetic_task
from tests.training.helpers import TinyClipNet, TinyCNN, quick_config

CLASSES = ["anger", "happiness", "neutral", "surprise"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("preprocess")
    make_synthetic_task(root, "rgbd", size=16)
    make_synthetic_task(root, "video", size=16, frames=3)
    return root


def _spec(task: str = "rgbd", inputs: tuple[str, ...] = ("color",)) -> ModelSpec:
    return ModelSpec("tiny", 4, 3, inputs, task, CLASSES)


def _tiny(seed: int = 0) -> TinyCNN:
    seed_everything(seed)
    return TinyCNN(4, 3)


def test_training_learns_and_writes_metrics_and_plots(data_root: Path, tmp_path: Path) -> None:
    cfg = quick_config(epochs=5)
    metrics = train_run(TorchClassifier(_tiny()), _spec(), cfg, data_root / "image", tmp_path)
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 5
    losses = [float(r.split(",")[history[0].split(",").index("train_loss")]) for r in history[1:]]
    assert losses[-1] < losses[0] * 0.7
    assert metrics["test_accuracy"] > 0.6  # 4 classes: chance is 0.25
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("test_accuracy", "test_uar", "test_macro_f1", "test_occ25_accuracy"):
        assert 0.0 <= saved[key] <= 1.0
    per_class = json.loads((tmp_path / "per_class.json").read_text())
    assert set(per_class["splits"]["test"]["per_class_recall"]) == set(CLASSES)
    for name in ("learning_curves", "confusion_test", "per_class_recall_test",
                 "confusion_test_occ25"):
        png = tmp_path / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    payload = torch.load(tmp_path / "model.pt", weights_only=False)
    assert payload["spec"]["classes"] == CLASSES and "state_dict" in payload


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resume_after_interruption_equals_uninterrupted(data_root: Path, tmp_path: Path,
                                                        ema_decay: float) -> None:
    # mirror + shift + dropout: every RNG stream the loop uses must be restored on resume;
    # with a weight average, the average too.
    cfg = quick_config(epochs=4, shift=1, schedule="onecycle", ema_decay=ema_decay)
    train = load_split(data_root / "image", "train", ("color",))
    val = load_split(data_root / "image", "val", ("color",))
    full = Trainer(_tiny(), cfg, CLASSES, out_dir=tmp_path / "full").fit(train, val)

    class Crash(Exception):
        pass

    def crash_after_two(row: dict) -> None:
        if row["epoch"] == 2:
            raise Crash

    with pytest.raises(Crash):
        Trainer(_tiny(), cfg, CLASSES, out_dir=tmp_path / "cut").fit(
            train, val, on_epoch_end=crash_after_two)
    # A fresh, differently initialised model: everything must come from the checkpoint.
    resumed = Trainer(_tiny(seed=123), cfg, CLASSES, out_dir=tmp_path / "cut").fit(
        train, val, resume=True)
    assert resumed.epochs_run == 4
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, atol=1e-6, rtol=0)
    for a, b in zip(full.history, resumed.history, strict=True):
        assert a == pytest.approx(b, abs=1e-6)


def test_early_stopping_stops_when_val_metric_stalls(data_root: Path) -> None:
    cfg = quick_config(epochs=12, lr=1e-9, patience=2, schedule="none")
    train = load_split(data_root / "image", "train", ("color",))
    val = load_split(data_root / "image", "val", ("color",))
    result = Trainer(_tiny(), cfg, CLASSES).fit(train, val)
    assert result.stopped_early
    assert result.epochs_run == 3  # best at epoch 1, then 2 epochs without improvement
    assert result.best_epoch == 0


@pytest.mark.parametrize(
    ("optimizer", "schedule", "expected"),
    [("sgd", "step", [0.03, 0.003, 0.0003]), ("adamw", "cosine", [0.03, 0.0225, 0.0075]),
     ("adam", "none", [0.03, 0.03, 0.03])],
)
def test_optimizers_and_schedules(data_root: Path, optimizer: str, schedule: str,
                                  expected: list[float]) -> None:
    cfg = quick_config(epochs=3, optimizer=optimizer, schedule=schedule, step_size=1)
    train = load_split(data_root / "image", "train", ("color",))
    result = Trainer(_tiny(), cfg, CLASSES).fit(train, train)
    assert [row["lr"] for row in result.history] == pytest.approx(expected)


def test_same_seed_same_metrics(data_root: Path) -> None:
    cfg = quick_config(epochs=2, channels_last=False, label_smoothing=0.1)
    train = load_split(data_root / "image", "train", ("color",))
    runs = [Trainer(_tiny(), cfg, CLASSES).fit(train, train).history for _ in range(2)]
    assert runs[0] == runs[1]


def test_mirror_and_shift_move_all_channels_and_frames_together() -> None:
    gen = torch.Generator().manual_seed(0)
    clip = torch.arange(2 * 3 * 2 * 4 * 5, dtype=torch.float32).reshape(2, 3, 2, 4, 5)
    flipped = mirror(clip, gen, p=1.0)
    torch.testing.assert_close(flipped, torch.flip(clip, dims=[-1]))
    still = torch.rand(6, 5, 8, 8) + 1.0  # no zeros: zeros in the output are the fill
    moved = shift(still, torch.Generator().manual_seed(1), max_shift=2)
    assert bool((moved == 0).any())
    for i in range(6):  # every channel of a sample has the same zero-filled border
        zero = moved[i] == 0
        assert bool((zero == zero[0]).all())


def test_ecstfl_adds_its_term_and_trains(data_root: Path) -> None:
    train = load_split(data_root / "video", "train", ("frames",))
    losses = {}
    for lam in (0.0, 1.0):
        seed_everything(0)
        cfg = quick_config(epochs=3, ecstfl_lambda=lam, classes_per_batch=4)
        result = Trainer(TinyClipNet(4, 3), cfg, CLASSES, ecstfl=True).fit(train, train)
        losses[lam] = [row["train_loss"] for row in result.history]
    assert losses[1.0][0] > losses[0.0][0]  # the EC-STFL term is part of the loss
    assert losses[1.0][-1] < losses[1.0][0]


def test_make_train_fn_trains_estimator_submodels(data_root: Path) -> None:
    train = load_split(data_root / "image", "train", ("depth",))
    val = load_split(data_root / "image", "val", ("depth",))
    x, y = train.rows(slice(None)), train.y
    train_fn = make_train_fn(quick_config(epochs=4))
    seed_everything(0)
    model = train_fn(TinyCNN(4, 1), x, y, val.rows(slice(None)), val.y)
    with torch.no_grad():
        pred = model(torch.from_numpy(val.rows(slice(None)))).argmax(1).numpy()
    assert not model.training
    assert (pred == val.y).mean() > 0.6
    no_val = train_fn(TinyCNN(4, 1), x, y, None, None)  # estimators may omit validation
    assert isinstance(no_val, torch.nn.Module)


def test_make_train_fn_hands_each_fit_its_epoch_rows_tagged_with_its_part(
        data_root: Path) -> None:
    """A fit with validation data keeps its val_* columns; a fit without keeps only what
    it measured on its training rows (its "validation" would be those rows again)."""
    train = load_split(data_root / "image", "train", ("depth",))
    val = load_split(data_root / "image", "val", ("depth",))
    x, y = train.rows(slice(None)), train.y
    fits: list[list[dict]] = []
    train_fn = make_train_fn(quick_config(epochs=2, patience=0), on_history=fits.append)
    train_fn(TinyCNN(4, 1), x, y, val.rows(slice(None)), val.y, part="second (a + b)")
    train_fn(TinyCNN(4, 1), x, y, None, None, part="planar fold 1")
    validated, unvalidated = fits
    assert [row["epoch"] for row in validated] == [1, 2]
    assert {row["part"] for row in validated} == {"second (a + b)"}
    assert {"train_loss", "val_uar", "val_accuracy"} <= set(validated[0])
    assert {row["part"] for row in unvalidated} == {"planar fold 1"}
    assert "train_loss" in unvalidated[0]
    assert not any(key.startswith("val_") for row in unvalidated for key in row)


def test_resolve_config_merges_overrides_and_tuned(tmp_path: Path) -> None:
    tuned = tmp_path / "chosen_params.json"
    tuned.write_text(json.dumps({"lr": 0.05, "dropout": 0.3}))
    values = {"epochs": 8, "lr": 0.001, "overrides": {"hierarchical": {"k": 4, "epochs": 3}},
              "model_kwargs": {"hierarchical": {"width": 0.5}}}
    cfg, extra = resolve_config(values, "hierarchical", tuned)
    assert (cfg.epochs, cfg.lr) == (3, 0.05)
    assert extra == {"width": 0.5, "k": 4, "dropout": 0.3}
    cfg, _ = resolve_config({**values, "use_tuned": False}, "hierarchical", tuned)
    assert cfg.lr == 0.001
    with pytest.raises(ConfigError, match="optimizer"):
        resolve_config({"optimizer": "rmsprop"}, "baseline_cnn")
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_config({"epochz": 3}, "baseline_cnn")


def test_grey_conversion_uses_luma(data_root: Path) -> None:
    rgb = load_split(data_root / "image", "test", ("color", "depth"))
    grey = load_split(data_root / "image", "test", ("color", "depth"), grey=True)
    assert (rgb.in_channels, grey.in_channels) == (4, 2)
    x, g = rgb.rows(slice(0, 3)), grey.rows(slice(0, 3))
    expected = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    np.testing.assert_allclose(g[:, 0], expected, rtol=1e-5)
    np.testing.assert_array_equal(g[:, 1], x[:, 3])  # depth untouched
