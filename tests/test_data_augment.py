"""Augmentation presets: crop geometry read back from coordinate images, flips, normalization,
encoded == decoded inputs, and seeds. Images carry [r, c] = (row, col) so every output pixel says
where it came from."""
import numpy as np
import pytest
import tensorflow as tf

from bsgap.data import DataError, load_dataset
from bsgap.data.augment import (Preprocess, example_seed, inception_window, mishkin_short_side,
                                transform)
from bsgap.data.testing import coordinate_image, encode, synthetic_image

SEEDS = range(24)


def _run(image, preset, size, *, seed=0, train=True, **kw):
    p = Preprocess(augment=preset, image_size=size, **kw)
    shape = image.shape if isinstance(image, np.ndarray) else (None, None, 3)
    out = transform(tf.constant(image), example_seed(seed, 0, 0), p, train=train,
                    input_shape=shape)
    return out.numpy()


def _coords(out):
    """(rows, cols) coordinates of an output taken from a coordinate image, in pixels."""
    pixels = np.rint(out * 255).astype(int)
    return pixels[..., 0], pixels[..., 1]


def test_mishkin_train_is_a_128_crop_of_the_144_resize_and_flips():
    image = coordinate_image(144, 200)  # short side already 144: the resize is the identity
    offsets, flips = set(), set()
    for seed in SEEDS:
        rows, cols = _coords(_run(image, "mishkin", 128, seed=seed))
        assert rows.shape == (128, 128)
        r0, c_first, c_last = rows[0, 0], cols[0, 0], cols[0, -1]
        np.testing.assert_array_equal(rows, (r0 + np.arange(128))[:, None].repeat(128, 1))
        flipped = c_first > c_last
        c0 = c_last if flipped else c_first
        expected = c0 + np.arange(128)
        np.testing.assert_array_equal(cols[0], expected[::-1] if flipped else expected)
        assert 0 <= r0 <= 144 - 128 and 0 <= c0 <= 200 - 128
        offsets.add((r0, c0))
        flips.add(flipped)
    assert flips == {True, False} and len(offsets) > 10


def test_mishkin_eval_is_the_center_crop():
    rows, cols = _coords(_run(coordinate_image(144, 200), "mishkin", 128, train=False))
    assert (rows[0, 0], cols[0, 0], rows[-1, -1], cols[-1, -1]) == (8, 36, 135, 163)
    assert mishkin_short_side(128) == 144 and mishkin_short_side(224) == 252


def test_mishkin_resizes_the_short_side_for_any_input_size():
    for h, w in ((72, 100), (300, 180)):
        out = _run(synthetic_image(np.random.default_rng(0), h, w), "mishkin", 128)
        assert out.shape == (128, 128, 3) and 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("h,w", [(72, 100), (180, 250), (250, 160)])
def test_mishkin_resize_keeps_the_aspect(h, w):
    """On a coordinate image the output's source coordinates advance by 1/scale per pixel in both
    directions, scale = 144 / short side: a resize that distorts the aspect fails."""
    out = _run(coordinate_image(h, w), "mishkin", 128, train=False)
    rows, cols = out[..., 0] * 255, out[..., 1] * 255   # bilinear keeps linear ramps linear
    per_pixel = min(h, w) / 144
    inner = np.arange(8, 120)                            # away from edge clamping
    assert np.polyfit(inner, rows[inner, 64], 1)[0] == pytest.approx(per_pixel, rel=0.02)
    assert np.polyfit(inner, cols[64, inner], 1)[0] == pytest.approx(per_pixel, rel=0.02)
    # Centered: the middle output pixel comes from the middle of the image.
    assert rows[63:65, 64].mean() == pytest.approx((h - 1) / 2, abs=per_pixel)
    assert cols[64, 63:65].mean() == pytest.approx((w - 1) / 2, abs=per_pixel)


def test_cifar_is_a_crop_of_the_zero_padded_image():
    image = coordinate_image(32, 32)
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    flips = set()
    for seed in SEEDS:
        out = np.rint(_run(image, "cifar", 32, seed=seed) * 255).astype(np.uint8)
        matches = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
                   if np.array_equal(out, (lambda c: c[:, ::-1] if f else c)(
                       padded[dy:dy + 32, dx:dx + 32]))]
        assert len(matches) >= 1, "output is not a 32x32 window of the padded image"
        flips.add(matches[0][2])
    assert flips == {True, False}
    np.testing.assert_array_equal(_run(image, "cifar", 32, train=False), image / np.float32(255))


def test_inception_window_area_and_aspect():
    """Szegedy et al. (2015) crops: area fraction ~ U[0.08, 1] and aspect ~ log-U[3/4, 4/3], among
    windows that fit. Each window is inside the image and in range, and the 200 windows spread over
    the ranges (a crop that is always the whole image, or always square, fails)."""
    areas, aspects = [], []
    for seed in range(200):
        y, x, h, w = inception_window(300, 400, tf.constant([seed, 1], tf.int64)).numpy()
        assert 0 <= y and 0 <= x and y + h <= 300 and x + w <= 400
        areas.append(h * w / (300 * 400))
        aspects.append(w / h)
    areas, aspects = np.array(areas), np.array(aspects)
    assert np.all((0.08 - 0.01 <= areas) & (areas <= 1.0))
    assert np.all((3 / 4 - 0.05 <= aspects) & (aspects <= 4 / 3 + 0.05))
    assert areas.min() < 0.15 and areas.max() > 0.75
    assert 0.2 < np.mean(areas < 0.3) and 0.2 < np.mean(areas > 0.5)
    assert aspects.min() < 0.8 and aspects.max() > 1.25
    assert 0.3 < np.mean(aspects < 1.0) < 0.7


def test_inception_output_flips_and_eval_center_crop():
    image = coordinate_image(200, 250)
    flips = set()
    for seed in SEEDS:
        rows, cols = _coords(_run(image, "inception", 64, seed=seed))
        assert rows.shape == (64, 64)
        flips.add(cols[32, 0] > cols[32, -1])
    assert flips == {True, False}
    rows, cols = _coords(_run(image, "inception", 64, train=False))
    side = int(64 / (64 + 32) * 200)  # 133 px of the 200 px short side, centered
    top, left = (200 - side + 1) // 2, (250 - side + 1) // 2
    assert abs(rows[0, 0] - top) <= 1 and abs(cols[0, 0] - left) <= 1
    assert abs(rows[-1, -1] - (top + side - 1)) <= 1 and abs(cols[-1, -1] - (left + side - 1)) <= 1


@pytest.mark.parametrize("preset,size", [("mishkin", 128), ("inception", 64), ("none", 40)])
def test_encoded_png_equals_decoded_input(preset, size):
    image = synthetic_image(np.random.default_rng(1), 150, 170)
    for train in (True, False):
        a = _run(image, preset, size, seed=5, train=train)
        b = _run(encode(image, "PNG"), preset, size, seed=5, train=train)
        np.testing.assert_array_equal(a, b)


def test_scaled_jpeg_decode_is_close_to_full_decode():
    image = synthetic_image(np.random.default_rng(2), 600, 800)  # 1/4 scale still >= 144
    fast = _run(encode(image, quality=95), "mishkin", 128, train=False)
    full = _run(image, "mishkin", 128, train=False)
    assert np.abs(fast - full).mean() < 0.03


def test_normalization_and_seeds():
    image = synthetic_image(np.random.default_rng(3), 32, 32)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    out = _run(image, "none", None, train=False, pixel_mean=mean, pixel_std=std)
    expected = (image.astype(np.float32) / np.float32(255) - np.float32(mean)) / np.float32(std)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    a, b = _run(image, "cifar", 32, seed=1), _run(image, "cifar", 32, seed=1)
    np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, _run(image, "cifar", 32, seed=s)) for s in range(2, 6))


def test_bad_settings_name_the_value_and_the_choices(data_dir):
    with pytest.raises(ValueError, match=r"augment='fancy' is not one of \('none', 'cifar'"):
        Preprocess(augment="fancy")
    with pytest.raises(ValueError, match="augment='mishkin' needs image_size"):
        Preprocess(augment="mishkin")
    with pytest.raises(DataError, match=r"augment='cifar' needs images \(H, W, C\)"):
        load_dataset("mnist1d/small", data_dir=data_dir, augment="cifar", image_size=32)
    with pytest.raises(DataError, match=r"cache='disk' is not one of \('auto', 'memory', 'none'\)"):
        load_dataset("sklearn_digits", data_dir=data_dir, cache="disk")
