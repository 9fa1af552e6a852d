"""Optimisation as the official train_utils: TF1 momentum, poly/step learning rate with slow start, gradient
multipliers (2x on the logits biases)."""
from __future__ import annotations

import keras
import tensorflow as tf


class TF1Momentum(keras.optimizers.Optimizer):
    """tf.train.MomentumOptimizer: v <- m*v + g; w <- w - lr*v (not Keras SGD's v <- m*v - lr*g).

    The two differ whenever the learning rate changes between steps, i.e. at every step of a poly schedule.
    """

    def __init__(self, learning_rate, momentum: float = 0.9, name: str = "tf1_momentum", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = momentum

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.velocities = [self.add_variable_from_reference(v, "momentum") for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        velocity = self.velocities[self._get_variable_index(variable)]
        self.assign(velocity, velocity * tf.cast(self.momentum, velocity.dtype) + gradient)
        self.assign_sub(variable, tf.cast(learning_rate, variable.dtype) * velocity)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum}


class DeepLabLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """train_utils.get_model_learning_rate: poly or step policy, with a constant slow-start phase.

    poly: base * (1 - min(s, decay_steps) / decay_steps)^power + end (TF1 polynomial_decay with end_learning_rate),
    where s = step - slow_start_step and decay_steps defaults to total - slow_start_step.
    step: base * factor^floor(s / decay_step).
    """

    def __init__(self, policy: str, base_learning_rate: float, training_number_of_steps: int, *,
                 learning_power: float = 0.9, end_learning_rate: float = 0.0, decay_steps: float = 0.0,
                 slow_start_step: int = 0, slow_start_learning_rate: float = 1e-4,
                 learning_rate_decay_factor: float = 0.1, learning_rate_decay_step: int = 2000):
        if policy not in ("poly", "step"):
            raise ValueError(f"learning_policy must be 'poly' or 'step', got {policy!r}")
        self.policy = policy
        self.base = base_learning_rate
        self.power = learning_power
        self.end = end_learning_rate
        self.decay_steps = decay_steps or (training_number_of_steps - slow_start_step)
        self.slow_start_step = slow_start_step
        self.slow_start_learning_rate = slow_start_learning_rate
        self.factor = learning_rate_decay_factor
        self.decay_step = learning_rate_decay_step
        self.total = training_number_of_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        adjusted = step - self.slow_start_step
        if self.policy == "poly":
            progress = tf.minimum(tf.maximum(adjusted, 0.0), float(self.decay_steps)) / float(self.decay_steps)
            lr = (self.base - self.end) * tf.pow(1.0 - progress, self.power) + self.end
        else:
            lr = self.base * tf.pow(self.factor, tf.floor(tf.maximum(adjusted, 0.0) / self.decay_step))
        return tf.where(step < self.slow_start_step, self.slow_start_learning_rate, lr)

    def get_config(self):
        return dict(policy=self.policy, base_learning_rate=self.base, training_number_of_steps=self.total,
                    learning_power=self.power, end_learning_rate=self.end, decay_steps=self.decay_steps,
                    slow_start_step=self.slow_start_step, slow_start_learning_rate=self.slow_start_learning_rate,
                    learning_rate_decay_factor=self.factor, learning_rate_decay_step=self.decay_step)


def make_optimizer(name: str, schedule, *, momentum: float = 0.9, adam_learning_rate: float = 1e-3,
                   adam_epsilon: float = 1e-8):
    """`momentum` (official default) follows the schedule; `adam` uses a constant rate, as the official code."""
    if name == "momentum":
        return TF1Momentum(schedule, momentum=momentum)
    if name == "adam":
        return keras.optimizers.Adam(adam_learning_rate, epsilon=adam_epsilon)
    raise ValueError(f"optimizer must be 'momentum' or 'adam', got {name!r}")


def gradient_multipliers(model, last_layer_gradient_multiplier: float = 1.0,
                         last_layers=("logits",)) -> dict[str, float]:
    """get_model_gradient_multipliers: 2x for every variable named *biases, x last_layer_gradient_multiplier for
    the last layers (2x that for their biases). Keyed by official variable name; 1.0 entries are left out."""
    from deeplab import official_variable_map

    multipliers = {}
    for name in official_variable_map(model):
        m = last_layer_gradient_multiplier if any(name.startswith(s) for s in last_layers) else 1.0
        if "biases" in name:
            m *= 2.0
        if m != 1.0:
            multipliers[name] = m
    return multipliers
