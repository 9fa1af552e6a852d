import numpy as np
import pytest
import tensorflow as tf

from deeplab.backbones.common import atrous_plan
from deeplab.layers import BatchNorm, resize_bilinear, scale_dimension


def _align_corners_reference(x, out_h, out_w):
    """Bilinear interpolation with corner pixels aligned, written out in numpy."""
    _, h, w, _ = x.shape
    ys = np.linspace(0, h - 1, out_h) if out_h > 1 else np.zeros(1)
    xs = np.linspace(0, w - 1, out_w) if out_w > 1 else np.zeros(1)
    out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
    for i, y in enumerate(ys):
        y0 = int(np.floor(y)); y1 = min(y0 + 1, h - 1); dy = y - y0
        for j, xx in enumerate(xs):
            x0 = int(np.floor(xx)); x1 = min(x0 + 1, w - 1); dx = xx - x0
            out[:, i, j] = ((1 - dy) * (1 - dx) * x[:, y0, x0] + (1 - dy) * dx * x[:, y0, x1]
                            + dy * (1 - dx) * x[:, y1, x0] + dy * dx * x[:, y1, x1])
    return out


def test_resize_bilinear_aligns_corners():
    x = np.random.RandomState(0).randn(2, 5, 7, 3).astype(np.float32)
    got = resize_bilinear(tf.constant(x), [17, 13]).numpy()
    np.testing.assert_allclose(got, _align_corners_reference(x, 17, 13), atol=1e-5)
    # corners are copied exactly
    np.testing.assert_allclose(got[:, [0, -1]][:, :, [0, -1]], x[:, [0, -1]][:, :, [0, -1]], atol=1e-6)


def test_scale_dimension_matches_deeplab_grid_sizes():
    assert scale_dimension(513, 1 / 4) == 129
    assert scale_dimension(513, 1 / 16) == 33
    assert scale_dimension(513, 1 / 8) == 65
    assert scale_dimension(641, 1 / 16) == 41 and scale_dimension(641, 1 / 4) == 161


def test_atrous_plan_turns_strides_into_rates():
    strides = [[2], [2], [2], [1] * 2, [2], [1]]  # xception_65 blocks past the stem
    assert atrous_plan(strides, 8) == [[(2, 1)], [(2, 1)], [(2, 1)], [(1, 1)] * 2, [(1, 1)], [(1, 2)]]
    assert atrous_plan(strides, 4) == [[(2, 1)], [(2, 1)], [(1, 1)], [(1, 2)] * 2, [(1, 2)], [(1, 4)]]
    assert atrous_plan(strides, 16) == [[(2, 1)], [(2, 1)], [(2, 1)], [(1, 1)] * 2, [(2, 1)], [(1, 1)]]
    with pytest.raises(ValueError, match="cannot be reached"):
        atrous_plan(strides, 64)


def test_batch_norm_without_batch_statistics_uses_moving_averages_in_training():
    x = np.random.RandomState(1).randn(4, 3, 3, 2).astype(np.float32) * 3 + 5
    frozen = BatchNorm(use_batch_statistics=False, epsilon=1e-3)
    tuned = BatchNorm(use_batch_statistics=True, epsilon=1e-3)
    frozen_out = frozen(x, training=True).numpy()
    tuned_out = tuned(x, training=True).numpy()
    # moving averages start at mean 0 / variance 1: the frozen layer is almost the identity
    np.testing.assert_allclose(frozen_out, x / np.sqrt(1 + 1e-3), rtol=1e-5)
    np.testing.assert_allclose(tuned_out.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    assert frozen.gamma.trainable and frozen.beta.trainable  # slim keeps them trainable
    np.testing.assert_allclose(frozen.moving_mean.numpy(), 0)


def test_synchronized_batch_norm_uses_the_statistics_of_all_replicas(two_cpu_strategy):
    """--sync_batch_norm: two replicas with different data normalise with the global batch statistics."""
    strategy = two_cpu_strategy
    with strategy.scope():
        synced = BatchNorm(synchronized=True, epsilon=1e-6)
        synced.build((None, 1, 1, 1))
    values = [np.full((2, 1, 1, 1), 0.0, np.float32), np.full((2, 1, 1, 1), 2.0, np.float32)]
    inputs = strategy.experimental_distribute_values_from_function(lambda ctx: values[ctx.replica_id_in_sync_group])

    @tf.function
    def run(x):
        return strategy.run(lambda v: synced(v, training=True), args=(x,))

    out = [t.numpy() for t in strategy.experimental_local_results(run(inputs))]
    # global mean 1, variance 1: replica 0 -> -1, replica 1 -> +1 (unsynchronised, both would be 0)
    np.testing.assert_allclose(out[0], -1.0, atol=1e-3)
    np.testing.assert_allclose(out[1], 1.0, atol=1e-3)
