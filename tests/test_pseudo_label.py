import numpy as np
import pytest
import tensorflow as tf

from wss_tf import losses
from wss_tf.pseudo_label import PseudoLabelConfig, pseudo_label, rms


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _logits(seed=0):
    rng = np.random.RandomState(seed)
    return rng.normal(0, 3, (2, 4, 5, 3)).astype(np.float32), rng.normal(0, 1, (2, 4, 5, 3)).astype(np.float32)


def test_fusion_and_sharpening_match_a_hand_computation():
    dec, att = _logits()
    r = np.sqrt(np.mean(np.concatenate([dec, att]) ** 2) + 1e-8)
    p = 0.5 * _softmax(dec / r) + 0.5 * _softmax(att / r)
    expected = p ** 2 / (p ** 2).sum(-1, keepdims=True)
    target, confident = pseudo_label(tf.constant(dec), tf.constant(att), PseudoLabelConfig())
    np.testing.assert_allclose(target, expected, atol=1e-6)
    assert (confident.numpy() == 1).all()
    np.testing.assert_allclose(float(rms(tf.constant(dec), tf.constant(att))), r, rtol=1e-6)


def test_pseudo_label_options():
    dec, att = _logits(1)
    unnormalised = pseudo_label(dec, att, PseudoLabelConfig(logit_norm=False, temperature=1.0))[0]
    np.testing.assert_allclose(unnormalised, 0.5 * _softmax(dec) + 0.5 * _softmax(att), atol=1e-6)
    np.testing.assert_allclose(pseudo_label(dec, att, PseudoLabelConfig(pseudo_src="att", temperature=1.0))[0],
                               _softmax(att), atol=1e-6)
    np.testing.assert_allclose(pseudo_label(dec, None, PseudoLabelConfig(use_attention=False, temperature=1.0))[0],
                               _softmax(dec), atol=1e-6)
    hard, _ = pseudo_label(dec, att, PseudoLabelConfig(soft_pseudo_label=False))
    assert hard.dtype == tf.int32 and hard.shape == (2, 4, 5)
    target, confident = pseudo_label(dec, att, PseudoLabelConfig(pseudo_label_threshold=0.8))
    np.testing.assert_array_equal(confident.numpy()[..., 0], target.numpy().max(-1) >= 0.8)  # after sharpening
    with pytest.raises(ValueError, match="pseudo_src"):
        PseudoLabelConfig(pseudo_src="max")


def test_no_gradient_reaches_the_weak_branch():
    dec, att = [tf.Variable(x) for x in _logits(2)]
    student = tf.Variable(tf.random.stateless_normal((2, 4, 5, 3), [0, 1]))
    with tf.GradientTape() as tape:
        target, confident = pseudo_label(dec, att, PseudoLabelConfig())
        loss = losses.consistency_loss(target, student, tf.ones((2, 4, 5, 1)), confident)
    grads = tape.gradient(loss, [dec, att, student])
    assert grads[0] is None and grads[1] is None and grads[2] is not None


def test_consistency_loss_normaliser_counts_valid_pixels():
    rng = np.random.RandomState(3)
    target = _softmax(rng.normal(0, 1, (1, 3, 3, 2))).astype(np.float32)
    student = rng.normal(0, 1, (1, 3, 3, 2)).astype(np.float32)
    valid = np.ones((1, 3, 3, 1), np.float32)
    valid[0, 0] = 0
    confident = np.ones_like(valid)
    confident[0, 2, 2] = 0
    per_pixel = -(target * np.log(_softmax(student))).sum(-1)
    expected = (per_pixel * valid[..., 0] * confident[..., 0]).sum() / valid.sum()
    got = losses.consistency_loss(tf.constant(target), tf.constant(student), tf.constant(valid), tf.constant(confident))
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_segmentation_cross_entropy_upsamples_and_ignores():
    rng = np.random.RandomState(4)
    logits = rng.normal(0, 1, (1, 3, 3, 4)).astype(np.float32)
    labels = rng.randint(0, 4, (1, 5, 5, 1))
    labels[0, 0, :] = 255
    up = tf.compat.v1.image.resize_bilinear(logits, [5, 5], align_corners=True).numpy()
    logp = np.log(_softmax(up))
    keep = labels[..., 0] != 255
    picked = np.take_along_axis(logp, np.where(keep, labels[..., 0], 0)[..., None], -1)[..., 0]
    expected = -(picked * keep).sum() / keep.sum()
    np.testing.assert_allclose(float(losses.segmentation_cross_entropy(logits, labels)), expected, rtol=1e-5)
    assert float(losses.segmentation_cross_entropy(logits, np.full((1, 5, 5, 1), 255))) == 0.0


def test_classification_loss_is_the_mean_over_entries():
    logits = np.array([[2.0, -1.0], [0.5, 0.0]], np.float32)
    labels = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    p = 1 / (1 + np.exp(-logits))
    expected = -(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean()
    np.testing.assert_allclose(float(losses.classification_loss(logits, labels)), expected, rtol=1e-6)
