"""One training run on a generated dataset, evaluated on its val split: the unit of the demo and the study."""
from __future__ import annotations

import json
import os
import time

from wss_tf.data import pipeline
from wss_tf.evaluation import evaluate
from wss_tf.trainer import QUALITY_FILE, Trainer


def quality_curve(logdir: str) -> list[dict]:
    """The run's pseudo-label quality windows over training (pseudo_label_quality.jsonl), the latest per step."""
    path = os.path.join(logdir, QUALITY_FILE)
    by_step = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    window = json.loads(line)
                    by_step[window["step"]] = window
    return [by_step[s] for s in sorted(by_step)]


def train_and_evaluate(config, strategy, data) -> tuple[dict, float]:
    """Trains `config` (resuming if its logdir has checkpoints), then scores the last weights on `data`'s val
    split (a synthetic.GeneratedDataset). Returns (evaluation result with the run's pseudo-label quality curve
    under "quality", training seconds)."""
    started = time.time()
    trainer = Trainer(config, strategy)
    trainer.run()
    seconds = time.time() - started
    stream = pipeline.StreamConfig(data.output_dir, "val", data.num_classes, batch_size=8)
    val = pipeline.eval_dataset(stream, data.eval_crop, trainer.model.spec.mean_pixel)
    result = evaluate(trainer.model, val, data.num_classes, list(data.class_names))
    result["quality"] = quality_curve(config.train_logdir)
    return result, seconds
