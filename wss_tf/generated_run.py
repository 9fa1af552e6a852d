"""One training run on the generated dataset, evaluated on its val split: the unit of the demo and the study."""
from __future__ import annotations

import time

from wss_tf.data import pipeline
from wss_tf.evaluation import evaluate
from wss_tf.trainer import Trainer


def train_and_evaluate(config, strategy, data) -> tuple[dict, float]:
    """Trains `config` (resuming if its logdir has checkpoints), then scores the last weights on `data`'s val
    split (a synthetic.GeneratedDataset). Returns (evaluation result, training seconds)."""
    started = time.time()
    trainer = Trainer(config, strategy)
    trainer.run()
    seconds = time.time() - started
    stream = pipeline.StreamConfig(data.output_dir, "val", data.num_classes, batch_size=8)
    val = pipeline.eval_dataset(stream, data.eval_crop, trainer.model.spec.mean_pixel)
    return evaluate(trainer.model, val, data.num_classes, list(data.class_names)), seconds
