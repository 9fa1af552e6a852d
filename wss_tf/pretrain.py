"""./run.sh pretrain: the ImageNet analog. Draws the classification corpus, trains the backbone on it and writes a
model-zoo-style TF1 checkpoint (backbone + `{scope}/logits`), cached by its settings; prints its path.

  ./run.sh pretrain [--cache_dir=runs/pretrain] [--model_variant=xception_tiny] [--steps=N] [--images_per_class=N]

Train from it as from the zoo's checkpoints: `./run.sh train-wss --tf_initial_checkpoint=<path> ...`.
"""
from __future__ import annotations

import dataclasses
import os

from absl import app, flags, logging

from wss_tf import app_runner
from wss_tf.pretraining import PretrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CACHE_DIR = os.path.join(ROOT, "runs", "pretrain")
_DEFAULTS = PretrainConfig()

flags.DEFINE_string("cache_dir", DEFAULT_CACHE_DIR, "where the corpus and the checkpoints go (one folder per setting)")
flags.DEFINE_string("model_variant", _DEFAULTS.model_variant, "backbone to pretrain")
flags.DEFINE_integer("steps", _DEFAULTS.steps, "training steps")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "images per step")
flags.DEFINE_float("base_learning_rate", _DEFAULTS.base_learning_rate, "momentum 0.9, poly decay (power 0.9) to 0")
flags.DEFINE_integer("images_per_class", _DEFAULTS.images_per_class, "corpus images per class")
flags.DEFINE_integer("corpus_seed", _DEFAULTS.corpus_seed, "seed of the corpus images")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "seed of the initial weights, dropout and data order")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    from wss_tf.pretraining import pretrain

    config = dataclasses.replace(
        _DEFAULTS, model_variant=FLAGS.model_variant, steps=FLAGS.steps, batch_size=FLAGS.batch_size,
        base_learning_rate=FLAGS.base_learning_rate, images_per_class=FLAGS.images_per_class,
        corpus_seed=FLAGS.corpus_seed, seed=FLAGS.seed)
    result = pretrain(config, FLAGS.cache_dir, log=logging.info)
    print(f"checkpoint: {result.checkpoint}\nheld-out accuracy {100 * result.held_out_accuracy:.1f}% over "
          f"{result.num_classes} classes; pretraining took {result.seconds:.0f}s"
          f"{' (cached)' if result.reused else ''}")


if __name__ == "__main__":
    app_runner.run(main)
