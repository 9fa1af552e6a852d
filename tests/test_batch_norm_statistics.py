import keras
import numpy as np
import tensorflow as tf

from wss_tf import batch_norm_statistics as bn_stats


def test_moving_statistics_become_the_average_of_the_batch_statistics():
    inputs = keras.Input((5, 5, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.99, name="bn")(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(0)
    batches = [tf.constant(rng.normal(i, 1 + i, (2, 5, 5, 3)), tf.float32) for i in range(3)]
    features = keras.Model(inputs, model.get_layer("conv").output)
    means = [np.mean(features(b).numpy(), axis=(0, 1, 2)) for b in batches]
    variances = [np.var(features(b).numpy(), axis=(0, 1, 2)) for b in batches]

    layers = bn_stats.moving_statistics_layers(model)
    assert [l.name for l in layers] == ["bn"]
    passes = bn_stats.reestimate(layers, lambda b: model(b, training=True), batches)
    assert passes == 3
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean(means, 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean(variances, 0), rtol=1e-3, atol=1e-5)
    assert bn.momentum == 0.99  # restored


def test_layers_that_always_use_moving_averages_are_left_out():
    from deeplab.layers import BatchNorm

    inputs = keras.Input((5, 5, 3))
    x = BatchNorm(use_batch_statistics=False, name="frozen")(inputs)
    x = BatchNorm(name="live")(x)
    model = keras.Model(inputs, x)
    assert [l.name for l in bn_stats.moving_statistics_layers(model)] == ["live"]
