"""SavedModel export of a DeepLab model's inference-mode logits."""
from __future__ import annotations

import tensorflow as tf


class LogitsModule(tf.Module):
    """Serves `logits = model(images, training=False)["logits"]` for float images [B, H, W, 3] in [0, 255].

    `training=False` is fixed inside the traced function, so batch norms use their moving averages and
    dropout is off in the exported graph, whatever the caller passes.
    """

    def __init__(self, model):
        super().__init__(name="deeplab_logits")
        # Track the variables, not the Keras model: saving then traces only `serve`, not every layer.
        self.model_variables = list(model.variables)
        self._forward = lambda images: model(images, training=False)["logits"]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def serve(self, images):
        return {"logits": self._forward(images)}


def export_logits(model, export_dir: str) -> str:
    module = LogitsModule(model)
    tf.saved_model.save(module, export_dir, signatures={"serving_default": module.serve})
    return export_dir
