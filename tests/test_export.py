import numpy as np
import tensorflow as tf

from deeplab import DeepLabConfig, DeepLabV3Plus, official_variable_map
from deeplab.export import export_logits


def test_saved_model_matches_live_model_in_inference_mode(tmp_path):
    model = DeepLabV3Plus(DeepLabConfig("xception_tiny", num_classes=4, aspp_convs_filters=32, decoder_filters=32))
    images = np.random.RandomState(0).uniform(0, 255, (2, 129, 97, 3)).astype(np.float32)
    rng = np.random.RandomState(1)
    for name, var in official_variable_map(model).items():  # moving averages away from their initial 0 / 1
        if name.endswith("moving_mean"):
            var.assign(rng.normal(0, 0.5, var.shape).astype(np.float32))
        elif name.endswith("moving_variance"):
            var.assign(rng.uniform(0.5, 2.0, var.shape).astype(np.float32))
    live = model(images, training=False)["logits"].numpy()

    export_logits(model, str(tmp_path / "export"))
    served = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"](
        images=tf.constant(images))["logits"].numpy()
    assert served.shape == live.shape == (2, 33, 25, 4)
    assert np.abs(served - live).max() < 1e-5
    assert np.abs(live - model(images, training=True)["logits"].numpy()).max() > 1e-3  # the modes differ
