"""Rotation/zoom, random crops and erasing, bf16 autocast and mirrored test-time averaging."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from components.errors import ConfigError
from components.models import ModelSpec, TorchClassifier, create_classifier, load_trained
from components.models.classifier import ViewAverage
from components.models.contract import tta_views
from components.training.augment import augment_batch, random_crop, random_erase, rotate_scale
from components.training.config import TrainConfig
from components.training.data import load_split
from components.training.run import score, train_run
from components.training.trainer import Trainer, seed_everything
from tests.synthetic_task import make_synthetic_task
from tests.training.helpers import TinyCNN, quick_config

CLASSES = ["anger", "happiness", "neutral", "surprise"]


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("preprocess")
    make_synthetic_task(root, "rgbd", size=16)
    return root / "image"


def test_rotate_scale_turns_an_image_about_its_centre() -> None:
    image = torch.zeros(1, 1, 21, 21)
    image[0, 0, 10, 14:19] = 1.0  # a bar pointing right from the centre
    gen = torch.Generator().manual_seed(0)
    turned = rotate_scale(image, gen, max_degrees=90.0, max_scale=0.0)
    # Re-draw the angle the same way the function did to know where the bar must go.
    angle = (torch.rand(1, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 90.0
    ys, xs = np.nonzero(turned[0, 0].numpy() > 0.3)
    centre_of_mass = math.degrees(math.atan2(ys.mean() - 10, xs.mean() - 10))
    assert abs(abs(centre_of_mass) - abs(float(angle))) < 12.0
    assert turned.shape == image.shape and float(turned.sum()) > 2.0


def test_rotate_scale_keeps_channels_and_frames_aligned_and_zero_is_identity() -> None:
    clip = torch.rand(4, 3, 2, 12, 12) + 1.0
    gen = torch.Generator().manual_seed(1)
    assert rotate_scale(clip, gen, 0.0, 0.0) is clip
    out = rotate_scale(torch.ones(4, 3, 2, 12, 12), gen, 30.0, 0.2)
    for i in range(4):  # same transform: the zero-filled corners coincide everywhere
        zero = out[i] < 0.5
        assert bool((zero == zero[0, 0]).all())


def test_random_erase_zeroes_one_rectangle_per_chosen_sample() -> None:
    x = torch.rand(200, 2, 16, 16) + 1.0
    out = random_erase(x, torch.Generator().manual_seed(2), p=0.5)
    erased = (out == 0).flatten(1).any(1)
    assert 60 < int(erased.sum()) < 140  # about half
    for i in np.nonzero(erased.numpy())[0]:
        zero = (out[i, 0] == 0).numpy()
        rows, cols = np.nonzero(zero)
        box = zero[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all()  # a filled rectangle
        assert bool((out[i, 1] == 0).eq(torch.from_numpy(zero)).all())  # every channel
        assert 0.02 * 256 * 0.5 <= zero.sum() <= 0.2 * 256 * 1.5
    torch.testing.assert_close(out[~erased], x[~erased])


def test_disabled_augmentations_leave_the_random_stream_alone() -> None:
    x = torch.rand(8, 1, 10, 10)
    plain = augment_batch(x, torch.Generator().manual_seed(3), mirror_p=0.5, max_shift=1)
    same = augment_batch(x, torch.Generator().manual_seed(3), mirror_p=0.5, max_shift=1,
                         max_degrees=0.0, max_scale=0.0, erase_p=0.0)
    torch.testing.assert_close(plain, same)


def test_bad_augmentation_and_precision_settings_are_refused() -> None:
    for bad in ({"rotate": -1.0}, {"scale": 1.0}, {"erase_p": 1.5}, {"precision": "fp8"}):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


def test_bf16_training_learns_and_reports_float32(image_root: Path) -> None:
    train = load_split(image_root, "train", ("color",))
    seed_everything(0)
    cfg = quick_config(epochs=5, precision="bf16", rotate=5.0, scale=0.05, erase_p=0.2)
    trainer = Trainer(TinyCNN(4, 3), cfg, CLASSES)
    result = trainer.fit(train, train)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    logits = trainer.predict_logits(train)
    assert logits.dtype == np.float32
    assert trainer.evaluate(train)["accuracy"] > 0.5  # 4 classes: chance is 0.25


def test_tta_mirror_averages_each_face_with_its_mirror(image_root: Path) -> None:
    data = load_split(image_root, "val", ("color",))
    seed_everything(0)
    model = TinyCNN(4, 3).eval()
    plain = Trainer(model, quick_config(channels_last=False), CLASSES).predict_logits(data)
    tta = Trainer(model, quick_config(channels_last=False, tta_mirror=True),
                  CLASSES).predict_logits(data)
    x = torch.from_numpy(data.rows(slice(None)))
    with torch.no_grad():
        mirrored = model(torch.flip(x, dims=[-1])).numpy()
    np.testing.assert_allclose(tta, (plain + mirrored) / 2, rtol=1e-5, atol=1e-5)


def test_tta_views_are_the_batch_its_corner_shifts_and_their_mirrors() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4) + 1
    assert len(tta_views(x, mirror=False, shift=0)) == 1
    views = tta_views(x, mirror=True, shift=1)
    assert len(views) == 10 and all(v.shape == x.shape for v in views)
    down_right = views[1]  # content moved one pixel down and right, the edge zero-filled
    torch.testing.assert_close(down_right[..., 1:, 1:], x[..., :3, :3])
    assert (down_right[..., 0, :] == 0).all() and (down_right[..., :, 0] == 0).all()
    up_left = views[4]
    torch.testing.assert_close(up_left[..., :3, :3], x[..., 1:, 1:])
    assert (up_left[..., 3, :] == 0).all() and (up_left[..., :, 3] == 0).all()
    torch.testing.assert_close(views[5], torch.flip(x, dims=[-1]))
    torch.testing.assert_close(views[9], torch.flip(up_left, dims=[-1]))
    clips = torch.rand(2, 3, 1, 4, 4)  # (N, T, C, H, W): every frame shifted alike
    torch.testing.assert_close(tta_views(clips, False, 1)[1][:, 1], tta_views(
        clips[:, 1], False, 1)[1])


def test_view_average_is_the_mean_of_the_logits_over_the_views() -> None:
    seed_everything(0)
    model = TinyCNN(4, 3).eval()
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        expected = torch.stack([model(v) for v in tta_views(x, True, 2)]).mean(0)
        torch.testing.assert_close(ViewAverage(model, mirror=True, shift=2)(x), expected)


@pytest.mark.parametrize("shift", [0, 2])
def test_model_trained_with_tta_is_rebuilt_scoring_what_the_trainer_scored(
    image_root: Path, tmp_path: Path, shift: int
) -> None:
    spec = ModelSpec("baseline_cnn", 4, 3, ("color",), "image", CLASSES,
                     model_kwargs={"width": 0.125}, tta_mirror=True, tta_shift=shift)
    seed_everything(0)
    classifier = create_classifier(spec.arch, spec.num_classes, spec.in_channels, mirror=True,
                                   shift=shift, **spec.model_kwargs)
    metrics = train_run(classifier, spec,
                        quick_config(epochs=2, tta_mirror=True, tta_shift=shift), image_root,
                        tmp_path)
    loaded_spec, loaded = load_trained(tmp_path)
    net = loaded.network()
    assert loaded_spec.tta_mirror and isinstance(net, ViewAverage)
    assert (loaded_spec.tta_shift, net.shift) == (shift, shift)
    rescored = score(loaded, loaded_spec, image_root, "test")
    assert rescored["accuracy"] == pytest.approx(metrics["test_accuracy"])
    plain = score(loaded.without_tta(), loaded_spec, image_root, "test")
    assert plain["accuracy"] == pytest.approx(metrics["test_notta_accuracy"])
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():  # idempotent: a mirrored input gives the same logits
        torch.testing.assert_close(net(x), net(torch.flip(x, dims=[-1])))


def test_torch_classifier_predicts_the_softmax_of_its_logits() -> None:
    seed_everything(0)
    net = TinyCNN(4, 3).eval()
    x = np.random.default_rng(0).random((5, 3, 16, 16), dtype=np.float32)
    proba = TorchClassifier(net).predict_proba(x)
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(x)).double(), dim=1).numpy()
    np.testing.assert_allclose(proba, expected, rtol=1e-6)
    assert proba.shape == (5, 4) and np.allclose(proba.sum(axis=1), 1.0)


@pytest.mark.parametrize("shift", [0, 2])
def test_view_average_exports_to_onnx_with_parity(tmp_path: Path, shift: int) -> None:
    import onnxruntime

    seed_everything(0)
    net = ViewAverage(TinyCNN(4, 3), mirror=True, shift=shift).eval()
    x = torch.rand(5, 3, 16, 16)
    path = tmp_path / "tta.onnx"
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.onnx.export(net, (x,), str(path), dynamo=True, input_names=["x"],
                      dynamic_shapes=({0: batch},), external_data=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, net(x).numpy(), atol=1e-5)


@pytest.mark.parametrize("shape", [(6, 3, 9, 7), (4, 5, 2, 8, 8)])
def test_shift_and_mirror_move_each_sample_as_its_own_window_would(shape) -> None:
    x = torch.rand(shape)
    out = augment_batch(x, torch.Generator().manual_seed(4), mirror_p=0.5, max_shift=2)
    draws = torch.Generator().manual_seed(4)  # the same draws, applied one sample at a time
    flip = torch.rand(shape[0], generator=draws) < 0.5
    offsets = torch.randint(-2, 3, (shape[0], 2), generator=draws)
    h, w = shape[-2:]
    for i in range(shape[0]):
        sample = torch.flip(x[i], dims=[-1]) if flip[i] else x[i]
        padded = torch.nn.functional.pad(sample, (2, 2, 2, 2))
        dy, dx = 2 + int(offsets[i, 0]), 2 + int(offsets[i, 1])
        assert torch.equal(out[i], padded[..., dy : dy + h, dx : dx + w])


@pytest.mark.parametrize("shape", [(6, 3, 9, 7), (4, 5, 2, 8, 8)])
def test_random_crop_cuts_one_window_per_sample_for_all_its_channels(shape) -> None:
    x = torch.rand(shape)
    out = random_crop(x, torch.Generator().manual_seed(5), 5)
    assert out.shape == (*shape[:-2], 5, 5)
    draws = torch.Generator().manual_seed(5)  # the same draws, applied one sample at a time
    tops = torch.randint(0, shape[-2] - 4, (shape[0], 1), generator=draws)
    lefts = torch.randint(0, shape[-1] - 4, (shape[0], 1), generator=draws)
    for i in range(shape[0]):
        top, left = int(tops[i]), int(lefts[i])
        torch.testing.assert_close(out[i], x[i, ..., top : top + 5, left : left + 5])
    windows = {(int(t), int(v)) for t, v in zip(tops, lefts, strict=True)}
    assert len(windows) > 1  # samples get their own windows


def test_random_crop_off_draws_nothing_and_a_window_too_large_is_refused() -> None:
    x = torch.rand(4, 1, 10, 10)
    gen = torch.Generator().manual_seed(6)
    assert random_crop(x, gen, 0) is x
    assert torch.equal(torch.rand(3, generator=gen),
                       torch.rand(3, generator=torch.Generator().manual_seed(6)))
    for too_large in (10, 11):  # a window the size of the images would crop nothing
        with pytest.raises(ValueError, match="must be smaller than the 10x10"):
            random_crop(x, gen, too_large)
    plain = augment_batch(x, torch.Generator().manual_seed(3), mirror_p=0.5, max_shift=1)
    same = augment_batch(x, torch.Generator().manual_seed(3), mirror_p=0.5, max_shift=1, crop=0)
    torch.testing.assert_close(plain, same)
    with pytest.raises(ConfigError, match="crop"):
        TrainConfig(crop=-1)


def test_training_on_crops_learns_and_scores_whole_faces(image_root: Path) -> None:
    train = load_split(image_root, "train", ("color",))
    seed_everything(0)
    trainer = Trainer(TinyCNN(4, 3), quick_config(epochs=5, crop=12), CLASSES)
    seen: list[tuple[int, ...]] = []
    hook = trainer.model.conv.register_forward_hook(
        lambda _m, args, _out: seen.append(tuple(args[0].shape[-2:])))
    result = trainer.fit(train, train)
    hook.remove()
    assert (12, 12) in seen and (16, 16) in seen  # crops in training, whole faces in scoring
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert trainer.evaluate(train)["accuracy"] > 0.5  # 4 classes: chance is 0.25


class _FixedHead(torch.nn.Module):
    """A net whose classifier reads a fixed-size map: it cannot score another size."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3 * 16 * 16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x, 1))


@pytest.mark.parametrize(("crop", "message"), [
    (16, "must be smaller than the 16x16 faces"),
    (12, "_FixedHead cannot take 12x12 crops and whole 16x16 faces"),
])
def test_a_crop_the_net_or_the_faces_cannot_take_is_refused_before_training(
    image_root: Path, crop: int, message: str
) -> None:
    train = load_split(image_root, "train", ("color",))
    trainer = Trainer(_FixedHead(), quick_config(crop=crop), CLASSES)
    with pytest.raises(ConfigError, match=message):
        trainer.fit(train, train)
