"""The training commands as a user runs them, each in a fresh process: --num_clones splits the CPU, --seed
with --deterministic makes two runs bit-identical, SIGTERM exits 143 from the start of the process on, and a
user's error is one line."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY_FLAGS = ["--model_variant=xception_tiny", "--dataset=toy", "--train_split=train", "--train_split_cls=pool",
             "--train_crop_size=33,33", "--cutout_pad_size=6", "--train_batch_size=2", "--log_steps=1",
             "--aspp_convs_filters=16", "--decoder_filters=16", "--attention_dim=16", "--save_summaries_secs=0",
             "--base_learning_rate=0.01"]


class Command:
    """A training command in its own process; stderr is read as it comes, so a test can wait for a line."""

    def __init__(self, app, dataset_dir, logdir, *flags):
        env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"wss_tf.{app}", f"--dataset_dir={dataset_dir}", f"--train_logdir={logdir}",
             *TOY_FLAGS, *flags], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line)

    def wait_for(self, text, timeout=600):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never came:\n{self.stderr[-3000:]}")

    def finish(self, timeout=600):
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return self.process.returncode

    @property
    def stderr(self):
        return "".join(self.lines)


def _checkpoint_values(logdir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(logdir)))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if "/.ATTRIBUTES/VARIABLE_VALUE" in k and k.startswith("model/")}


def test_num_clones_and_the_seed_through_the_command(toy_dataset, tmp_path):
    """README: --num_clones=2 splits the CPU into two logical devices (it crashed in a fresh process). Two runs
    with --seed=3 --deterministic end on identical weights; --seed=4 differs."""
    runs = {name: Command("train_sup", toy_dataset, tmp_path / name, "--num_clones=2", f"--seed={seed}",
                          "--deterministic", "--training_number_of_steps=2")
            for name, seed in (("a", 3), ("b", 3), ("c", 4))}
    for name, run in runs.items():
        assert run.finish() == 0, run.stderr[-3000:]
        assert "training on /cpu:0, /cpu:1" in run.stderr and "2 replicas" in run.stderr
    a, b, c = (_checkpoint_values(tmp_path / name) for name in "abc")
    assert len(a) > 50 and a.keys() == b.keys() == c.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert sum(not np.array_equal(a[k], c[k]) for k in a) > len(a) // 2


def test_sigterm_exits_143_during_start_up_and_during_training(toy_dataset, tmp_path):
    """Preemption: SIGTERM while the process starts (TensorFlow's import, model build, tracing: minutes for a
    big model) stops it before its first step; during training it saves the last finished step. Both exit 143."""
    starting = Command("train_wss", toy_dataset, tmp_path / "starting", "--training_number_of_steps=10000")
    training = Command("train_sup", toy_dataset, tmp_path / "training", "--training_number_of_steps=10000")
    starting.wait_for("training on /cpu:0")  # TensorFlow is up; the model is not built yet
    starting.process.send_signal(signal.SIGTERM)
    training.wait_for("step 2/10000")
    training.process.send_signal(signal.SIGTERM)

    assert starting.finish() == 143, starting.stderr[-3000:]
    assert "stopped by SIGTERM before the first step of this process (at step 0)" in starting.stderr
    assert tf.train.latest_checkpoint(str(tmp_path / "starting")) is None
    assert training.finish() == 143, training.stderr[-3000:]
    step = int(training.stderr.split("stopped by SIGTERM at step ")[1].split(";")[0])
    assert step >= 2 and tf.train.latest_checkpoint(str(tmp_path / "training")).endswith(f"ckpt-{step}")


def test_a_users_error_is_one_line_and_the_traceback_is_asked_for(toy_dataset, tmp_path):
    """A resume refused (another class count in train_logdir): one line naming the checkpoint, not a traceback
    followed by a restore warning per variable; --traceback shows where it was raised."""
    import shutil

    from wss_tf.data.datasets import DatasetInfo, write_dataset_info

    first = Command("train_sup", toy_dataset, tmp_path / "run", "--training_number_of_steps=1")
    assert first.finish() == 0, first.stderr[-3000:]
    five = tmp_path / "five_classes"
    shutil.copytree(toy_dataset, five)
    write_dataset_info(DatasetInfo("toy5", ("background", "a", "b", "c", "d"), (65, 65)), str(five))
    shutil.copytree(tmp_path / "run", tmp_path / "copy")  # one training per train_logdir: the two run side by side
    plain = Command("train_sup", five, tmp_path / "run", "--dataset=toy5")
    verbose = Command("train_sup", five, tmp_path / "copy", "--dataset=toy5", "--traceback")
    assert plain.finish() == 1 and verbose.finish() == 1
    assert "error: cannot resume from " in plain.stderr and "ckpt-1: it does not fit this run" in plain.stderr
    assert "Traceback" not in plain.stderr and "unrestored values" not in plain.stderr
    assert "Traceback" in verbose.stderr and "ValueError: cannot resume from" in verbose.stderr
