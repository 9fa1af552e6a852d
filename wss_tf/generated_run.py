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


def train_and_evaluate(config, strategy, data, *, bn_reestimation_batches: int = 0) -> tuple[dict, float]:
    """Trains `config` (resuming if its logdir has checkpoints), then scores the last weights on `data`'s val
    split (a data.generated.GeneratedDataset). Returns (evaluation result with the run's pseudo-label quality curve
    under "quality", training seconds).

    With `bn_reestimation_batches`, the result also holds under "bn_reestimated" the scores of the same weights
    after re-estimating the batch-norm statistics over that many passes on the run's training crops (in memory:
    the checkpoint keeps the run's own statistics)."""
    started = time.time()
    trainer = Trainer(config, strategy)
    trainer.run()
    seconds = time.time() - started
    stream = pipeline.StreamConfig(data.output_dir, "val", data.num_classes, batch_size=8)

    def score():
        val = pipeline.eval_dataset(stream, data.eval_crop, trainer.model.spec.mean_pixel)
        return evaluate(trainer.model, val, data.num_classes, list(data.class_names))

    result = score()
    result["quality"] = quality_curve(config.train_logdir)
    if bn_reestimation_batches > 0:
        trainer.reestimate_batch_norm(bn_reestimation_batches)
        reestimated = score()
        result["bn_reestimated"] = {k: reestimated[k] for k in ("miou", "pixel_accuracy", "per_class_iou")}
    return result, seconds
