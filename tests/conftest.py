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
