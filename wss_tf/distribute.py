"""The tf.distribute strategy of a run: MirroredStrategy on one host, MultiWorkerMirroredStrategy across hosts."""
from __future__ import annotations

import json
import os

import tensorflow as tf
from absl import logging


def _workers_in_tf_config() -> int:
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return sum(len(cluster.get(role, [])) for role in ("chief", "worker"))


def make_strategy(num_clones: int = 0) -> tf.distribute.Strategy:
    """`num_clones` replicas (the official flag): the first N local GPUs, or, on a machine without GPUs, the CPU
    split into N logical devices so the distributed code path really runs. 0 = every GPU (or one CPU).
    With a TF_CONFIG naming more than one worker, MultiWorkerMirroredStrategy over all of them.

    Splitting the CPU must happen before TensorFlow initialises its devices: call this first.
    """
    if _workers_in_tf_config() > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        logging.info("multi-worker training: %d replicas in sync", strategy.num_replicas_in_sync)
        return strategy
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        count = num_clones or len(gpus)
        if count > len(gpus):
            raise ValueError(f"num_clones={num_clones} but only {len(gpus)} GPUs are visible")
        devices = [f"/gpu:{i}" for i in range(count)]
    else:
        count = max(num_clones, 1)
        cpus = tf.config.list_physical_devices("CPU")
        # get_logical_device_configuration reads the split without initialising the devices (which would fix it).
        configured = tf.config.get_logical_device_configuration(cpus[0]) or [None]
        if len(configured) < count:
            try:
                tf.config.set_logical_device_configuration(
                    cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
            except RuntimeError as e:
                raise RuntimeError(f"cannot split the CPU into {count} devices after TensorFlow has started; "
                                   f"create the strategy first") from e
        devices = [f"/cpu:{i}" for i in range(count)]
    logging.info("training on %s", ", ".join(devices))
    return tf.distribute.MirroredStrategy(devices)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief
