"""FLOPs read from a traced graph equal the hand count for convolutions, depthwise convolutions, matmuls and
einsums, forward and backward."""
import keras
import numpy as np
import tensorflow as tf

from wss_tf.graph_cost import count_flops


def test_flops_of_a_small_network_forward_and_backward_equal_the_hand_count():
    model = keras.Sequential([
        keras.Input((10, 12, 3)),
        keras.layers.Conv2D(8, 3, padding="same", use_bias=False),  # 2*2*10*12*8 * 3*3*3
        keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False),  # 2*2*5*6*8 * 3*3
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5, use_bias=False),  # 2*2*5 * 8
    ])
    images = tf.zeros((2, 10, 12, 3))
    conv, depthwise, dense = 2 * 2 * 10 * 12 * 8 * 27, 2 * 2 * 5 * 6 * 8 * 9, 2 * 2 * 5 * 8

    forward = tf.function(lambda x: model(x)).get_concrete_function(images)
    count = count_flops(forward.graph)
    assert count.total == conv + depthwise + dense and not count.unknown_shapes

    @tf.function
    def gradients(x):
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(model(x))
        return y, tape.gradient(y, model.trainable_variables)

    count = count_flops(gradients.get_concrete_function(images).graph)
    # Every kernel gets its filter gradient; inputs get theirs except the images' (not watched: the graph holds
    # that op, but nothing reads it and it never runs).
    assert count.by_type["Conv2DBackpropFilter"] == conv and "Conv2DBackpropInput" not in count.by_type
    assert count.by_type["DepthwiseConv2dNativeBackpropInput"] == depthwise
    assert count.by_type["DepthwiseConv2dNativeBackpropFilter"] == depthwise
    assert count.by_type["MatMul"] == 3 * dense  # forward, input gradient, kernel gradient
    assert count.total == 2 * conv + 3 * depthwise + 3 * dense


def test_einsum_and_batch_matmul_flops():
    a, b = tf.zeros((2, 6, 4)), tf.zeros((2, 4, 5))
    graph = tf.function(lambda a, b: (tf.einsum("bik,bkj->bij", a, b), tf.matmul(a, b))).get_concrete_function(
        a, b).graph
    count = count_flops(graph)
    assert count.by_type["Einsum"] == 2 * 2 * 6 * 4 * 5
    assert sum(v for k, v in count.by_type.items() if k.startswith("BatchMatMul")) == 2 * 2 * 6 * 4 * 5


def test_unknown_shapes_are_reported_not_guessed():
    graph = tf.function(lambda a: tf.matmul(a, a, transpose_b=True)).get_concrete_function(
        tf.TensorSpec([None, 3])).graph
    count = count_flops(graph)
    assert count.total == 0 and len(count.unknown_shapes) == 1
    assert np.isscalar(count.total)
