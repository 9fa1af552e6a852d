import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab import DeepLabConfig
from wss_tf.model import PseudoSegModel
from wss_tf.optim import DeepLabLearningRate, TF1Momentum, gradient_multipliers, make_optimizer


def test_tf1_momentum_update_rule_with_a_changing_rate():
    lrs = [0.1, 0.05, 0.02]
    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return tf.gather(tf.constant(lrs), tf.cast(step, tf.int32))

    schedule = Schedule()
    w = tf.Variable([1.0, -2.0])
    opt = TF1Momentum(schedule, momentum=0.9)
    expected_w, v = np.array([1.0, -2.0]), np.zeros(2)
    for step, g in enumerate([np.array([0.5, 1.0]), np.array([-1.0, 0.2]), np.array([0.3, 0.3])]):
        opt.apply_gradients([(tf.constant(g, tf.float32), w)])
        v = 0.9 * v + g
        expected_w = expected_w - lrs[step] * v
        np.testing.assert_allclose(w.numpy(), expected_w, rtol=1e-6)


def test_poly_schedule_with_slow_start():
    lr = DeepLabLearningRate("poly", 0.007, 1000, slow_start_step=100, slow_start_learning_rate=1e-4)
    assert float(lr(0)) == pytest.approx(1e-4) and float(lr(99)) == pytest.approx(1e-4)
    assert float(lr(100)) == pytest.approx(0.007)
    assert float(lr(550)) == pytest.approx(0.007 * (1 - 450 / 900) ** 0.9, rel=1e-5)
    assert float(lr(1000)) == pytest.approx(0.0, abs=1e-9)
    step = DeepLabLearningRate("step", 0.01, 10000, learning_rate_decay_step=2000)
    assert float(step(3999)) == pytest.approx(0.001) and float(step(4000)) == pytest.approx(0.0001)


def test_adam_is_constant_and_bad_names_fail():
    assert float(make_optimizer("adam", None, adam_learning_rate=0.002).learning_rate) == pytest.approx(0.002)
    with pytest.raises(ValueError, match="optimizer must be"):
        make_optimizer("sgd", None)


def test_only_the_two_logits_biases_get_twice_the_gradient():
    model = PseudoSegModel(DeepLabConfig("xception_tiny", num_classes=3)).build_all()
    assert gradient_multipliers(model) == {"logits/semantic/biases": 2.0, "xception_tiny/logits/biases": 2.0}
    multipliers = gradient_multipliers(model, 3.0, last_layers=("logits",))
    assert multipliers["logits/semantic/weights"] == 3.0 and multipliers["logits/semantic/biases"] == 6.0
