import glob
import json
import math
import os
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab import official_variable_map
from deeplab.layers import resize_bilinear
from wss_tf.config import RUN_CONFIG_FILE, TrainConfig
from wss_tf.data import pipeline
from wss_tf.evaluation import Evaluator, classification_scores, scores
from wss_tf.inference import build_model, predict_probabilities

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two 2x4 images. Truth holds classes 0 and 1 and two ignore pixels; class 2 is only predicted, class 3 is nowhere.
TRUTH = np.array([[[0, 0, 1, 1], [0, 255, 1, 255]],
                  [[1, 1, 0, 255], [0, 0, 255, 255]]])
PRED = np.array([[[0, 1, 1, 2], [0, 0, 1, 1]],
                 [[1, 2, 0, 3], [1, 0, 2, 2]]])
# Counted pairs (truth, prediction):
#   image 1: (0,0) (0,1) (1,1) (1,2) (0,0) (1,1); image 2: (1,1) (1,2) (0,0) (0,1) (0,0)
# rows = truth:   c0: pred0 4, pred1 2      c1: pred1 3, pred2 2
HAND = {"tp": [4, 3, 0, 0], "in_truth": [6, 5, 0, 0], "predicted": [4, 5, 2, 0]}


def _hand_iou():
    iou = []
    for tp, t, p in zip(HAND["tp"], HAND["in_truth"], HAND["predicted"]):
        union = t + p - tp
        iou.append(tp / union if union else None)
    return iou  # [4/6, 3/7, 0, None]


class _FixedSegmenter:
    """A segmenter whose logits are one-hot of the class id written in the image's first channel (stride 1)."""

    config = types.SimpleNamespace(decoder_output_stride=None, output_stride=1)

    def __call__(self, images, training):
        assert training is False
        return {"logits": 10.0 * tf.one_hot(tf.cast(images[..., 0], tf.int32), 4)}


def test_scores_equal_a_hand_computed_confusion_matrix():
    confusion = np.zeros((4, 4), np.int64)
    for t, p in zip(TRUTH.reshape(-1), PRED.reshape(-1)):
        if t != 255:
            confusion[t, p] += 1
    result = scores(confusion, ["bg", "a", "b", "c"])
    iou = _hand_iou()
    assert result["miou"] == pytest.approx((4 / 6 + 3 / 7 + 0.0) / 3)  # class 3 (never seen) is left out
    assert result["per_class_iou"]["bg"] == pytest.approx(iou[0])
    assert result["per_class_iou"]["a"] == pytest.approx(iou[1])
    assert math.isnan(result["per_class_iou"]["b"])  # predicted only: 0 in the mIoU, NaN per class (eval.py)
    assert math.isnan(result["per_class_iou"]["c"])
    assert result["pixel_accuracy"] == pytest.approx(7 / 11) and result["pixels"] == 11
    # an independent implementation of the same mIoU (classes with a non-empty union)
    keras_miou = keras.metrics.MeanIoU(num_classes=4, ignore_class=255)
    keras_miou.update_state(TRUTH.reshape(-1), PRED.reshape(-1))
    assert result["miou"] == pytest.approx(float(keras_miou.result()))


def test_streaming_evaluation_over_batches_equals_the_hand_computation():
    images = np.zeros(TRUTH.shape + (3,), np.float32)
    images[..., 0] = PRED
    dataset = tf.data.Dataset.from_tensor_slices(
        {"image": images, "label": TRUTH[..., None].astype(np.int32)}).batch(1)  # two batches, one image each
    model = types.SimpleNamespace(segmenter=_FixedSegmenter())
    result = Evaluator(model, 4, class_names=["bg", "a", "b", "c"]).evaluate(dataset)
    assert result["miou"] == pytest.approx((4 / 6 + 3 / 7 + 0.0) / 3)
    assert result["pixel_accuracy"] == pytest.approx(7 / 11)
    assert np.array(result["confusion_matrix"]).diagonal().tolist() == HAND["tp"]
    assert result["images"] == 2 and result["traces"] == 1


def test_classification_scores():
    # tp 3, fp 1, fn 2, tn 4
    assert classification_scores([3, 1, 2, 4]) == pytest.approx(
        {"cls_overall": 0.7, "cls_precision": 0.75, "cls_recall": 0.6})


def _toy_model(num_classes=4, seed=0):
    config = TrainConfig(model_variant="xception_tiny", aspp_convs_filters=16, decoder_filters=16, attention_dim=8,
                         dataset="toy")
    model = build_model(config, num_classes)
    rng = np.random.RandomState(seed)
    for name, var in official_variable_map(model).items():  # moving statistics and logits away from their init
        if name.endswith("moving_mean"):
            var.assign(rng.normal(0, 0.5, var.shape).astype(np.float32))
        elif name.endswith("moving_variance"):
            var.assign(rng.uniform(0.5, 2.0, var.shape).astype(np.float32))
        elif name == "logits/semantic/weights":  # logits of a size that varies over the image
            var.assign(rng.normal(0, 1.0, var.shape).astype(np.float32))
    return config, model


def test_single_scale_prediction_is_the_official_predict_labels():
    _, model = _toy_model()
    images = tf.random.stateless_uniform((2, 65, 49, 3), (1, 2), 0, 255)
    probabilities, end_points = predict_probabilities(model.segmenter, images)
    logits = model.segmenter(images, training=False)["logits"]
    upsampled = resize_bilinear(logits, [65, 49])  # eval.py: upsample (align corners), argmax
    assert np.array_equal(tf.argmax(probabilities, -1).numpy(), tf.argmax(upsampled, -1).numpy())
    np.testing.assert_allclose(probabilities.numpy(), tf.nn.softmax(upsampled).numpy(), atol=1e-6)
    assert float(tf.math.reduce_std(probabilities)) > 0.05
    np.testing.assert_allclose(tf.reduce_sum(probabilities, -1).numpy(), 1.0, atol=1e-5)
    assert model.final_end_point in end_points


def test_flipped_multi_scale_average():
    _, model = _toy_model()
    images = tf.random.stateless_uniform((1, 65, 65, 3), (3, 4), 0, 255)
    flip = lambda x: tf.reverse(x, [2])  # noqa: E731
    one, _ = predict_probabilities(model.segmenter, images)
    mirrored, _ = predict_probabilities(model.segmenter, flip(images))
    both, _ = predict_probabilities(model.segmenter, images, add_flipped_images=True)
    np.testing.assert_allclose(both.numpy(), ((one + flip(mirrored)) / 2).numpy(), atol=1e-6)
    # averaging over flips (and scales) makes the prediction mirror-equivariant
    scales = (0.5, 1.0, 1.25)
    a, _ = predict_probabilities(model.segmenter, images, scales, True)
    b, _ = predict_probabilities(model.segmenter, flip(images), scales, True)
    np.testing.assert_allclose(a.numpy(), flip(b).numpy(), atol=1e-5)
    assert np.abs(a.numpy() - both.numpy()).max() > 1e-3  # the other scales do change the result
    # scale 0.5: the image at s(65, 0.5) = 33, logits resized to s(65, 1/4) = 17, then to 65 (multi_scale_logits)
    half, _ = predict_probabilities(model.segmenter, images, (0.5,))
    logits = model.segmenter(resize_bilinear(images, [33, 33]), training=False)["logits"]
    expected = tf.nn.softmax(resize_bilinear(resize_bilinear(logits, [17, 17]), [65, 65]))
    np.testing.assert_allclose(half.numpy(), expected.numpy(), atol=1e-6)


def test_evaluator_on_records_traces_once_and_scores_the_classifier(toy_dataset):
    _, model = _toy_model()
    stream = pipeline.StreamConfig(toy_dataset, "val", 4, batch_size=3)  # 4 images of 4 sizes: batches of 3 and 1
    dataset = pipeline.eval_dataset(stream, (65, 65), model.spec.mean_pixel, with_cls=True)
    result = Evaluator(model, 4, weakly=True).evaluate(dataset)
    assert result["images"] == 4 and result["traces"] == 1
    # recompute every figure from the model and the records directly
    confusion, hits, entries = np.zeros((4, 4), np.int64), 0, 0
    for batch in dataset:
        out = model.segmenter(batch["image"], training=False)
        prediction = tf.argmax(resize_bilinear(out["logits"], [65, 65]), -1).numpy()
        truth = batch["label"].numpy()[..., 0]
        keep = truth != 255
        np.add.at(confusion, (truth[keep], prediction[keep]), 1)
        cls_logits, _ = model.head(out[model.final_end_point], training=False)
        hits += int(np.sum((tf.sigmoid(cls_logits).numpy() >= 0.5) == (batch["cls_label"].numpy() > 0.5)))
        entries += cls_logits.shape[0] * 3
    assert result["confusion_matrix"] == confusion.tolist()
    assert result["miou"] == pytest.approx(scores(confusion)["miou"])
    assert result["cls_overall"] == pytest.approx(hits / entries)


def _save(model, directory, step):
    checkpoint = tf.train.Checkpoint(model=model)
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=1).save(checkpoint_number=step)


def test_polling_keeps_last_and_best_and_stops_after_the_last_step(toy_dataset, tmp_path):
    from wss_tf.eval_loop import EvalSettings, ResultStore, run_evaluations
    from wss_tf.inference import restore_weights

    config, model = _toy_model()
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, RUN_CONFIG_FILE), "w") as f:
        f.write(config.replace(training_number_of_steps=20).to_json())
    images = tf.random.stateless_uniform((1, 65, 65, 3), (5, 6), 0, 255)
    outputs = {}

    def save(step):
        outputs[step] = model.segmenter(images, training=False)["logits"].numpy()
        _save(model, run_dir, step)

    save(10)

    def sleep(seconds):  # the trainer writes its last checkpoint while eval waits
        assert seconds == 7
        for var in official_variable_map(model).values():
            if var.name.endswith("bias"):
                var.assign(var + 5.0 * tf.random.normal(var.shape))
        save(20)  # max_to_keep=1: ckpt-10 is deleted

    settings = EvalSettings(run_dir, str(tmp_path / "eval"), toy_dataset, eval_interval_secs=7)
    results = run_evaluations(settings, config, sleep=sleep)
    assert [r["step"] for r in results] == [10, 20]
    assert not glob.glob(os.path.join(run_dir, "ckpt-10.*"))
    store = ResultStore(settings.eval_logdir)
    assert [r["step"] for r in store.results] == [10, 20]
    with open(tmp_path / "eval" / "last.json") as f:
        assert json.load(f)["step"] == 20
    with open(tmp_path / "eval" / "best.json") as f:
        best = json.load(f)
    assert best["miou"] == max(r["miou"] for r in results)
    # the best checkpoint survives the trainer's rotation and restores (with the run's config beside it)
    copy = os.path.join(settings.eval_logdir, "best_checkpoint")
    assert os.path.exists(os.path.join(copy, RUN_CONFIG_FILE))
    _, fresh = _toy_model(seed=1)
    restore_weights(fresh, copy)
    np.testing.assert_array_equal(fresh.segmenter(images, training=False)["logits"].numpy(), outputs[best["step"]])
    tags = {v.tag for p in glob.glob(os.path.join(settings.eval_logdir, "events.*"))
            for e in tf.compat.v1.train.summary_iterator(p) for v in e.summary.value}
    assert {"eval/miou_overall", "eval/miou_class_0", "eval/pixel_accuracy"} <= tags
    # a restarted eval skips what it has evaluated and stops: the run's last step is done
    assert run_evaluations(settings, config, sleep=lambda s: pytest.fail("should not wait")) == []


def test_eval_command_with_official_flags(toy_dataset, tmp_path):
    config, model = _toy_model()
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, RUN_CONFIG_FILE), "w") as f:
        f.write(config.to_json())
    checkpoint = _save(model, run_dir, 3)
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.run(
        [sys.executable, "-m", "wss_tf.eval", f"--checkpoint_dir={checkpoint}", f"--eval_logdir={tmp_path / 'eval'}",
         f"--dataset_dir={toy_dataset}", "--eval_split=val", "--eval_crop_size=65,65", "--eval_batch_size=2",
         "--eval_scales=0.75", "--eval_scales=1.0", "--add_flipped_images", "--weakly",
         "--max_number_of_evaluations=1"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    with open(tmp_path / "eval" / "last.json") as f:
        result = json.load(f)
    assert result["step"] == 3 and result["images"] == 4 and result["eval_scales"] == [0.75, 1.0]
    assert result["add_flipped_images"] and 0 <= result["cls_overall"] <= 1
    assert "mIoU" in process.stderr and "images/s" in process.stderr


def test_official_checkpoints_restore_and_a_missing_head_matters_only_for_weakly(tmp_path):
    from deeplab import save_official_checkpoint
    from wss_tf.inference import restore_weights

    _, model = _toy_model()
    prefix = save_official_checkpoint(model, str(tmp_path / "official" / "model.ckpt-30000"))
    _, fresh = _toy_model(seed=3)
    restore_weights(fresh, str(tmp_path / "official"), need_head=True)
    images = tf.random.stateless_uniform((1, 65, 65, 3), (7, 8), 0, 255)
    np.testing.assert_array_equal(fresh.segmenter(images, training=False)["logits"].numpy(),
                                  model.segmenter(images, training=False)["logits"].numpy())
    # an official train_sup.py checkpoint has no classifier head: fine for mIoU, an error for --weakly
    reader = tf.train.load_checkpoint(prefix)
    names = [n for n in reader.get_variable_to_shape_map() if not n.startswith("xception_tiny/logits")]
    headless = str(tmp_path / "headless" / "model.ckpt-1")
    os.makedirs(os.path.dirname(headless))
    tf.raw_ops.SaveV2(prefix=headless, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[reader.get_tensor(n) for n in names])
    restore_weights(fresh, headless)
    with pytest.raises(ValueError, match="xception_tiny/logits"):
        restore_weights(fresh, headless, need_head=True)
    _, other = _toy_model(num_classes=5)
    with pytest.raises(ValueError, match="shape mismatch"):
        restore_weights(other, prefix)
