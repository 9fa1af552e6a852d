"""Subprocess helper for tests/test_trainer.py: trains on the toy records and prints a JSON line of results.

  python tests/scripts/train_toy.py DATASET_DIR LOGDIR MODE [--stop_at N] [--deterministic] [--steps N]
                                    [--save_every_step]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

parser = argparse.ArgumentParser()
parser.add_argument("dataset_dir")
parser.add_argument("logdir")
parser.add_argument("mode")
parser.add_argument("--stop_at", type=int, default=None)
parser.add_argument("--steps", type=int, default=4)
parser.add_argument("--deterministic", action="store_true")
parser.add_argument("--save_every_step", action="store_true")
args = parser.parse_args()

from absl import logging  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from deeplab import official_variable_map  # noqa: E402
from wss_tf.distribute import make_strategy  # noqa: E402
from wss_tf.trainer import Trainer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from test_trainer import toy_config  # noqa: E402

logging.set_verbosity(logging.INFO)
strategy = make_strategy(0)
if args.deterministic:
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
config = toy_config(args.dataset_dir, args.logdir, mode=args.mode, training_number_of_steps=args.steps,
                    save_interval_steps=1 if args.save_every_step else 0)
trainer = Trainer(config, strategy)
results = trainer.run(stop_at_step=args.stop_at)
weights = {n: v.numpy() for n, v in official_variable_map(trainer.model).items()}
np.savez(os.path.join(args.logdir, f"weights_{trainer.step}_{os.getpid()}.npz"), **weights)
print("RESULT " + json.dumps({"step": trainer.step, "lr": float(trainer.schedule(trainer.step)),
                              "checksum": float(sum(np.abs(w).sum() for w in weights.values())),
                              "losses": results}))
