import glob
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deeplab import official_variable_map
from wss_tf.config import RUN_CONFIG_FILE, TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "scripts", "train_toy.py")


def toy_config(dataset_dir, logdir, **changes):
    values = dict(model_variant="xception_tiny", dataset="toy", dataset_dir=dataset_dir, train_split="train",
                  train_split_cls="pool", train_crop_size=(33, 33), cutout_pad_size=6, train_batch_size=2,
                  training_number_of_steps=4, log_steps=1, aspp_convs_filters=16, decoder_filters=16,
                  attention_dim=16, train_logdir=str(logdir), save_summaries_secs=0, base_learning_rate=0.01)
    values.update(changes)
    return TrainConfig(**values)


def _start(*args, env=None):
    return subprocess.Popen([sys.executable, SCRIPT, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _finish(process):
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    line = [l for l in out.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):]), err


def _run(*args, env=None):
    return _finish(_start(*args, env=env))


def _weights(logdir, step):
    files = sorted(glob.glob(os.path.join(logdir, f"weights_{step}_*.npz")))
    return [dict(np.load(f)) for f in files]


def _latest_step(logdir) -> int:
    latest = tf.train.latest_checkpoint(str(logdir))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def test_killed_at_random_moments_and_resumed_reaches_the_weights_of_an_uninterrupted_run(toy_dataset, tmp_path):
    """Under op determinism, 6 PseudoSeg steps with a checkpoint after each. The other run is SIGKILLed twice,
    each at a random moment within 0.4 s after it wrote a new checkpoint (inside a step or inside the next
    checkpoint write), and restarted; the last restart finishes. Same final weights, bit for bit (data order
    included: the input position follows the restored step)."""
    import random
    import signal
    import time

    steps = 6
    seed = random.randrange(10 ** 6)
    rng = random.Random(seed)
    straight = _start(toy_dataset, tmp_path / "straight", "wss", "--deterministic", "--steps", steps)
    killed = tmp_path / "killed"
    kills = []
    for _ in range(2):
        before = _latest_step(killed)
        process = _start(toy_dataset, killed, "wss", "--deterministic", "--steps", steps, "--save_every_step")
        deadline = time.time() + 300
        while _latest_step(killed) == before and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.4))
        process.send_signal(signal.SIGKILL)
        process.communicate()
        kills.append(_latest_step(killed))
        if kills[-1] >= steps:
            break
    assert kills[0] >= 1 and len(set(kills)) > 1, (kills, seed)
    resumed, log = _run(toy_dataset, killed, "wss", "--deterministic", "--steps", steps, "--save_every_step")
    assert "resumed from" in log and resumed["step"] == steps
    (straight_result, _) = _finish(straight)
    assert straight_result["step"] == steps and resumed["lr"] == pytest.approx(straight_result["lr"])
    with open(tmp_path / "straight" / RUN_CONFIG_FILE) as f:  # what eval, vis and export rebuild the model from
        assert TrainConfig.from_dict(json.load(f)) == toy_config(toy_dataset, tmp_path / "straight", mode="wss",
                                                                 training_number_of_steps=steps)
    a, b = _weights(tmp_path / "straight", steps)[0], _weights(killed, steps)[-1]
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) == 0.0, (kills, seed)
    tags = {value.tag for path in glob.glob(str(tmp_path / "straight" / "train" / "events.*"))
            for event in tf.compat.v1.train.summary_iterator(path) for value in event.summary.value}
    assert {"loss/consistency", "loss/sgc", "monitor/pseudo_label_accuracy", "monitor/pseudo_label_confidence",
            "learning_rate", "unlabeled/pseudo_label", "unlabeled/strong", "labeled/prediction"} <= tags


def test_two_replicas_give_the_weights_of_one(toy_dataset, tmp_path, two_cpu_strategy):
    """One step on 2 logical CPU replicas, each fed the same 2 images, == one replica fed those 2 images.

    The per-replica computation is then identical, so the comparison isolates the distributed machinery:
    gradients summed over replicas, each replica's loss divided by the replica count, weight decay counted once,
    mirrored variables (batch-norm statistics included) kept in sync. A wrong scaling would double or halve the
    update. Dropout is off (masks are drawn per replica) and the classifier bias is 1, so the untrained model's
    predicted image-level labels do not sit on the 0.5 threshold. Tolerance 1e-6: float summation order.
    (With the same global batch, 4 images on 1 replica against 2+2, per-replica batch-norm statistics and loss
    normalisers differ by design, as in the official per-clone graph; see the README.)
    """
    from wss_tf.data import pipeline
    from wss_tf.trainer import Trainer

    one = Trainer(toy_config(toy_dataset, tmp_path / "one", train_batch_size=2),
                  tf.distribute.MirroredStrategy(["/cpu:0"]))
    two = Trainer(toy_config(toy_dataset, tmp_path / "two", train_batch_size=4), two_cpu_strategy)
    for trainer in (one, two):
        for layer in trainer.model._flatten_layers():
            if hasattr(layer, "rate"):
                layer.rate = 0.0
        trainer.model.head.use_dropout = False
    one.model.head.conv.bias.assign(np.ones(3, np.float32))
    start = {n: v.numpy() for n, v in official_variable_map(one.model).items()}
    for name, var in official_variable_map(two.model).items():
        var.assign(start[name])

    stream = lambda split: pipeline.StreamConfig(toy_dataset, split, 4, 2, seed=3)  # noqa: E731
    labeled = next(iter(pipeline.labeled_dataset(stream("train"), one.config.augment())))
    unlabeled = next(iter(pipeline.unlabeled_dataset(stream("pool"), one.config.augment())))

    def feed(trainer, batch):
        return trainer.strategy.experimental_distribute_values_from_function(lambda ctx: batch)

    r1 = one.train_step(feed(one, labeled), feed(one, unlabeled))
    r2 = two.train_step(feed(two, labeled), feed(two, unlabeled))
    assert float(r1["consistency"]) > 0 and float(r1["sgc"]) > 0
    np.testing.assert_allclose(float(r1["total"]), float(r2["total"]), rtol=1e-6)
    after_one, after_two = official_variable_map(one.model), official_variable_map(two.model)
    worst = max((float(np.abs(after_one[n].numpy() - after_two[n].numpy()).max()), n) for n in after_one)
    assert worst[0] < 1e-6, worst
    assert max(float(np.abs(after_one[n].numpy() - start[n]).max()) for n in start) > 1e-3  # the step moved


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_training_on_localhost(toy_dataset, tmp_path):
    """Two processes under MultiWorkerMirroredStrategy (TF_CONFIG on 127.0.0.1) train in step: same weights."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [_start(toy_dataset, tmp_path / "mw", "sup", "--steps", 2, env={**os.environ, "TF_CONFIG": json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": index}})}) for index in range(2)]
    (first, log), (second, _) = [_finish(p) for p in procs]
    assert first["step"] == second["step"] == 2
    assert first["checksum"] == pytest.approx(second["checksum"], rel=1e-6)
    assert "multi-worker training: 2 replicas" in log


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(toy_dataset, tmp_path, monkeypatch):
    """The step that produced NaN is not applied: the run stops naming the step and the loss term, and the latest
    checkpoint is the last good step's (finite weights)."""
    from wss_tf import step as steps
    from wss_tf.trainer import Trainer

    trainer = Trainer(toy_config(toy_dataset, tmp_path / "nan", mode="sup", save_interval_steps=1,
                                 training_number_of_steps=5), tf.distribute.MirroredStrategy(["/cpu:0"]))
    original = steps.sup_losses

    def poisoned(model, config, labeled, classification=None):
        losses, monitors, visuals = original(model, config, labeled, classification)
        nan_from_step_3 = tf.where(trainer.optimizer.iterations >= 2, float("nan"), 1.0)
        return {k: v * nan_from_step_3 for k, v in losses.items()}, monitors, visuals

    monkeypatch.setattr(steps, "sup_losses", poisoned)
    with pytest.raises(FloatingPointError, match=r"step 3: supervised.*ckpt-2"):
        trainer.run()
    latest = tf.train.latest_checkpoint(str(tmp_path / "nan"))
    assert latest.endswith("ckpt-2")
    reader = tf.train.load_checkpoint(latest)
    values = [reader.get_tensor(name) for name, _ in tf.train.list_variables(latest)]
    floats = [v for v in values if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    assert len(floats) > 50 and all(np.isfinite(v).all() for v in floats)


def test_the_seed_fixes_the_initial_weights(toy_dataset, tmp_path):
    from wss_tf.trainer import Trainer

    def initial(seed, name):
        trainer = Trainer(toy_config(toy_dataset, tmp_path / name, seed=seed))
        return [v.numpy() for v in trainer.model.weights]

    a, b, c = initial(3, "a"), initial(3, "b"), initial(4, "c")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c))


def test_the_labeled_and_unlabeled_streams_draw_independently(toy_dataset, tmp_path):
    """With one split on both sides and one seed, the unlabeled weak view must not be the labeled crop (the
    official streams draw from separate generators)."""
    from wss_tf.trainer import Trainer

    trainer = Trainer(toy_config(toy_dataset, tmp_path, train_split_cls="train", train_batch_size=2))
    labeled, unlabeled = trainer.datasets(0)
    same = 0
    for (l, u), _ in zip(zip(labeled, unlabeled), range(3)):
        same += sum(np.array_equal(x, y) for x, y in zip(l["image"].numpy(), u["weak"].numpy()))
    assert same == 0


def test_batch_norm_reestimation_after_the_last_step_once(toy_dataset, tmp_path):
    from wss_tf.trainer import Trainer

    def moving_means(trainer):
        return {v.path: v.numpy() for v in trainer.model.segmenter.non_trainable_weights if "moving_mean" in v.path}

    plain = Trainer(toy_config(toy_dataset, tmp_path, training_number_of_steps=2))
    plain.run()
    before = moving_means(plain)
    # each progress line closes a pseudo-label quality window: one line per logged step, every source's mIoU
    with open(tmp_path / "pseudo_label_quality.jsonl") as f:
        windows = [json.loads(line) for line in f]
    assert [w["step"] for w in windows] == [1, 2] and all(w["images"] == 2 for w in windows)
    assert {"miou/decoder", "miou/cam", "miou/sgc", "miou/pseudo_label", "miou/strong", "classifier_map"} <= set(
        windows[-1]) and all(0 <= windows[-1][k] <= 1 for k in windows[-1] if "/" in k)
    assert plain.last_quality == {k: v for k, v in windows[-1].items() if k not in ("step", "images")}

    # The same finished run with bn_reestimation_batches: re-estimated once, saved as the last checkpoint.
    config = toy_config(toy_dataset, tmp_path, training_number_of_steps=2, bn_reestimation_batches=3)
    trainer = Trainer(config)
    trainer.run()
    assert bool(trainer.bn_reestimated.numpy())
    after = moving_means(trainer)
    # At decay 0.9997 two steps leave the averages near their initial zeros; the re-estimated ones are the crops'.
    assert max(np.abs(after[k] - v).max() for k, v in before.items()) > 1e-2
    again = Trainer(config)  # a rerun restores the re-estimated statistics and does not redo them
    again.run()
    assert all(np.array_equal(after[k], v) for k, v in moving_means(again).items())
    assert _latest_step(tmp_path) == 2
