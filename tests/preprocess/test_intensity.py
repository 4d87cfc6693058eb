"""Contrast stretching, depth windowing and seed 001 enhancement against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from components.preprocess import intensity


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])  # uint8 takes the radix-sort path
def test_colour_stretch_is_piecewise_linear_between_percentiles(dtype):
    values = np.arange(100).astype(dtype).reshape(1, 1, 10, 10)
    out = intensity.stretch_color(values, 1, 99)
    # numpy's linear percentiles of 0..99: p1 = 0.99, p99 = 98.01.
    low, high = 0.99, 98.01
    assert out[0, 0, 0, 0] == 0.0  # 0 lies below the low breakpoint: clipped
    assert out[0, 0, 9, 9] == 255.0  # 99 lies above the high breakpoint: clipped
    np.testing.assert_allclose(out[0, 0, 5, 0], (50 - low) / (high - low) * 255, rtol=1e-5)
    np.testing.assert_allclose(out[0, 0, 2, 5], (25 - low) / (high - low) * 255, rtol=1e-5)


def test_colour_stretch_is_per_channel_and_leaves_flat_channels_alone():
    batch = np.zeros((1, 2, 2, 2), np.float32)
    batch[0, 0] = [[10, 20], [30, 40]]
    batch[0, 1] = 77
    out = intensity.stretch_color(batch, 0, 100)
    np.testing.assert_allclose(out[0, 0], [[0, 85], [170, 255]], rtol=1e-6)
    np.testing.assert_array_equal(out[0, 1], np.full((2, 2), 77.0))


def test_depth_window_maps_near_to_bright_and_keeps_holes_black():
    depth = np.array([[[[0, 950, 1000, 1050],
                        [900, 1000, 1000, 1100],
                        [1000, 1000, 1000, 0],
                        [850, 1000, 1200, 1000]]]], dtype=np.float32)
    out = intensity.stretch_depth(depth, 100)
    # Median of the valid centre pixels is 1000: window 900..1100, near (900) = 255.
    expected = np.array([[0, 191.25, 127.5, 63.75],
                         [255, 127.5, 127.5, 0],
                         [127.5, 127.5, 127.5, 0],
                         [255, 127.5, 0, 127.5]])
    np.testing.assert_allclose(out[0, 0], expected, atol=1e-4)


def _reference_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian with mirrored (reflect-101) borders, written out in numpy."""
    radius = int(np.ceil(2 * sigma))
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    taps /= taps.sum()
    padded = np.pad(image, radius, mode="reflect")
    height, width = image.shape
    across = sum(taps[k] * padded[:, k : k + width] for k in range(2 * radius + 1))
    return sum(taps[k] * across[k : k + height] for k in range(2 * radius + 1))


def test_enhancement_matches_the_unsharp_mask_formula():
    rng = np.random.default_rng(3)
    image = rng.uniform(60, 200, (12, 12)).astype(np.float32)
    a, b, sigma = 0.8, 1.0, 1.5
    out = intensity.enhance(image[None, None], sigma=sigma, a=a, b=b, reference_size=12)
    expected = np.clip(a * (image - _reference_blur(image, sigma)) + b * image, 0, 255)
    np.testing.assert_allclose(out[0, 0], expected, atol=1e-3)


def test_enhancement_leaves_flat_images_unchanged_and_clips_overshoot():
    flat = np.full((1, 1, 8, 8), 120.0, np.float32)
    np.testing.assert_allclose(intensity.enhance(flat, sigma=1.5, a=1, b=1), flat, atol=1e-4)
    edge = np.zeros((1, 1, 8, 8), np.float32)
    edge[..., 4:] = 255.0
    out = intensity.enhance(edge, sigma=1.5, a=1, b=1)
    assert out.max() == 255.0 and out.min() == 0.0  # overshoot on both sides is clipped


def test_normalise_divides_by_255_into_float16():
    out = intensity.normalise(np.array([0.0, 127.5, 255.0]))
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, np.array([0.0, 0.5, 1.0], np.float16))
