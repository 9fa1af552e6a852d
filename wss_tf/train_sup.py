"""Supervised baseline (the official train_sup.py): DeepLabv3+ on the labeled split only; with --weakly the
classifier head also trains on train_split_cls's image-level labels. Defaults differ from train_wss.py as the
official script's (base_learning_rate 1e-4, initialize_last_layer, all last layers, summaries every 600 s).

  ./run.sh train-sup --train_logdir=runs/voc92_sup --dataset_dir=records/voc --train_split=16_clean_3 ...
"""
from wss_tf import preemption

preemption.install()  # before TensorFlow's import and the minutes of start-up: a SIGTERM then still exits 143

from absl import flags, logging  # noqa: E402

from wss_tf import app_runner  # noqa: E402
from wss_tf.cli import config_from_flags, define_train_flags, train_usage  # noqa: E402
from wss_tf.config import SUP_DEFAULTS  # noqa: E402

define_train_flags(SUP_DEFAULTS)
__doc__ = train_usage(__doc__, SUP_DEFAULTS)


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    from wss_tf.distribute import make_strategy
    from wss_tf.trainer import Trainer

    config = config_from_flags(flags.FLAGS, SUP_DEFAULTS)
    strategy = make_strategy(config.num_clones)
    Trainer(config, strategy).run()


if __name__ == "__main__":
    app_runner.run(main)
