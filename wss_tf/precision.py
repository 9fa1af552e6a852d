"""Mixed precision: the Keras dtype policy a model is built under, and dynamic loss scaling for float16.

Variables stay float32 under every policy; layers compute in bfloat16 or float16, and the logits, the losses, the
pseudo label, the CAM and the SGC run in float32 (their layers and functions cast). float16 needs its loss scaled
so small gradients do not flush to zero; bfloat16 has float32's range and does not.
"""
from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Layers created inside take `precision`'s policy (Keras reads the global policy when a layer is made)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class DynamicLossScale(tf.Module):
    """The loss is multiplied by `scale` before the gradients are taken and they are divided by it after. A step
    whose gradients overflow is skipped and halves the scale; `growth_steps` finite steps in a row double it
    (the tf.keras / Keras LossScaleOptimizer defaults). Its state is checkpointed with the run.

    `update` runs in cross-replica context with the decision every replica agreed on; Keras' LossScaleOptimizer
    is not used because it takes that decision from the first replica's own, not yet all-reduced, gradients.
    """

    def __init__(self, initial_scale: float = 2.0 ** 15, growth_steps: int = 2000):
        super().__init__(name="loss_scale")
        self.growth_steps = growth_steps
        self.scale = tf.Variable(initial_scale, trainable=False, dtype=tf.float32, name="scale",
                                 aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.finite_steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="finite_steps",
                                        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def update(self, finite):
        grown = self.finite_steps + 1 >= self.growth_steps
        new_scale = tf.where(finite, tf.where(grown, self.scale * 2.0, self.scale), tf.maximum(self.scale / 2.0, 1.0))
        new_count = tf.where(finite & ~grown, self.finite_steps + 1, tf.zeros_like(self.finite_steps))
        return tf.group(self.scale.assign(new_scale), self.finite_steps.assign(new_count))
