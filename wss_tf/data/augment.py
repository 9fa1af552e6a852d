"""The official augmentations (core/input_preprocess.py, core/preprocess_utils.py), one example at a time.

Randomness is stateless: every op takes a seed derived from (pipeline seed, element index), so an element's
augmentation does not depend on thread scheduling, and a seed reproduces the same crops.
Images are float32 in [0, 255], labels and valid masks int32 [H, W, 1].
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from wss_tf.data.records import IGNORE_LABEL

STRONG_AUGMENTATIONS = ("jitter_cutout", "randaugment_cutout")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    crop_size: tuple[int, int] = (513, 513)
    mean_pixel: tuple[float, float, float] = (127.5, 127.5, 127.5)  # the model variant's; normalises to 0
    min_scale_factor: float = 0.5
    max_scale_factor: float = 2.0
    scale_factor_step_size: float = 0.25
    ignore_label: int = IGNORE_LABEL
    flip_prob: float = 0.5
    cutout_pad_size: int = 50  # the box is up to 2*pad x 2*pad
    brightness: float = 0.5  # random_color_jitter's magnitudes
    contrast: float = 0.5
    saturation: float = 0.5
    hue: float = 0.25
    strong_augmentation: str = "jitter_cutout"  # official; or "randaugment_cutout"
    randaugment_num_ops: int = 2
    randaugment_factor: float = 0.5

    def __post_init__(self):
        if self.strong_augmentation not in STRONG_AUGMENTATIONS:
            raise ValueError(f"strong_augmentation must be one of {STRONG_AUGMENTATIONS}, "
                             f"got {self.strong_augmentation!r}")
        if not 0 < self.min_scale_factor <= self.max_scale_factor:
            raise ValueError(f"bad scale range [{self.min_scale_factor}, {self.max_scale_factor}]")

    @property
    def scales(self) -> list[float]:
        """The discrete scale set of `get_random_scale`: {0.5, 0.75, ..., 2.0} by default; None for step size 0,
        where the official code draws the scale uniformly from [min, max]."""
        if self.min_scale_factor == self.max_scale_factor:
            return [self.min_scale_factor]
        if self.scale_factor_step_size == 0:
            return None
        steps = int((self.max_scale_factor - self.min_scale_factor) / self.scale_factor_step_size + 1)
        return [self.min_scale_factor + i * (self.max_scale_factor - self.min_scale_factor) / (steps - 1)
                for i in range(steps)]


def op_seeds(seed, count: int):
    """`count` independent stateless seeds from one [2] int seed."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=count))


def random_scale(image, label, scale):
    """randomly_scale_image_and_label: image bilinear with antialias (TF2 resize), label nearest, align_corners.

    The new size is floor(side * scale), as the official int cast.
    """
    shape = tf.shape(image)
    new_size = tf.cast(tf.cast(shape[:2], tf.float32) * scale, tf.int32)
    image = tf.image.resize(image, new_size, method="bilinear", antialias=True)
    label = tf.raw_ops.ResizeNearestNeighbor(images=label[tf.newaxis], size=new_size, align_corners=True,
                                             half_pixel_centers=False)[0]
    return image, label


def pad_to_size(tensor, height, width, value):
    """pad_to_bounding_box at offset (0, 0): pad bottom and right with `value` (per channel allowed)."""
    shape = tf.shape(tensor)
    pad_h, pad_w = tf.maximum(height - shape[0], 0), tf.maximum(width - shape[1], 0)
    paddings = [[0, pad_h], [0, pad_w], [0, 0]]
    inside = tf.pad(tf.ones_like(tensor[..., :1], tf.bool), paddings, constant_values=False)
    return tf.where(inside, tf.pad(tensor, paddings), tf.cast(value, tensor.dtype))


def valid_mask(image_height, image_width, crop_height, crop_width):
    """1 where a cropped pixel comes from the image, 0 on padding (the official meshgrid test)."""
    ys = tf.range(crop_height)[:, tf.newaxis]
    xs = tf.range(crop_width)[tf.newaxis, :]
    valid = tf.logical_and(ys < image_height, xs < image_width)
    return tf.cast(valid, tf.int32)[..., tf.newaxis]


def random_crop(tensors, crop_height, crop_width, seed):
    """One uniform offset in [0, H - crop] x [0, W - crop] for every tensor."""
    shape = tf.shape(tensors[0])
    seed_h, seed_w = op_seeds(seed, 2)
    top = tf.random.stateless_uniform([], seed_h, 0, shape[0] - crop_height + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seed_w, 0, shape[1] - crop_width + 1, dtype=tf.int32)
    return [t[top:top + crop_height, left:left + crop_width] for t in tensors]


def random_flip(tensors, prob, seed):
    """flip_dim: one left-right decision for every tensor."""
    flip = tf.random.stateless_uniform([], seed) <= prob
    return [tf.cond(flip, lambda t=t: tf.reverse(t, [1]), lambda t=t: t) for t in tensors]


def color_jitter(image01, config: AugmentConfig, seed):
    """random_color_jitter on an image in [0, 1]: brightness, contrast, saturation and hue in a random order,
    clipped to [0, 1] after each op (SimCLR-style, probability 1)."""
    order_seed, b_seed, c_seed, s_seed, h_seed = op_seeds(seed, 5)
    def unless_zero(magnitude, op):  # the official code skips an op whose magnitude is 0
        return (lambda x: x) if magnitude == 0 else op

    ops = [
        unless_zero(config.brightness, lambda x: tf.image.stateless_random_brightness(x, config.brightness, b_seed)),
        unless_zero(config.contrast, lambda x: tf.image.stateless_random_contrast(
            x, 1 - config.contrast, 1 + config.contrast, c_seed)),
        unless_zero(config.saturation, lambda x: tf.image.stateless_random_saturation(
            x, 1 - config.saturation, 1 + config.saturation, s_seed)),
        unless_zero(config.hue, lambda x: tf.image.stateless_random_hue(x, config.hue, h_seed)),
    ]
    order = tf.argsort(tf.random.stateless_uniform([4], order_seed))
    for i in range(4):
        image01 = tf.switch_case(order[i], [lambda op=op: op(image01) for op in ops])
        image01 = tf.clip_by_value(image01, 0.0, 1.0)
    return image01


def cutout_box(height, width, pad_size, seed):
    """cutout_with_mask's box as a [H, W, 1] bool: centre uniform over the crop, [c - pad, c + pad) clipped."""
    seed_y, seed_x = op_seeds(seed, 2)
    cy = tf.random.stateless_uniform([], seed_y, 0, height, dtype=tf.int32)
    cx = tf.random.stateless_uniform([], seed_x, 0, width, dtype=tf.int32)
    ys = tf.range(height)[:, tf.newaxis]
    xs = tf.range(width)[tf.newaxis, :]
    inside = (ys >= cy - pad_size) & (ys < cy + pad_size) & (xs >= cx - pad_size) & (xs < cx + pad_size)
    return inside[..., tf.newaxis]


def apply_cutout(image, label, valid, box, mean_pixel, ignore_label):
    """Image -> mean pixel, label -> ignore, valid -> 0 inside the box."""
    image = tf.where(box, tf.constant(mean_pixel, image.dtype), image)
    label = tf.where(box, tf.constant(ignore_label, label.dtype), label)
    valid = tf.where(box, tf.zeros_like(valid), valid)
    return image, label, valid


def image_level_labels(label, num_classes: int):
    """cls_label[k-1] = 1 iff class k (1..C-1) occurs in the (augmented) label; background and 255 drop out."""
    counts = tf.math.bincount(tf.reshape(label, [-1]), minlength=256, maxlength=256, dtype=tf.int32)
    return tf.cast(counts[1:num_classes] > 0, tf.float32)


def batch_image_level_labels(labels, num_classes: int):
    """image_level_labels of each image of a batch [B, H, W(, 1)] -> [B, C-1], in one op (no per-image loop; XLA
    compiles it): ids of image b are counted in segments b * 256 + id."""
    ids = tf.reshape(tf.cast(labels, tf.int32), [tf.shape(labels)[0], -1])
    batch = tf.shape(ids)[0]
    counts = tf.math.unsorted_segment_sum(tf.ones_like(ids), ids + 256 * tf.range(batch)[:, tf.newaxis], batch * 256)
    return tf.cast(tf.reshape(counts, [batch, 256])[:, 1:num_classes] > 0, tf.float32)


def _scale_pad_crop(image, label, config: AugmentConfig, seed, strong_fn=None):
    """Steps shared by both training streams: scale, (strong colour op), pad, crop, valid mask."""
    scale_seed, crop_seed, strong_seed = op_seeds(seed, 3)
    if config.scales is None:
        scale = tf.random.stateless_uniform([], scale_seed, config.min_scale_factor, config.max_scale_factor)
    else:
        scales = tf.constant(config.scales, tf.float32)
        scale = scales[tf.random.stateless_uniform([], scale_seed, 0, len(config.scales), dtype=tf.int32)]
    image, label = random_scale(image, label, scale)
    shape = tf.shape(image)
    crop_h, crop_w = config.crop_size
    target_h, target_w = tf.maximum(shape[0], crop_h), tf.maximum(shape[1], crop_w)
    tensors = [pad_to_size(image, target_h, target_w, config.mean_pixel),
               pad_to_size(label, target_h, target_w, config.ignore_label)]
    if strong_fn is not None:  # jitter runs on the whole scaled image, before padding, as the official code
        tensors.append(pad_to_size(strong_fn(image, strong_seed), target_h, target_w, config.mean_pixel))
    cropped = random_crop(tensors, crop_h, crop_w, crop_seed)
    valid = valid_mask(shape[0], shape[1], crop_h, crop_w)
    for t, channels in zip(cropped, (3, 1, 3)):
        t.set_shape([crop_h, crop_w, channels])
    return cropped, valid


def augment_labeled(image, label, config: AugmentConfig, seed):
    """Labeled stream: scale, pad, crop, valid mask, flip. Returns image, label, valid."""
    main_seed, flip_seed = op_seeds(seed, 2)
    (image, label), valid = _scale_pad_crop(tf.cast(image, tf.float32), tf.cast(label, tf.int32), config, main_seed)
    image, valid, label = random_flip([image, valid, label], config.flip_prob, flip_seed)
    return image, label, valid


def augment_unlabeled(image, label, config: AugmentConfig, seed, randaugment=None):
    """Unlabeled stream: weak and strong views with the same geometry (pixel-aligned).

    Weak = scale + pad + crop + flip. Strong = the same geometry + colour jitter + cutout; the cutout box also
    sets the label to ignore and the valid mask to 0 (it leaves the consistency loss and the SGC attention).
    With `randaugment` (a `RandAugmentForSegmentation`), RandAugment replaces the colour jitter; its geometric
    ops move the weak view, label and valid mask with the strong view, so the views stay aligned.
    Returns weak, strong, label, valid.
    """
    main_seed, cut_seed, flip_seed, ra_seed = op_seeds(seed, 4)
    jitter = None
    if randaugment is None:
        def jitter(scaled, s):
            return color_jitter(scaled / 255.0, config, s) * 255.0
    views, valid = _scale_pad_crop(tf.cast(image, tf.float32), tf.cast(label, tf.int32), config, main_seed,
                                   strong_fn=jitter)
    if randaugment is None:
        weak, label, strong = views
    else:
        weak, strong, label, valid = randaugment(views[0], views[1], valid, ra_seed)
    box = cutout_box(config.crop_size[0], config.crop_size[1], config.cutout_pad_size, cut_seed)
    strong, label, valid = apply_cutout(strong, label, valid, box, config.mean_pixel, config.ignore_label)
    weak, strong, valid, label = random_flip([weak, strong, valid, label], config.flip_prob, flip_seed)
    return weak, strong, label, valid


def message(template: str, *values):
    """An error message tensor for tf.debugging.Assert, without the quotes tf.strings.format puts on strings."""
    return tf.strings.regex_replace(tf.strings.format(template, values), '"', "")


def pad_for_eval(image, label, crop_size, mean_pixel, ignore_label, filename):
    """Eval: no resize; pad bottom/right to the eval crop. An image larger than the crop is an error."""
    shape = tf.shape(image)
    crop_h, crop_w = crop_size
    check = tf.debugging.Assert(
        tf.reduce_all(shape[:2] <= tf.constant([crop_h, crop_w])),
        [message("image {} of size {} is larger than the eval crop {}x{}; raise eval_crop_size",
                 filename, shape[:2], crop_h, crop_w)])
    with tf.control_dependencies([check]):
        image = pad_to_size(tf.cast(image, tf.float32), crop_h, crop_w, mean_pixel)
        label = pad_to_size(tf.cast(label, tf.int32), crop_h, crop_w, ignore_label)
    image.set_shape([crop_h, crop_w, 3])
    label.set_shape([crop_h, crop_w, 1])
    return image, label, valid_mask(shape[0], shape[1], crop_h, crop_w)
