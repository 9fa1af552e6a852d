import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so MirroredStrategy runs two real replicas in tests (must precede any TF op).
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="session")
def deeplab_model():
    """Builds each DeepLab configuration once per session. Tests may change weights, never the structure."""
    from deeplab import DeepLabConfig, DeepLabV3Plus

    cache = {}

    def get(variant, **options):
        key = (variant, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = DeepLabV3Plus(DeepLabConfig(variant, **options))
        return cache[key]

    return get


def write_toy_records(directory, split, n=6, size=(40, 52), num_classes=4, bad_id=None, seed=0):
    """Small PNG records: a rectangle of one class per image, a 255 border row band."""
    import numpy as np

    from wss_tf.data.records import Record, encode_png, write_split

    rng = np.random.RandomState(seed)
    records = []
    for i in range(n):
        h, w = size[0] + i, size[1] - i
        image = rng.randint(0, 256, (h, w, 3), dtype=np.uint8)
        label = np.zeros((h, w), np.uint8)
        label[2:h // 2, 3:w // 2] = 1 + i % (num_classes - 1)
        image[2:h // 2, 3:w // 2] //= (2 + i % (num_classes - 1))
        label[-3:, :] = 255
        if bad_id is not None and i == 2:
            label[0, 0] = bad_id
        records.append(Record(f"img_{i}", encode_png(image), "png", h, w, encode_png(label)))
    write_split(records, str(directory), split, num_shards=2)
    return str(directory)


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory):
    """A 4-class record set with splits train (6), pool (8), val (4) and its dataset_info.json."""
    from wss_tf.data.datasets import DatasetInfo, write_dataset_info

    directory = tmp_path_factory.mktemp("toy_records")
    write_toy_records(directory, "train")
    write_toy_records(directory, "pool", n=8, seed=1)
    write_toy_records(directory, "val", n=4, seed=2)
    write_dataset_info(DatasetInfo("toy", ("background", "a", "b", "c"), (65, 65)), str(directory))
    return str(directory)


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole session: strategies created one after another
    in a process can disagree on collective instance keys once one of them has run a collective."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
