import numpy as np
import tensorflow as tf

from wss_tf.cam import ClassifierHead, SelfAttentionGradCAM, class_activation_map, nearest_resize


def _head_and_features(k=3, ch=8, seed=0):
    rng = np.random.RandomState(seed)
    features = tf.constant(rng.normal(0, 1, (2, 5, 6, ch)).astype(np.float32))
    head = ClassifierHead(k, scope="xception_65", dropout=True)
    head(features, training=False)
    head.conv.kernel.assign(rng.normal(0, 1, head.conv.kernel.shape).astype(np.float32))
    return head, features


def test_cam_equals_autodiff_grad_cam():
    """The einsum CAM equals Grad-CAM by autodiff (per-class gradient loop, spatial mean), for a GAP+linear head."""
    head, features = _head_and_features()
    labels = tf.constant([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    maps = []
    for c in range(3):
        with tf.GradientTape() as tape:
            tape.watch(features)
            score = tf.reduce_sum(head(features, training=False)[0][:, c])
        grads = tape.gradient(score, features)
        weights = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)
        maps.append(tf.nn.relu(tf.reduce_sum(weights * features, axis=-1)))
        # the official average runs over (batch, height) of the stacked list; same result for a linear head
        official_weights = tf.reduce_mean(tf.stack([grads]), axis=(1, 2))
        np.testing.assert_allclose(tf.nn.relu(tf.reduce_sum(official_weights * features, -1)), maps[-1], atol=1e-5)
    grad_cam = tf.stack(maps, -1) * labels[:, None, None, :]
    grad_cam = tf.math.divide_no_nan(grad_cam, tf.reduce_max(grad_cam, axis=[1, 2], keepdims=True))
    cam = class_activation_map(features, head(features, training=False)[1], labels)
    np.testing.assert_allclose(cam, grad_cam, atol=1e-5)
    assert float(tf.reduce_max(cam[0, ..., 1])) == 0.0  # absent class
    np.testing.assert_allclose(tf.reduce_max(cam, axis=[1, 2])[1], 1.0, atol=1e-6)  # present classes peak at 1


def test_classifier_head_dropout_only_when_fine_tuning():
    features = tf.ones((4, 3, 3, 16))
    frozen = ClassifierHead(5, scope="xception_65", dropout=True, fine_tune_batch_norm=False)
    tuned = ClassifierHead(5, scope="xception_65", dropout=True)
    np.testing.assert_allclose(frozen(features, training=True)[0], frozen(features, training=False)[0])
    tuned(features, training=False)
    assert np.abs(tuned(features, training=True)[0] - tuned(features, training=False)[0]).max() > 1e-4


def test_training_mode_cam_weights_follow_the_official_gradient():
    """With dropout active, the official per-class gradient averaged over (batch, height) equals
    kernel * mean_n(mask): check against autodiff through the same dropout mask."""
    head, features = _head_and_features(k=2, ch=6, seed=5)
    keras_seed_state = head.seed_generator.state.numpy().copy()
    with tf.GradientTape() as tape:
        tape.watch(features)
        logits, cam_kernel = head(features, training=True)
        score = tf.reduce_sum(logits[:, 1])
    grads = tape.gradient(score, features)
    official_weights = tf.reduce_mean(tf.stack([grads]), axis=(1, 2))  # [1, w, C], constant over w
    h, w = features.shape[1:3]
    np.testing.assert_allclose(official_weights[0, 0] * h * w, cam_kernel[:, 1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(cam_kernel[:, 1], head.conv.kernel[0, 0, :, 1])  # the mask matters
    head.seed_generator.state.assign(keras_seed_state)
    plain = ClassifierHead(2, scope="x", dropout=True, cam_weights="kernel")
    plain(features, training=False)
    np.testing.assert_array_equal(plain(features, training=True)[1], plain.conv.kernel[0, 0])


def test_sgc_masked_positions_do_not_reach_valid_ones():
    sgc = SelfAttentionGradCAM(num_classes=4, attention_dim=8)
    rng = np.random.RandomState(1)
    hyper = rng.normal(0, 1, (2, 6, 6, 12)).astype(np.float32)
    cam = rng.uniform(0, 1, (2, 6, 6, 3)).astype(np.float32)
    valid = np.ones((2, 6, 6, 1), np.float32)
    valid[:, 4:, :] = 0
    valid[1, :, :2] = 0
    out = sgc.propagate(tf.constant(hyper), tf.constant(cam), tf.constant(valid)).numpy()
    hyper2, cam2 = hyper.copy(), cam.copy()
    masked = valid[..., 0] == 0
    hyper2[masked] = rng.normal(0, 5, hyper2[masked].shape)
    cam2[masked] = rng.uniform(0, 1, cam2[masked].shape)
    out2 = sgc.propagate(tf.constant(hyper2), tf.constant(cam2), tf.constant(valid)).numpy()
    keep = ~masked
    np.testing.assert_allclose(out[keep], out2[keep], atol=1e-5)
    assert np.abs(out[masked] - out2[masked]).max() > 1e-3
    # residual propagation: values in [0, 2], background = 2 - max
    assert out[..., 1:].min() >= 0 and out[..., 1:].max() <= 2 + 1e-6
    np.testing.assert_allclose(out[..., 0], 2 - out[..., 1:].max(-1), atol=1e-6)


def test_sgc_logits_use_batch_statistics_and_stop_gradients():
    sgc = SelfAttentionGradCAM(num_classes=3, attention_dim=4)
    f16 = tf.random.stateless_normal((2, 5, 5, 6), [1, 1])
    f15 = tf.random.stateless_normal((2, 5, 5, 3), [1, 2])
    cam = tf.random.stateless_uniform((2, 5, 5, 2), [1, 3])
    valid = tf.ones((2, 5, 5, 1))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([f16, f15, cam])
        logits = sgc([f16, f15], cam, valid)
        loss = tf.reduce_sum(tf.square(logits))
    assert logits.shape == (2, 5, 5, 3)
    np.testing.assert_allclose(tf.reduce_mean(logits, axis=[0, 1, 2]), sgc.norm.beta.numpy(), atol=1e-4)
    assert all(g is None for g in tape.gradient(loss, [f16, f15, cam]))
    assert all(g is not None for g in tape.gradient(loss, sgc.trainable_variables))
    assert sgc.norm.gamma is None and sgc.losses == []  # no scale, no weight decay


def test_nearest_resize_is_tf1_floor_indexing():
    mask = tf.reshape(tf.range(129, dtype=tf.float32), [1, 129, 1, 1]) * tf.ones([1, 1, 129, 1])
    small = nearest_resize(mask, [33, 33]).numpy()[0, :, 0, 0]
    np.testing.assert_array_equal(small, np.floor(np.arange(33) * 129 / 33))
