import numpy as np
import pytest

from conftest import spheroid_stack
from phenorank.core import synthetic_plate
from phenorank.core.preprocess import (PreprocessError, PreprocessParams, preprocess_stack, select_layers,
                                       sharpness, square_crop_origin, unit_scale)


def gradient_sharpness(layer):  # the seed's definition, written out with numpy
    gy, gx = np.gradient(layer.astype(np.float64))
    return float(np.mean(np.sqrt(gx * gx + gy * gy)))


def test_sharpness_is_mean_gradient_magnitude():
    ramp = np.tile(np.arange(10, dtype=np.float32) * 3.0, (6, 1))  # gx = 3 everywhere, gy = 0
    assert sharpness(ramp) == pytest.approx(3.0)
    assert sharpness(np.ones((5, 5), np.uint16)) == 0.0
    stack = spheroid_stack(n_layers=5, height=120, width=150, radius=30, sharp_layer=3)
    ours = [sharpness(layer) for layer in stack]
    numpy_way = [gradient_sharpness(layer) for layer in stack]
    assert np.argsort(ours).tolist() == np.argsort(numpy_way).tolist()
    assert np.allclose(ours, numpy_way, rtol=1e-5)


def test_five_layers_keep_the_three_sharpest_in_focal_order():
    assert select_layers(spheroid_stack(n_layers=5, sharp_layer=1)) == [0, 1, 2]
    assert select_layers(spheroid_stack(n_layers=5, sharp_layer=4)) == [2, 3, 4]


def test_one_layer_is_duplicated_and_two_or_seven_layers_are_refused():
    assert select_layers(np.zeros((1, 8, 8), np.uint16)) == [0, 0, 0]
    with pytest.raises(PreprocessError, match="2 focal layers: expected 1 or 3 to 5"):
        select_layers(np.zeros((2, 8, 8), np.uint16))
    with pytest.raises(PreprocessError, match="7 focal layers.*--max-layers"):
        select_layers(np.zeros((7, 8, 8), np.uint16))
    assert select_layers(spheroid_stack(n_layers=7, sharp_layer=6), max_layers=7) == [4, 5, 6]


def test_crop_is_centred_on_the_dark_object_and_clamped_inside():
    stack = spheroid_stack(height=60, width=90, center=(30, 60), radius=10)
    crop = preprocess_stack(stack, PreprocessParams(size=30))
    assert (crop.crop_y, crop.crop_side) == (0, 60)
    assert crop.crop_x == 30  # centre 60 - 30, inside [0, 90 - 60]
    near_edge = preprocess_stack(spheroid_stack(height=60, width=90, center=(30, 80), radius=8))
    assert near_edge.crop_x == 30  # clamped: the square may not leave the image
    assert square_crop_origin((0, 0, 10, 10), 60, 90) == (0, 0, 60)
    tall = preprocess_stack(spheroid_stack(height=90, width=60, center=(70, 30), radius=8))
    assert (tall.crop_x, tall.crop_y, tall.crop_side) == (0, 30, 60)


@pytest.fixture(scope="module")
def large_spheroids():
    """Six realistic 1000x1200 stacks (the synthetic plate's renderer): off-centre, with and
    without debris, 1, 3 and 5 layers."""
    rng = np.random.default_rng(11)
    height, width = 1000, 1200
    stacks = []
    for i, (condition, effect, layers) in enumerate([("control", 0.0, 3), ("exploded", 0.97, 3),
                                                     ("single_dose", 0.6, 5), ("exploded", 0.95, 1),
                                                     ("screen", 0.3, 3), ("exploded", 0.99, 5)]):
        center = (rng.uniform(0.3, 0.7) * height, (0.2 + 0.12 * i) * width)
        look = synthetic_plate.spheroid_look(rng, height, effect, 10, condition)
        image = synthetic_plate.render_spheroid(rng, height, width, center, **look)
        stacks.append(synthetic_plate.focal_stack(rng, image, layers))
    return stacks


def test_crop_found_on_a_reduced_image_matches_full_resolution(large_spheroids):
    reduced = PreprocessParams(size=96, locate_side=250)  # factor 4 on 1000 px, as 2054 -> 512
    full = PreprocessParams(size=96, locate_side=None)
    for stack in large_spheroids:
        fast, exact = preprocess_stack(stack, reduced), preprocess_stack(stack, full)
        if fast.layers_used != exact.layers_used:  # sharpness from a sample: only layers as sharp as the chosen
            scores = [gradient_sharpness(layer) for layer in stack]
            third = sorted(scores)[-3]
            assert all(scores[i] >= 0.99 * third for i in fast.layers_used), (fast.layers_used, scores)
            continue
        assert abs(fast.crop_x - exact.crop_x) <= 4 and abs(fast.crop_y - exact.crop_y) <= 4
        difference = np.abs(fast.pixels.astype(int) - exact.pixels.astype(int))
        assert difference.mean() < 0.01 * 65535


def test_sharpness_on_a_sample_of_pixels_orders_layers_as_at_full_resolution(large_spheroids):
    from phenorank.core.preprocess import sampled_sharpness

    deep = [s for s in large_spheroids if len(s) == 5]
    for stack in deep:
        full = [gradient_sharpness(layer) for layer in stack]
        sampled = [sampled_sharpness(layer, 4) for layer in stack]
        assert sampled == pytest.approx(full, rel=0.01)
    # the three sharpest of layers of clearly different focus are found; the first stack's layers
    # differ by 0.4% (pixel noise dominates its gradients), less than a 1/16 sample tells apart
    assert sorted(np.argsort(sampled)[-3:]) == sorted(np.argsort(full)[-3:]) and np.ptp(full) / np.mean(full) > 0.03
    assert sampled_sharpness(stack[0], 1) == pytest.approx(sharpness(stack[0]))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float64])
def test_sampled_sharpness_is_the_plain_expression_to_the_last_bit(dtype):
    from phenorank.core.preprocess import sampled_sharpness

    rng = np.random.default_rng(3)
    layer = rng.integers(0, np.iinfo(dtype).max, (203, 157)).astype(dtype) if dtype != np.float64 \
        else rng.random((203, 157))
    rows, cols = slice(2, 202, 4), slice(2, 156, 4)
    gx = layer[rows, slice(3, 157, 4)].astype(np.float32) - layer[rows, slice(1, 155, 4)]
    gy = layer[slice(3, 203, 4), cols].astype(np.float32) - layer[slice(1, 201, 4), cols]
    assert sampled_sharpness(layer, 4) == float(np.sqrt(gx ** 2 + gy ** 2).mean() / 2)


def test_pixels_equal_a_float_area_average_of_the_same_crop(large_spheroids):
    import cv2

    worst = []
    for stack in large_spheroids:  # 1000 -> 500 (binned 2 x 2) -> 48: as 2054 -> 1027 -> 96
        crop = preprocess_stack(stack, PreprocessParams(size=48))
        side, x0, y0 = crop.crop_side, crop.crop_x, crop.crop_y
        reference = np.stack([cv2.resize(stack[i, y0:y0 + side, x0:x0 + side].astype(np.float64), (48, 48),
                                         interpolation=cv2.INTER_AREA) for i in crop.layers_used])
        levels = np.abs(crop.pixels - reference)
        worst.append((levels.max(), levels.mean()))
    assert max(w[0] for w in worst) < 257 / 2 and max(w[1] for w in worst) < 8  # 257 = one 8-bit step


def test_sixteen_bit_information_is_kept():
    rng = np.random.default_rng(1)
    stack = spheroid_stack(n_layers=3).astype(np.int64)
    stack = np.clip(stack + rng.integers(-40, 40, stack.shape), 0, 65535).astype(np.uint16)
    crop = preprocess_stack(stack, PreprocessParams(size=48))
    assert crop.pixels.dtype == np.uint16 and crop.pixels.shape == (3, 48, 48)
    assert len(np.unique(crop.pixels)) > 2000  # far more than the 256 levels of an 8-bit path


def test_eight_bit_and_float_inputs_are_scaled_to_the_same_range():
    as16 = preprocess_stack(spheroid_stack(dtype=np.uint16, seed=2)).pixels.astype(float)
    as8 = preprocess_stack(spheroid_stack(dtype=np.uint8, seed=2)).pixels.astype(float)
    asf = preprocess_stack(spheroid_stack(dtype=np.float32, seed=2)).pixels.astype(float)
    as64 = preprocess_stack(spheroid_stack(dtype=np.float64, seed=2)).pixels.astype(float)
    assert np.abs(as16 - as8).max() < 65535 / 255  # 8-bit values land on the 16-bit scale (x257)
    assert np.abs(as16 - asf).max() <= 1 and np.abs(asf - as64).max() <= 1
    assert unit_scale(np.zeros(1, np.uint8)) == 257.0 and unit_scale(np.zeros(1, np.uint16)) == 1.0


def test_big_endian_input_is_read_by_value():
    stack = spheroid_stack(seed=4)
    assert np.array_equal(preprocess_stack(stack.astype(">u2")).pixels, preprocess_stack(stack).pixels)


@pytest.mark.parametrize("stack, message", [
    (np.full((3, 20, 20), 40000, np.uint16), "uniform"),
    (np.zeros((3, 20, 20), np.uint16), "uniform"),
    (np.array([[[np.nan, 0.5], [0.2, 0.1]]], np.float32), "1 NaN or infinite"),
    (np.full((1, 4, 4), 3.0, np.float32), r"expected floats in \[0, 1\]"),
    (np.zeros((1, 4, 4), np.int32), "unsupported pixel type int32"),
    (np.zeros((1, 4, 4), np.complex64), "unsupported pixel type complex64"),
    (np.zeros((4, 4), np.uint16), "expected a stack"),
    (np.zeros((2, 3, 4, 4), np.uint16), "expected a stack"),
])
def test_unusable_images_raise_a_clear_error(stack, message):
    with pytest.raises(PreprocessError, match=message):
        preprocess_stack(stack)


def test_otsu_from_opencv_histogram_equals_skimage():
    from skimage.filters import threshold_otsu

    from phenorank.core.preprocess import otsu_threshold

    rng = np.random.default_rng(0)
    for k in range(200):
        image = np.clip(rng.normal(rng.uniform(50, 200), rng.uniform(3, 60), (40, 50)), 0, 255).astype(np.uint8)
        image[5:5 + k % 20, 5:25] = rng.integers(0, 80)
        assert otsu_threshold(image) == threshold_otsu(image)
