"""Building blocks shared by the backbones and the DeepLab head, named after their slim scopes.

Every weight-owning layer is named after its official TF1 variable scope with '/' replaced by '.'
(Keras 3 forbids '/' in layer names), so `deeplab.checkpoint` can map official variables to Keras
variables by a fixed rule. A conv's batch norm is named `<conv>.BatchNorm`, as slim names it.
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf


def scale_dimension(dim: int, scale: float) -> int:
    """DeepLab's `scale_dimension`: the grid size of a `dim`-pixel side at `scale` (e.g. 513 -> 129 at 1/4)."""
    return int((float(dim) - 1.0) * scale + 1.0)


def resize_bilinear(images, size):
    """Bilinear resize with align_corners=True, DeepLab's `utils.resize_bilinear` (keeps the input dtype)."""
    resized = tf.raw_ops.ResizeBilinear(images=images, size=size, align_corners=True, half_pixel_centers=False)
    return tf.cast(resized, images.dtype)


class ResizeBilinear(keras.layers.Layer):
    """Resizes `inputs` to the spatial size of `like` with align_corners=True.

    Used instead of keras.layers.Resizing, which has no align_corners and, inside a model called without
    `training=`, flips later batch norms into training mode (see DESIGN.md).
    """

    def call(self, inputs, like):
        shape = tf.shape(like)
        return resize_bilinear(inputs, shape[1:3])

    def compute_output_shape(self, inputs_shape, like_shape):
        return (inputs_shape[0], like_shape[1], like_shape[2], inputs_shape[3])


class BatchNorm(keras.layers.BatchNormalization):
    """slim.batch_norm as DeepLab configures it.

    With `use_batch_statistics=False` (the official `fine_tune_batch_norm=False`) it normalises with the moving
    averages even in training mode while gamma/beta stay trainable, as slim does with is_training=False.
    """

    def __init__(self, *, use_batch_statistics: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.use_batch_statistics = use_batch_statistics

    def call(self, inputs, training=None, mask=None):
        if not self.use_batch_statistics:
            training = False
        return super().call(inputs, training=training, mask=mask)

    def get_config(self):
        return {**super().get_config(), "use_batch_statistics": self.use_batch_statistics}


@dataclasses.dataclass(frozen=True)
class NormParams:
    """Batch-norm and weight-decay settings of one part of the network (backbone, ASPP/decoder)."""

    decay: float
    epsilon: float
    weight_decay: float = 4e-5
    use_batch_statistics: bool = True  # official fine_tune_batch_norm
    synchronized: bool = False  # cross-replica batch norm (the official code does not synchronise)

    def batch_norm(self, name: str) -> BatchNorm:
        return BatchNorm(
            momentum=self.decay,
            epsilon=self.epsilon,
            center=True,
            scale=True,
            use_batch_statistics=self.use_batch_statistics,
            synchronized=self.synchronized,
            name=name,
        )

    def l2(self):
        """slim's l2_regularizer(wd) adds wd*sum(w^2)/2; Keras L2(l) adds l*sum(w^2)."""
        return keras.regularizers.L2(self.weight_decay / 2.0) if self.weight_decay else None


def fixed_padding(x, kernel_size: int, rate: int, name: str):
    """Pads so a VALID strided conv sees the same window as the official `fixed_padding`."""
    effective = kernel_size + (kernel_size - 1) * (rate - 1)
    total = effective - 1
    beg, end = total // 2, total - total // 2
    return keras.layers.ZeroPadding2D(((beg, end), (beg, end)), name=name)(x)


def conv_bn(x, filters: int, kernel_size: int, *, name: str, norm: NormParams, initializer,
            stride: int = 1, rate: int = 1, activation: bool = True, explicit_padding: bool = False):
    """slim.conv2d with a batch norm and optional ReLU; `explicit_padding` is resnet_utils.conv2d_same."""
    padding = "same"
    if explicit_padding and stride > 1:
        x = fixed_padding(x, kernel_size, rate, name + ".pad")
        padding = "valid"
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=stride, dilation_rate=rate, padding=padding, use_bias=False,
        kernel_initializer=initializer, kernel_regularizer=norm.l2(), name=name,
    )(x)
    x = norm.batch_norm(name + ".BatchNorm")(x)
    if activation:
        x = keras.layers.ReLU(name=name + ".relu")(x)
    return x


def depthwise_bn(x, kernel_size: int, *, name: str, norm: NormParams, initializer,
                 stride: int = 1, rate: int = 1, activation: bool = True, explicit_padding: bool = False):
    """slim.separable_conv2d(num_outputs=None) + batch norm: the `_depthwise` half of a split separable conv.

    Depthwise kernels carry no weight decay, as in the official model.
    """
    padding = "same"
    if explicit_padding and stride > 1:
        x = fixed_padding(x, kernel_size, rate, name + ".pad")
        padding = "valid"
    x = keras.layers.DepthwiseConv2D(
        kernel_size, strides=stride, dilation_rate=rate, padding=padding, use_bias=False,
        depthwise_initializer=initializer, name=name,
    )(x)
    x = norm.batch_norm(name + ".BatchNorm")(x)
    if activation:
        x = keras.layers.ReLU(name=name + ".relu")(x)
    return x


def truncated_normal(stddev: float):
    return keras.initializers.TruncatedNormal(stddev=stddev)
