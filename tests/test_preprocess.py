import numpy as np
import pytest

from conftest import spheroid_stack
from phenorank.core.preprocess import (PreprocessError, PreprocessParams, preprocess_stack, select_layers,
                                       sharpness, square_crop_origin, to_unit_float)


def test_sharpness_is_mean_gradient_magnitude():
    ramp = np.tile(np.arange(10, dtype=np.float32) * 3.0, (6, 1))  # gx = 3 everywhere, gy = 0
    assert sharpness(ramp) == pytest.approx(3.0)
    assert sharpness(np.ones((5, 5))) == 0.0


def test_five_layers_keep_the_three_sharpest_in_focal_order():
    stack = spheroid_stack(n_layers=5, sharp_layer=1).astype(np.float32) / 65535
    chosen, used = select_layers(stack)
    assert used == [0, 1, 2]  # layers 0 and 2 are one blur step from the sharp layer 1
    assert np.array_equal(chosen, stack[[0, 1, 2]])


def test_one_layer_is_duplicated_and_two_layers_are_refused():
    one = np.random.default_rng(0).random((1, 8, 8), dtype=np.float32)
    chosen, used = select_layers(one)
    assert chosen.shape == (3, 8, 8) and used == [0, 0, 0]
    assert np.array_equal(chosen[0], chosen[2])
    with pytest.raises(PreprocessError, match="2 focal layers"):
        select_layers(np.zeros((2, 8, 8), np.float32))


def test_crop_is_centred_on_the_dark_object_and_clamped_inside():
    stack = spheroid_stack(height=60, width=90, center=(30, 60), radius=10)
    crop = preprocess_stack(stack, PreprocessParams(size=30))
    assert (crop.crop_y, crop.crop_side) == (0, 60)
    assert crop.crop_x == 30  # centre 60 - 30, inside [0, 90 - 60]
    near_edge = preprocess_stack(spheroid_stack(height=60, width=90, center=(30, 80), radius=8))
    assert near_edge.crop_x == 30  # clamped: the square may not leave the image
    assert square_crop_origin((0, 0, 10, 10), 60, 90) == (0, 0, 60)


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
    assert abs(as16.mean() - as8.mean()) / 65535 < 0.005
    assert abs(as16.mean() - asf.mean()) / 65535 < 0.001


@pytest.mark.parametrize("stack, message", [
    (np.full((3, 20, 20), 40000, np.uint16), "uniform"),
    (np.zeros((3, 20, 20), np.uint16), "uniform"),
    (np.array([[[np.nan, 0.5], [0.2, 0.1]]], np.float32), "NaN"),
    (np.full((1, 4, 4), 3.0, np.float32), r"expected \[0, 1\]"),
    (np.zeros((1, 4, 4), np.int32), "unsupported pixel type"),
    (np.zeros((4, 4), np.uint16), "expected a stack"),
])
def test_unusable_images_raise_a_clear_error(stack, message):
    with pytest.raises(PreprocessError, match=message):
        preprocess_stack(stack)


def test_unit_float_of_uint16_is_value_over_65535():
    assert to_unit_float(np.array([[[0, 65535, 32768]]], np.uint16))[0, 0, 2] == pytest.approx(32768 / 65535)
