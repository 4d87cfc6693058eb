"""Every torch architecture: patent layer counts, partition blocks, shapes, trainability."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from components.errors import ConfigError
from components.models import MODEL_INPUTS, available_models, create_model
from components.models.c3d import C3D
from components.models.partition import PartitionBlock, split_bounds
from components.models.seed000 import SliceLayer, count_layers

TORCH_MODELS = {
    # name: (in_channels, small kwargs so the test stays fast)
    "baseline_cnn": (1, {"width": 0.25, "hidden": 64}),
    "partition_cnn": (1, {"width": 0.25}),
    "resnet_cnn": (1, {"width": 0.125}),
    "fusion_early": (7, {"width": 0.5, "fc_width": 64}),
    "fusion_twostream": (4, {"width": 0.5, "fc_width": 64, "stream_width": 32}),
    "fusion_early_rgb": (6, {"width": 0.5, "fc_width": 64}),
    "fusion_twostream_rgb": (3, {"width": 0.5, "fc_width": 64, "stream_width": 32}),
    "depth_cnn": (1, {"width": 0.5, "fc_width": 64}),
    "color_cnn": (3, {"width": 0.5, "fc_width": 64}),
    "c3d_ecstfl": (3, {"width": 0.125, "fc_width": 64}),
    "r2plus1d_ecstfl": (3, {"width": 0.125, "fc_width": 64}),
}


def sample_input(name: str, channels: int, n: int = 2, size: int = 32) -> torch.Tensor:
    clip = name in ("c3d_ecstfl", "r2plus1d_ecstfl")
    shape = (n, 4, channels, size, size) if clip else (n, channels, size, size)
    return torch.randn(*shape)


def banded_batch(name: str, channels: int, n: int = 16, classes: int = 4, size: int = 32):
    """A learnable batch: class k brightens the k-th horizontal band of every frame."""
    y = torch.arange(n) % classes
    x = sample_input(name, channels, n, size).abs() * 0.2
    band = size // classes
    for i in range(n):
        x[i, ..., y[i] * band : (y[i] + 1) * band, :] += 0.8
    return x, y


@pytest.mark.parametrize(
    ("name", "channels", "expected"),
    [
        ("fusion_early", 7, {"conv": 4, "downsampling": 4, "dropout": 1, "fc": 2, "slice": 0}),
        ("depth_cnn", 1, {"conv": 3, "downsampling": 3, "dropout": 1, "fc": 2, "slice": 0}),
        ("color_cnn", 3, {"conv": 4, "downsampling": 4, "dropout": 1, "fc": 2, "slice": 0}),
        ("fusion_twostream", 4, {"conv": 8, "downsampling": 8, "dropout": 2, "fc": 5, "slice": 1}),
    ],
)
def test_seed000_layer_counts_match_the_patent(name, channels, expected):
    model = create_model(name, 8, channels)
    assert count_layers(model) == expected
    # the same counts read with plain isinstance checks on torch layer types
    modules = list(model.modules())
    assert sum(isinstance(m, nn.Conv2d) for m in modules) == expected["conv"]
    assert sum(isinstance(m, nn.Linear) for m in modules) == expected["fc"]
    assert sum(isinstance(m, nn.Dropout) for m in modules) == expected["dropout"]
    assert sum(isinstance(m, nn.MaxPool2d | nn.AdaptiveMaxPool2d) for m in modules) == (
        expected["downsampling"]
    )


def test_slice_layer_splits_depth_from_colour():
    x = torch.arange(2 * 4 * 3 * 3, dtype=torch.float32).reshape(2, 4, 3, 3)
    depth, color = SliceLayer((1, 3))(x)
    assert torch.equal(depth, x[:, :1]) and torch.equal(color, x[:, 1:])


def test_twostream_depth_stream_sees_only_the_depth_channel():
    torch.manual_seed(0)
    model = create_model("fusion_twostream", 3, 4).eval()
    x = torch.randn(2, 4, 48, 48)
    changed = x.clone()
    changed[:, 1:] += 1.0  # touch colour only
    assert torch.equal(model.depth_stream(model.slice(x)[0]),
                       model.depth_stream(model.slice(changed)[0]))


@pytest.mark.parametrize(("grid", "size"), [((4, 4), 48), ((4, 4), 50), ((3, 1), 47)])
def test_partition_block_keeps_spatial_size(grid, size):
    block = PartitionBlock(3, 5, grid)
    assert block(torch.randn(2, 3, size, size + 3)).shape == (2, 5, size, size + 3)


def test_split_bounds_match_numpy_array_split():
    import numpy as np

    for length, parts in [(48, 4), (50, 4), (47, 3), (10, 3)]:
        pieces = np.array_split(np.arange(length), parts)
        assert split_bounds(length, parts) == [(int(p[0]), int(p[-1]) + 1) for p in pieces]


@pytest.mark.parametrize("train_mode", [True, False])
@pytest.mark.parametrize(
    ("grid", "size", "region"), [((4, 4), 48, 6), ((4, 4), 50, 5), ((3, 1), 47, 2)]
)
def test_each_region_owns_its_parameters(grid, size, region, train_mode):
    torch.manual_seed(0)
    block = PartitionBlock(2, 3, grid).train(train_mode)
    x = torch.randn(4, 2, size, size)
    before = block(x).detach()
    with torch.no_grad():
        block.region_parameters(region)["conv_weight"].add_(0.5)
        block.region_parameters(region)["bn_weight"].mul_(2.0)
    after = block(x).detach()
    rows, cols = block.region_slices(size, size)[region]
    inside = torch.zeros(size, size, dtype=torch.bool)
    inside[rows, cols] = True
    diff = (after - before).abs().amax(dim=(0, 1))
    assert diff[inside].min() > 0  # every cell of the region changed
    assert diff[~inside].max() == 0  # nothing outside it did


def test_region_padding_is_per_region():
    """A region's output must not depend on its neighbours' inputs to the region conv."""
    torch.manual_seed(0)
    block = PartitionBlock(1, 1, (4, 4)).eval()
    block.full_conv = nn.Identity()  # feed the region stage directly
    x = torch.randn(1, 1, 48, 48)
    changed = x.clone()
    changed[:, :, 12:24, 0:12] += 3.0  # region 4 (row 1, col 0)
    diff = (block(changed) - block(x)).abs()[0, 0]
    assert diff[12:24, 0:12].max() > 0
    diff[12:24, 0:12] = 0
    assert diff.max() == 0


@pytest.mark.parametrize("name", sorted(TORCH_MODELS))
@pytest.mark.parametrize("size", [32, 45])
def test_any_input_size_gives_logits(name, size):
    channels, kwargs = TORCH_MODELS[name]
    model = create_model(name, 5, channels, **kwargs).eval()
    assert model(sample_input(name, channels, size=size)).shape == (2, 5)


@pytest.mark.parametrize("name", sorted(TORCH_MODELS))
def test_trains_with_falling_loss(name):
    channels, kwargs = TORCH_MODELS[name]
    torch.manual_seed(0)
    model = create_model(name, 4, channels, **kwargs)
    x, y = banded_batch(name, channels)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        optimiser.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3


def test_c3d_returns_fc7_features_for_ec_stfl():
    model = C3D(num_classes=3, in_channels=1, width=0.125, fc_width=32).eval()
    logits, feats = model(torch.randn(2, 2, 1, 32, 32), return_features=True)
    assert logits.shape == (2, 3) and feats.shape == (2, 32)
    assert (feats >= 0).all()  # post-ReLU
    with pytest.raises(ValueError, match="N, T, C, H, W"):
        model(torch.randn(2, 1, 32, 32))


def test_registry_lists_every_model_with_its_inputs():
    assert set(available_models()) == set(MODEL_INPUTS)
    assert MODEL_INPUTS["fusion_early"] == ("depth", "color", "color2d")


def test_unknown_model_name_lists_the_available_ones():
    with pytest.raises(ConfigError, match="baseline_cnn"):
        create_model("resnet_9000", 7, 1)


def test_unknown_option_is_named():
    with pytest.raises(ConfigError, match="'depthh'"):
        create_model("baseline_cnn", 7, 1, depthh=3)


def test_single_class_is_rejected_with_a_hint():
    with pytest.raises(ConfigError, match="2 classes"):
        create_model("baseline_cnn", 1, 1)


def test_region_batch_norm_masked_path_matches_fused_path():
    from components.models.partition import RegionBatchNorm

    torch.manual_seed(0)
    fused, masked = RegionBatchNorm(4, 3), RegionBatchNorm(4, 3)
    x = torch.randn(5, 4, 3, 6, 6) * 2 + 1
    mask = torch.ones(4, 6, 6, dtype=torch.bool)
    torch.testing.assert_close(fused(x), masked(x, mask), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused.running_var, masked.running_var)
    torch.testing.assert_close(fused.running_mean, masked.running_mean)
    fused.eval()
    masked.eval()
    torch.testing.assert_close(fused(x), masked(x, mask), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(fused.running_mean, torch.zeros(4, 3))  # stats did update


def test_uneven_and_even_grids_agree_where_they_coincide():
    """The padded path (any size) must equal the reshape path on a divisible input."""
    torch.manual_seed(0)
    block = PartitionBlock(2, 3, (4, 4)).eval()
    with torch.no_grad():
        block.region_bn.running_mean.normal_()
        block.region_bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 2, 48, 48)
    torch.testing.assert_close(block(x), block._forward_padded(block.full_conv(x)))


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("width", [0.25, 1.0])
@pytest.mark.parametrize("extra_block", [True, False])
def test_plain_twin_of_partition_cnn_matches_its_parameter_count(width, extra_block) -> None:
    partition = create_model("partition_cnn", 8, 1, width=width, extra_block=extra_block)
    plain = create_model("partition_cnn", 8, 1, width=width, extra_block=extra_block,
                         conv="plain")
    assert not any(isinstance(m, PartitionBlock) for m in plain.modules())
    assert _parameters(plain) == pytest.approx(_parameters(partition), rel=0.05)
    assert plain(torch.randn(2, 1, 40, 40)).shape == (2, 8)


def test_swapped_order_puts_the_organ_partition_before_the_texture_one() -> None:
    swapped = create_model("partition_cnn", 8, 1, width=0.25, order="swapped")
    assert (swapped.first.grid, swapped.second.grid) == ((3, 1), (4, 4))
    standard = create_model("partition_cnn", 8, 1, width=0.25)
    assert (standard.first.grid, standard.second.grid) == ((4, 4), (3, 1))
    assert swapped(torch.randn(2, 1, 32, 32)).shape == (2, 8)
    with pytest.raises(ConfigError, match="order"):
        create_model("partition_cnn", 8, 1, order="backwards")


def test_c3d_features_come_from_the_chosen_fc_layer() -> None:
    clips = torch.randn(3, 4, 3, 32, 32)
    for layer in ("fc7", "fc6"):
        torch.manual_seed(0)
        net = C3D(5, width=0.125, fc_width=24, feature_layer=layer).eval()
        logits, feats = net(clips, return_features=True)
        with torch.no_grad():
            pooled = torch.flatten(net.pool5(net.features(clips.permute(0, 2, 1, 3, 4))), 1)
            fc6 = torch.relu(net.fc6(pooled))
            expected = fc6 if layer == "fc6" else torch.relu(net.fc7(fc6))
        assert logits.shape == (3, 5) and torch.allclose(feats, expected, atol=1e-6)
    with pytest.raises(ValueError, match="feature_layer"):
        C3D(5, feature_layer="fc8")


@pytest.mark.parametrize(("rgbd", "rgb", "channels"), [
    ("fusion_early", "fusion_early_rgb", (7, 6)),
    ("fusion_twostream", "fusion_twostream_rgb", (4, 3)),
])
def test_colour_only_twins_have_their_rgbd_networks_capacity(rgbd, rgb, channels) -> None:
    kwargs = {"width": 0.5, "fc_width": 64}
    full = create_model(rgbd, 8, channels[0], **kwargs)
    twin = create_model(rgb, 8, channels[1], **kwargs)
    assert MODEL_INPUTS[rgb] == tuple(m for m in MODEL_INPUTS[rgbd] if m != "depth")
    assert count_layers(twin) == count_layers(full)
    assert _parameters(twin) == pytest.approx(_parameters(full), rel=0.01)
    assert twin(torch.randn(2, channels[1], 32, 32)).shape == (2, 8)


def test_twostream_twin_feeds_luminance_where_depth_was() -> None:
    torch.manual_seed(0)
    twin = create_model("fusion_twostream_rgb", 4, 3, width=0.5, fc_width=16).eval()
    colour = torch.rand(2, 3, 32, 32)
    grey = (colour * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    plain = create_model("fusion_twostream", 4, 4, width=0.5, fc_width=16).eval()
    plain.load_state_dict(twin.state_dict())
    with torch.no_grad():
        assert torch.allclose(twin(colour), plain(torch.cat([grey, colour], 1)), atol=1e-6)


def test_r2plus1d_returns_the_chosen_fc_features_and_factorises_its_convolutions() -> None:
    from components.models.r2plus1d import R2Plus1D

    clips = torch.randn(3, 4, 3, 32, 32)
    for layer in ("fc7", "fc6"):
        torch.manual_seed(0)
        net = R2Plus1D(5, width=0.125, fc_width=24, feature_layer=layer).eval()
        logits, feats = net(clips, return_features=True)
        with torch.no_grad():
            fc7 = torch.relu(net.fc7(feats)) if layer == "fc6" else feats
            assert torch.allclose(logits, net.fc8(fc7), atol=1e-5)
        assert feats.shape == (3, 24)
    kernels = {tuple(m.kernel_size) for m in net.modules() if isinstance(m, nn.Conv3d)}
    assert kernels == {(1, 3, 3), (3, 1, 1), (1, 1, 1)}  # no full 3x3x3 kernel
    assert create_model("r2plus1d_ecstfl", 8, 3, width=0.125).feature_layer == "fc7"


def test_baseline_channels_and_block_convs_set_each_block():
    model = create_model("baseline_cnn", 7, 1, channels=[8, 16, 24, 40], block_convs=[1, 2, 3, 1])
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 16, 24, 24, 24, 40]
    assert model(torch.randn(2, 1, 48, 48)).shape == (2, 7)
    assert model.head[1].in_features == 40


def test_baseline_defaults_are_two_convs_per_block_at_the_scaled_widths():
    torch.manual_seed(0)
    by_width = create_model("baseline_cnn", 7, 1, width=0.25)
    torch.manual_seed(0)
    spelled_out = create_model("baseline_cnn", 7, 1, channels=(16, 32, 64, 128),
                               block_convs=(2, 2, 2, 2))
    for (name, a), (_, b) in zip(by_width.state_dict().items(),
                                 spelled_out.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"width": 0.5, "channels": [8, 16, 32, 64]}, "not both"),
    ({"channels": []}, "at least one block"),
    ({"channels": [8, 0, 16, 32]}, "at least one block"),
    ({"block_convs": [1, 2, 2]}, "4 counts"),
    ({"channels": [8, 16], "block_convs": [1, 0]}, "each >= 1"),
    ({"head_grid": 0}, "head_grid"),
    ({"head_grid": 1.5}, "head_grid"),
])
def test_baseline_block_settings_that_cannot_be_built_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        create_model("baseline_cnn", 7, 1, **kwargs)


def test_baseline_head_grid_keeps_where_in_the_face_a_feature_fired():
    model = create_model("baseline_cnn", 7, 1, width=0.125, head_grid=3).eval()
    assert model.head[1].in_features == 64 * 9
    faces = torch.randn(2, 1, 48, 48)
    assert model(faces).shape == (2, 7)
    # The same features in other cells give other logits; global averaging could not tell.
    swapped = torch.flip(model.features(faces), dims=(3,))
    head_in = torch.flatten(model.pool(swapped), 1)
    assert not torch.allclose(model.head(head_in), model(faces))
    # Other input sizes still reach the head's fixed width (the grid pools to 3x3).
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 7)


def test_baseline_head_grid_one_is_the_global_average():
    torch.manual_seed(0)
    default = create_model("baseline_cnn", 7, 1, width=0.125)
    torch.manual_seed(0)
    explicit = create_model("baseline_cnn", 7, 1, width=0.125, head_grid=1)
    for (name, a), (_, b) in zip(default.state_dict().items(),
                                 explicit.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_resnet_stages_halve_the_map_after_the_pooled_stem():
    model = create_model("resnet_cnn", 7, 1, width=0.125, blocks=[1, 2, 1, 1]).eval()
    maps = []
    for layer in model.features:
        layer.register_forward_hook(lambda _m, _i, out: maps.append(tuple(out.shape[1:])))
    model(torch.randn(1, 1, 48, 48))
    assert maps[:3] == [(8, 48, 48)] * 3  # the stem's conv, BN and ReLU read the whole face
    # the pool hands 24x24 to the first stage; then one entry per residual block
    assert maps[3:] == [(8, 24, 24), (8, 24, 24), (16, 12, 12), (16, 12, 12), (32, 6, 6),
                        (64, 3, 3)]
    full = create_model("resnet_cnn", 7, 1, width=0.125, stem_pool=False).eval()
    assert full.features(torch.randn(1, 1, 48, 48)).shape[-1] == 6


def test_resnet_blocks_start_as_their_shortcuts():
    block = create_model("resnet_cnn", 7, 1, width=0.125).features[4]
    x = torch.randn(2, 8, 24, 24).relu()
    # The last batch norm's scale starts at zero, so a fresh block passes x through.
    assert torch.allclose(block.eval()(x), x)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"blocks": [2, 2, 2]}, "4 counts"),
    ({"blocks": [2, 0, 2, 2]}, "each >= 1"),
    ({"width": 0.5, "channels": [8, 16, 32, 64]}, "not both"),
    ({"depth": 18}, "depth"),
])
def test_resnet_settings_that_cannot_be_built_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        create_model("resnet_cnn", 7, 1, **kwargs)
