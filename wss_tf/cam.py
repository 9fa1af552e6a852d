"""The classification head, CAM, and the self-attention Grad-CAM (SGC) of PseudoSeg (core/train_utils_core.py).

Variables carry the official names through their layer names: `{scope}/logits/{weights,biases}` for the head,
`hyper_column/{key,query}/weights` and `pixel_normalization/{weights,BatchNorm/...}` for the SGC.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf

from deeplab.layers import BatchNorm, resize_bilinear


class ClassifierHead(keras.layers.Layer):
    """Global average pooling, dropout (xception only, keep 0.5), 1x1 conv to the K foreground classes.

    The official head is `extract_features(..., global_pool=True, num_classes=K)` on the shared backbone: the
    pooling covers the whole crop, padding included. Dropout is active iff training and fine-tuning batch norm,
    as the slim arg scope passes is_training=(is_training and fine_tune_batch_norm).
    """

    def __init__(self, num_foreground: int, *, scope: str, dropout: bool, fine_tune_batch_norm: bool = True,
                 weight_decay: float = 4e-5, cam_weights: str = "official", **kwargs):
        # float32 under every precision policy: it pools, and its kernel is the CAM's weights.
        super().__init__(name=f"{scope}.classifier_head", **{"dtype": "float32", **kwargs})
        if cam_weights not in ("official", "kernel"):
            raise ValueError(f"cam_weights must be 'official' or 'kernel', got {cam_weights!r}")
        init = (keras.initializers.TruncatedNormal(stddev=0.09) if dropout
                else keras.initializers.HeNormal())  # xception_arg_scope / resnet_arg_scope
        self.use_dropout = dropout
        self.fine_tune_batch_norm = fine_tune_batch_norm
        self.cam_weights = cam_weights
        self.seed_generator = keras.random.SeedGenerator(0)
        self.conv = keras.layers.Conv2D(
            num_foreground, 1, use_bias=True, kernel_initializer=init,
            kernel_regularizer=keras.regularizers.L2(weight_decay / 2) if weight_decay else None,
            name=f"{scope}.logits", dtype="float32")

    def call(self, features, training=False):
        """(logits [B,K], cam_kernel [C_feat,K]).

        `cam_kernel` is what the official per-class gradient yields: the kernel, or, when dropout is active, the
        kernel times the dropout mask averaged over the batch (the official mean over a list-packed gradient
        mixes the images' masks; cam_weights="kernel" uses the plain kernel, the mask's expectation).
        """
        pooled = tf.reduce_mean(tf.cast(features, tf.float32), axis=[1, 2], keepdims=True)
        if self.use_dropout and training and self.fine_tune_batch_norm:
            keep = keras.random.uniform(tf.shape(pooled), seed=self.seed_generator) < 0.5
            mask = tf.cast(keep, tf.float32) / 0.5
            pooled = pooled * mask
            logits = self.conv(pooled)[:, 0, 0, :]
            if self.cam_weights == "official":
                return logits, self.conv.kernel[0, 0] * tf.reduce_mean(mask, axis=[0, 1, 2])[:, tf.newaxis]
            return logits, self.conv.kernel[0, 0]
        logits = self.conv(pooled)[:, 0, 0, :]
        return logits, self.conv.kernel[0, 0]


def class_activation_map(features, kernel, image_labels):
    """The official "Grad-CAM", computed in closed form.

    For a head that is linear after global average pooling, d logit_c / d F is W[:, c] / (h*w) at every
    position, so Grad-CAM reduces to CAM: ReLU(F . W_c), masked by the image-level labels, divided by its
    spatial max per (image, class) (0 stays 0). Stop-gradient, as the official code. [B,h,w,Ch] -> [B,h,w,K].
    """
    cam = tf.nn.relu(tf.einsum("bhwc,ck->bhwk", tf.cast(features, tf.float32), tf.cast(kernel, tf.float32)))
    cam = cam * tf.cast(image_labels, tf.float32)[:, tf.newaxis, tf.newaxis, :]
    peak = tf.reduce_max(cam, axis=[1, 2], keepdims=True)
    return tf.stop_gradient(tf.math.divide_no_nan(cam, peak))


def nearest_resize(mask, size):
    """TF1 nearest neighbour with align_corners=False (index floor(i * in / out)), for valid masks."""
    return tf.raw_ops.ResizeNearestNeighbor(images=mask, size=size, align_corners=False, half_pixel_centers=False)


class SelfAttentionGradCAM(keras.layers.Layer):
    """SGC (compute_self_att_v2, att_v2=True): propagates the CAM over a hypercolumn's pixel affinities.

    hypercolumn (stop-gradient) -> key, query 1x1 convs -> softmax(QK^T / sqrt(d)) with -1e9 where the query or
    the key is invalid -> A . CAM + CAM -> background 2 - max -> 1x1 conv -> batch norm without scale that always
    normalises with the batch statistics. No weight decay. Output: SGC logits [B,h,w,C].
    """

    def __init__(self, num_classes: int, attention_dim: int = 128, **kwargs):
        super().__init__(name="sgc", **{"dtype": "float32", **kwargs})  # float32 under every precision policy
        glorot = keras.initializers.GlorotUniform
        self.attention_dim = attention_dim
        self.key = keras.layers.Conv2D(attention_dim, 1, use_bias=False, kernel_initializer=glorot(),
                                       name="hyper_column.key", dtype="float32")
        self.query = keras.layers.Conv2D(attention_dim, 1, use_bias=False, kernel_initializer=glorot(),
                                         name="hyper_column.query", dtype="float32")
        self.score = keras.layers.Conv2D(num_classes, 1, use_bias=False, kernel_initializer=glorot(),
                                         name="pixel_normalization", dtype="float32")
        self.norm = BatchNorm(momentum=0.999, epsilon=1e-3, center=True, scale=False,
                              name="pixel_normalization.BatchNorm", dtype="float32")

    def propagate(self, hypercolumn, cam, valid):
        """The attention part: A . CAM + CAM with the background channel, before the 1x1 conv and batch norm."""
        shape = tf.shape(cam)
        batch, h, w = shape[0], shape[1], shape[2]
        hypercolumn = tf.stop_gradient(tf.cast(hypercolumn, tf.float32))
        cam = tf.stop_gradient(tf.cast(cam, tf.float32))
        q = tf.reshape(self.query(hypercolumn), [batch, h * w, self.attention_dim])
        k = tf.reshape(self.key(hypercolumn), [batch, h * w, self.attention_dim])
        logits = tf.matmul(q, k, transpose_b=True) / math.sqrt(self.attention_dim)
        valid = tf.reshape(tf.cast(valid, tf.float32), [batch, h * w, 1])
        logits += (1.0 - tf.matmul(valid, valid, transpose_b=True)) * -1e9
        value = tf.reshape(cam, [batch, h * w, -1])
        attended = tf.reshape(tf.matmul(tf.nn.softmax(logits, axis=-1), value), tf.shape(cam)) + cam
        background = 2.0 - tf.reduce_max(attended, axis=-1, keepdims=True)
        return tf.concat([background, attended], axis=-1)

    def call(self, end_points, cam, valid):
        """`end_points`: the attention end points, largest pseudo-stride first (exit_flow/block2, exit_flow/block1);
        `cam` [B,h,w,K]; `valid` [B,h,w,1] at the CAM grid."""
        size = tf.shape(cam)[1:3]
        hypercolumn = tf.concat([resize_bilinear(tf.cast(f, tf.float32), size) for f in end_points], axis=-1)
        scores = self.score(self.propagate(hypercolumn, cam, valid))
        return self.norm(scores, training=True)  # official: is_training=True in every call
