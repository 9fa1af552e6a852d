import numpy as np
import pytest
import tensorflow as tf

from wss_tf.data import augment
from wss_tf.data.augment import AugmentConfig

MEAN = (127.5, 127.5, 127.5)


def _seed(i):
    return tf.constant([7, i], tf.int64)


def _example(h=40, w=30, num_classes=4, seed=0):
    rng = np.random.RandomState(seed)
    image = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    label = np.zeros((h, w, 1), np.int32)
    label[5:20, 5:15] = 1
    label[25:38, 10:28] = 2
    label[0:4, 20:30] = 3
    return tf.constant(image), tf.constant(label)


def test_scale_set_is_the_official_one():
    assert AugmentConfig().scales == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    image, label = _example(41, 33)
    for scale in (0.5, 0.75, 1.25, 2.0):
        scaled, scaled_label = augment.random_scale(image, label, scale)
        assert tuple(scaled.shape[:2]) == (int(41 * scale), int(33 * scale)) == tuple(scaled_label.shape[:2])
        assert set(np.unique(scaled_label)) <= {0, 1, 2, 3}  # nearest: no new ids


def test_every_scale_is_drawn():
    config = AugmentConfig(crop_size=(9, 9))
    image, label = _example(40, 40)
    sizes = set()
    for i in range(80):
        seed = augment.op_seeds(augment.op_seeds(_seed(i), 2)[0], 3)[0]
        idx = tf.random.stateless_uniform([], seed, 0, 7, dtype=tf.int32)
        sizes.add(int(idx))
    assert sizes == set(range(7))


def test_step_size_zero_draws_the_scale_uniformly_as_the_official_get_random_scale():
    """The valid region of a 40x40 image in an 81x81 crop is the scaled image: its side is floor(40 * scale)."""
    config = AugmentConfig(crop_size=(81, 81), mean_pixel=MEAN, min_scale_factor=0.5, max_scale_factor=2.0,
                           scale_factor_step_size=0)
    image, label = _example(40, 40)
    sides = {int(np.sqrt(augment.augment_labeled(image, label, config, _seed(i))[2].numpy().sum()))
             for i in range(12)}
    assert config.scales is None and len(sides) >= 8 and min(sides) >= 20 and max(sides) <= 80
    assert sides - {20, 30, 40, 50, 60, 70, 80}  # not only the 0.25 grid (nor only its ends, as it drew before)
    assert AugmentConfig(crop_size=(9, 9), min_scale_factor=1.5, max_scale_factor=1.5).scales == [1.5]


def test_labeled_crop_padding_and_valid_mask():
    config = AugmentConfig(crop_size=(65, 65), mean_pixel=MEAN)
    image, label = _example(40, 30)
    for i in range(12):
        out_image, out_label, valid = [t.numpy() for t in augment.augment_labeled(image, label, config, _seed(i))]
        assert out_image.shape == (65, 65, 3) and out_label.shape == (65, 65, 1) and valid.shape == (65, 65, 1)
        pad = valid[..., 0] == 0
        assert pad.any()  # a 40x30 image at scale <= 2 never fills 65x65
        np.testing.assert_array_equal(out_image[pad], np.full((pad.sum(), 3), 127.5, np.float32))
        assert (out_label[pad] == 255).all() and (out_label[~pad] != 255).all()
        # the valid region is a top-left rectangle, possibly flipped to the top-right
        rows, cols = np.where(~pad)
        assert rows.min() == 0 and (cols.min() == 0 or cols.max() == 64)


def test_same_seed_same_crop_other_seed_other_crop():
    config = AugmentConfig(crop_size=(33, 33))
    image, label = _example(60, 50)
    a = augment.augment_labeled(image, label, config, _seed(3))[0].numpy()
    b = augment.augment_labeled(image, label, config, _seed(3))[0].numpy()
    c = augment.augment_labeled(image, label, config, _seed(4))[0].numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1


def _no_jitter(**kw):
    return AugmentConfig(crop_size=(49, 49), brightness=0, contrast=0, saturation=0, hue=0, **kw)


def test_weak_and_strong_views_are_pixel_aligned():
    """Undo the jitter (zero magnitudes) and the cutout: the strong view is the weak view."""
    image, label = _example(60, 45)
    for i in range(10):
        weak, strong, out_label, valid = [t.numpy() for t in augment.augment_unlabeled(
            image, label, _no_jitter(), _seed(i))]
        box = (valid[..., 0] == 0) & (strong[..., 0] == 127.5) & (out_label[..., 0] == 255)
        outside = ~box
        np.testing.assert_allclose(strong[outside], weak[outside], atol=0.05)
    # with the official magnitudes the views differ in colour
    config = AugmentConfig(crop_size=(49, 49), cutout_pad_size=10)
    weak, strong, _, valid = augment.augment_unlabeled(image, label, config, _seed(1))
    assert np.abs((weak - strong).numpy()[valid.numpy()[..., 0] == 1]).mean() > 1


def test_cutout_sets_ignore_and_invalid():
    config = AugmentConfig(crop_size=(129, 129), mean_pixel=MEAN, cutout_pad_size=20)
    image, label = _example(120, 130)
    for i in range(8):
        box = augment.cutout_box(129, 129, 20, _seed(i)).numpy()[..., 0]
        rows, cols = np.where(box)
        assert 0 < box.sum() <= 40 * 40 and rows.max() - rows.min() < 40 and cols.max() - cols.min() < 40
        assert box.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # one rectangle
    weak, strong, out_label, valid = [t.numpy() for t in augment.augment_unlabeled(image, label, config, _seed(5))]
    cut = (valid[..., 0] == 0) & (out_label[..., 0] == 255)
    assert cut.sum() > 0
    assert (strong[cut] == 127.5).all() and not (weak[cut] == 127.5).all()  # the weak view is not cut


def test_image_level_labels_drop_classes_only_under_the_cutout():
    image, label = _example(60, 60)
    dropped_any = False
    for i in range(40):
        uncut = augment.augment_unlabeled(image, label, _no_jitter(cutout_pad_size=0), _seed(i))[2]
        cut = augment.augment_unlabeled(image, label, _no_jitter(cutout_pad_size=12), _seed(i))[2]
        before = augment.image_level_labels(uncut, 4).numpy()
        after = augment.image_level_labels(cut, 4).numpy()
        box = (cut.numpy() == 255) & (uncut.numpy() != 255)
        for k in range(1, 4):
            visible_outside = ((uncut.numpy() == k) & ~box).any()
            assert after[k - 1] == float(visible_outside)
            assert before[k - 1] == float((uncut.numpy() == k).any())
        dropped_any |= bool((before > after).any())
    assert dropped_any  # the case really happens in 40 draws


def test_eval_padding_and_too_large_image():
    image, label = _example(40, 30)
    out_image, out_label, valid = augment.pad_for_eval(image, label, (41, 41), MEAN, 255, tf.constant("img_1"))
    assert out_image.shape == (41, 41, 3) and valid.numpy()[:40, :30].all() and not valid.numpy()[40:].any()
    np.testing.assert_array_equal(out_image.numpy()[:40, :30], image.numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match="img_1.*larger than the eval crop"):
        augment.pad_for_eval(image, label, (33, 33), MEAN, 255, tf.constant("img_1"))


def test_color_jitter_stays_in_range_and_changes_the_image():
    image = tf.random.stateless_uniform((20, 20, 3), [1, 2])
    out = augment.color_jitter(image, AugmentConfig(), _seed(0)).numpy()
    assert out.min() >= 0 and out.max() <= 1 and np.abs(out - image.numpy()).mean() > 0.01


def test_color_jitter_strength_scales_the_official_magnitudes():
    from wss_tf.config import TrainConfig

    official = TrainConfig().augment()
    assert (official.brightness, official.contrast, official.saturation, official.hue) == (0.5, 0.5, 0.5, 0.25)
    half = TrainConfig(color_jitter_strength=0.5).augment()
    assert (half.brightness, half.contrast, half.saturation, half.hue) == (0.25, 0.25, 0.25, 0.125)
    off = TrainConfig(color_jitter_strength=0.0).augment()
    assert off.brightness == off.contrast == off.saturation == off.hue == 0.0
