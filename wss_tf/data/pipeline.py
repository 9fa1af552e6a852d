"""tf.data input streams: labeled, unlabeled (weak + strong views) and eval, as the official data_generator.

Differences in mechanics, not in what a step sees: records are shuffled as serialized strings before decoding
(the official code shuffles 100 decoded crops: the same local shuffle without holding 100 crops in memory), and
every element's augmentation draws from a stateless seed made of the pipeline seed and the element's position
in the stream, so a seed reproduces the same crops whatever the parallelism, and position N can be resumed.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf

from wss_tf.data import augment
from wss_tf.data.randaugment import RandAugmentForSegmentation
from wss_tf.data.records import parse_example, split_files

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    """Where a stream reads from and how it batches; augmentation settings live in AugmentConfig."""

    dataset_dir: str
    split: str
    num_classes: int
    batch_size: int  # per replica (the official per-clone batch, train_batch_size / num_clones)
    seed: int = 0
    shuffle_buffer: int = 100
    num_readers: int = 4
    start: int = 0  # elements already consumed (a resumed run starts at step * batch): the stream continues there
    skip_records: tuple[str, ...] = ()  # "shard file name:record index" of records left out (--skip_bad_records)
    # Which of a run's streams this is (LABELED_STREAM, ...): streams of one run share `seed` but draw apart,
    # as the official streams draw from independent stateful generators.
    stream_id: int = 0


LABELED_STREAM, UNLABELED_STREAM, IMAGE_LABELED_STREAM = 1, 2, 3


def _checked(example, num_classes: int, ignore_label: int):
    """Stops the stream with the record's name when its mask disagrees with its image or holds unknown ids."""
    image, label, name = example["image"], example["label"], example["filename"]
    same_size = tf.reduce_all(tf.shape(image)[:2] == tf.shape(label)[:2])
    ids = tf.cast(label, tf.int32)
    known = tf.reduce_all((ids < num_classes) | (ids == ignore_label))
    checks = [
        tf.debugging.Assert(same_size, [augment.message(
            "record {}: mask size {} differs from image size {}", name, tf.shape(label)[:2], tf.shape(image)[:2])]),
        tf.debugging.Assert(known, [augment.message(
            "record {}: mask holds class ids outside [0, {}) other than {}; largest id {}",
            name, num_classes, ignore_label, tf.reduce_max(tf.where(ids == ignore_label, 0, ids)))]),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(image), tf.identity(label), name


def _records(stream: StreamConfig, *, training: bool, input_context: Optional[tf.distribute.InputContext]):
    files = split_files(stream.dataset_dir, stream.split)
    readers = min(stream.num_readers, len(files))
    if stream.skip_records:  # read shard by shard to know each record's index (the same interleaved order)
        skipped = tf.constant(list(stream.skip_records))

        def read(path):
            name = tf.strings.split(path, "/")[-1]
            return tf.data.TFRecordDataset(path).enumerate().map(
                lambda i, record: (name + ":" + tf.strings.as_string(i), record))

        dataset = tf.data.Dataset.from_tensor_slices(files).interleave(
            read, cycle_length=readers, block_length=1, num_parallel_calls=readers, deterministic=True)
        dataset = dataset.filter(lambda key, record: ~tf.reduce_any(tf.equal(skipped, key)))
        dataset = dataset.map(lambda key, record: record)
    else:
        dataset = tf.data.TFRecordDataset(files, num_parallel_reads=readers)
    pipeline_id = 0
    if input_context is not None and input_context.num_input_pipelines > 1:
        pipeline_id = input_context.input_pipeline_id
        dataset = dataset.shard(input_context.num_input_pipelines, pipeline_id)
    if training:
        dataset = dataset.shuffle(stream.shuffle_buffer, seed=_stream_seed(stream, pipeline_id),
                                  reshuffle_each_iteration=True).repeat()
    return dataset, pipeline_id


def _stream_seed(stream: StreamConfig, pipeline_id: int) -> int:
    """One int per (run seed, stream, input pipeline): no two streams or pipelines of a run share draws."""
    return (stream.seed * 1000003 + stream.stream_id) * 7919 + pipeline_id


def _element_seed(stream: StreamConfig, pipeline_id: int, index):
    return tf.stack([tf.constant(_stream_seed(stream, pipeline_id), tf.int64), tf.cast(index, tf.int64)])


def labeled_dataset(stream: StreamConfig, config: augment.AugmentConfig,
                    input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
    """Batches of {"image", "label", "valid", "cls_label", "filename"} for the supervised loss."""
    dataset, pipeline_id = _records(stream, training=True, input_context=input_context)

    def prepare(index, serialized):
        image, label, name = _checked(parse_example(serialized), stream.num_classes, config.ignore_label)
        image, label, valid = augment.augment_labeled(image, label, config, _element_seed(stream, pipeline_id, index))
        return {"image": image, "label": label, "valid": valid, "filename": name,
                "cls_label": augment.image_level_labels(label, stream.num_classes)}

    dataset = dataset.enumerate().skip(stream.start).map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
    return dataset.batch(stream.batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def unlabeled_dataset(stream: StreamConfig, config: augment.AugmentConfig, *, with_cls: bool = False,
                      input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
    """Batches of {"weak", "strong", "label", "valid", "filename"[, "cls_label"]} for the consistency loss.

    `label` (cut out under the box) is for monitoring pseudo labels only; `cls_label` (with_cls, the weakly
    setting) is derived after cutout, as the official code does.
    """
    dataset, pipeline_id = _records(stream, training=True, input_context=input_context)
    randaugment = None
    if config.strong_augmentation == "randaugment_cutout":
        randaugment = RandAugmentForSegmentation(
            config.randaugment_num_ops, config.randaugment_factor, fill_value=sum(config.mean_pixel) / 3,
            ignore_label=config.ignore_label, seed=stream.seed)

    def prepare(index, serialized):
        image, label, name = _checked(parse_example(serialized), stream.num_classes, config.ignore_label)
        weak, strong, label, valid = augment.augment_unlabeled(
            image, label, config, _element_seed(stream, pipeline_id, index), randaugment=randaugment)
        sample = {"weak": weak, "strong": strong, "label": label, "valid": valid, "filename": name}
        if with_cls:
            sample["cls_label"] = augment.image_level_labels(label, stream.num_classes)
        return sample

    dataset = dataset.enumerate().skip(stream.start).map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
    return dataset.batch(stream.batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def eval_dataset(stream: StreamConfig, crop_size: tuple[int, int], mean_pixel, ignore_label: int = 255,
                 input_context: Optional[tf.distribute.InputContext] = None, with_cls: bool = False) -> tf.data.Dataset:
    """One pass over a split, each image padded to the eval crop: {"image", "label", "valid", "height",
    "width", "filename"[, "cls_label"]}. Every batch has the static shape [None, crop_h, crop_w, C]: one trace for
    the split. `cls_label` (with_cls): the classes present in the mask, as the official eval's `with_cls`."""
    dataset, _ = _records(stream, training=False, input_context=input_context)

    def prepare(serialized):
        example = parse_example(serialized)
        image, label, name = _checked(example, stream.num_classes, ignore_label)
        image, label, valid = augment.pad_for_eval(image, label, crop_size, mean_pixel, ignore_label, name)
        sample = {"image": image, "label": label, "valid": valid, "filename": name,
                  "height": tf.shape(example["image"])[0], "width": tf.shape(example["image"])[1]}
        if with_cls:
            sample["cls_label"] = augment.image_level_labels(label, stream.num_classes)
        return sample

    dataset = dataset.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
    return dataset.batch(stream.batch_size).prefetch(AUTOTUNE)


def distribute(strategy: tf.distribute.Strategy, make_dataset, global_batch_size: int):
    """`strategy.distribute_datasets_from_function` with the per-replica batch the official flags imply.

    `make_dataset(per_replica_batch, input_context)` builds one input pipeline.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(f"global batch {global_batch_size} is not divisible by {replicas} replicas")

    def fn(input_context):
        return make_dataset(input_context.get_per_replica_batch_size(global_batch_size), input_context)

    return strategy.distribute_datasets_from_function(fn)
