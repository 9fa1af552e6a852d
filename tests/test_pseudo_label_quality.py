import numpy as np
import pytest
import tensorflow as tf

from wss_tf.data.augment import batch_image_level_labels, image_level_labels
from wss_tf import pseudo_label_quality as quality


def test_confusions_count_known_pixels_by_truth_and_prediction():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, (2, 4, 5))
    truth[0, 0, :2] = 255
    prediction = rng.integers(0, 3, (2, 4, 5))
    known = (truth != 255) & (rng.uniform(size=truth.shape) > 0.3)
    out = quality.confusions({"decoder": tf.constant(prediction)}, tf.constant(truth), tf.constant(known), 3)
    expected = np.zeros((3, 3))
    for t, p in zip(truth[known], prediction[known]):
        expected[t, p] += 1
    np.testing.assert_array_equal(out[quality.CONFUSION_PREFIX + "decoder"].numpy(), expected)


def test_miou_over_classes_seen():
    confusion = np.array([[3, 1, 0], [1, 1, 0], [0, 0, 0]])  # class 2 neither in truth nor predicted
    assert quality.scores(confusion)["miou"] == pytest.approx((3 / 5 + 1 / 3) / 2)  # evaluation.scores


def test_average_precision_by_hand():
    scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.3, 0.2], [0.1, 0.6]])
    truth = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    aps = quality.average_precision(scores, truth)
    assert aps[0] == pytest.approx((1 / 1 + 2 / 3) / 2)  # positives ranked 1st and 3rd
    assert np.isnan(aps[1])  # no positive image


def test_cam_class_map_takes_background_where_no_class_is_active():
    cam = np.zeros((1, 2, 2, 2), np.float32)
    cam[0, 0, 0] = [0.9, 0.2]
    cam[0, 1, 1] = [0.1, 0.8]
    labels = tf.argmax(quality.cam_class_map_logits(tf.constant(cam), [2, 2]), -1).numpy()
    np.testing.assert_array_equal(labels[0], [[1, 0], [0, 2]])


def test_window_summarizes_and_resets():
    window = quality.QualityWindow()
    confusion = np.array([[2, 0], [0, 2]], np.float32)
    for _ in range(2):
        window.add({quality.CONFUSION_PREFIX + "sgc": confusion,
                    quality.CLASSIFIER_SCORES: np.array([[0.9], [0.1]]),
                    quality.CLASSIFIER_TRUTH: np.array([[1.0], [0.0]])}, images=2)
    summary = window.summary()
    assert summary == {"miou/sgc": 1.0, "classifier_map": 1.0, "classifier_map_chance": 0.5} and window.images == 4
    assert "sgc 100.0" in quality.format_summary(summary)
    assert "classifier mAP 100.0 (chance 50.0)" in quality.format_summary(summary)
    window.reset()
    assert window.summary() == {}


def test_batch_image_labels_ignore_background_and_255_and_equal_the_pipelines():
    label = np.zeros((2, 3, 3, 1), np.int32)
    label[0, 0, 0] = 2
    label[1, 1, 1] = 255
    batch = batch_image_level_labels(tf.constant(label), 3).numpy()
    np.testing.assert_array_equal(batch, [[0, 1], [0, 0]])
    labels = np.random.RandomState(0).choice([0, 1, 2, 3, 4, 255], (3, 5, 7, 1)).astype(np.int32)
    labels[1] = np.where(labels[1] == 3, 0, labels[1])
    np.testing.assert_array_equal(batch_image_level_labels(tf.constant(labels), 5).numpy(),
                                  [image_level_labels(tf.constant(one), 5).numpy() for one in labels])
