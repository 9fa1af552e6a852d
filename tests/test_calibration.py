import json
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

from wss_tf.calibration import Reliability


def test_bins_and_ece_by_hand():
    # 4 bins: [0, .25) [.25, .5) [.5, .75) [.75, 1]; the third stays empty, 1.0 lands in the last.
    confidence = [0.1, 0.2, 0.3, 0.4, 0.45, 0.8, 0.9, 1.0, 0.6, 0.99]
    correct = [0, 1, 1, 0, 1, 1, 1, 1, 0, 0]
    mask = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]  # the last two pixels do not count
    rel = Reliability(4).update(np.array(confidence, np.float32), np.array(correct, bool), np.array(mask))
    np.testing.assert_array_equal(rel.count, [2, 3, 0, 3])
    np.testing.assert_allclose(rel.bin_confidence[[0, 1, 3]], [0.15, 1.15 / 3, 0.9], rtol=1e-6)
    np.testing.assert_allclose(rel.bin_accuracy[[0, 1, 3]], [0.5, 2 / 3, 1.0])
    assert np.isnan(rel.bin_accuracy[2]) and np.isnan(rel.bin_confidence[2])
    # ECE = (2 |.5 - .15| + 3 |2/3 - 1.15/3| + 3 |1 - .9|) / 8 = (0.7 + 0.85 + 0.3) / 8
    assert rel.ece == pytest.approx(1.85 / 8, rel=1e-6)
    assert rel.accuracy == pytest.approx(6 / 8) and rel.mean_confidence == pytest.approx(4.15 / 8, rel=1e-6)
    report = rel.to_dict()
    assert report["pixels"] == 8 and report["bins"][2] == {"lower": 0.5, "upper": 0.75, "count": 0,
                                                           "confidence": None, "accuracy": None}
    assert report["bins"][3]["upper"] == 1.0 and report["bins"][3]["count"] == 3


def test_streaming_over_two_batches_equals_one_batch():
    rng = np.random.RandomState(0)
    confidence = rng.uniform(0.2, 1.0, (2, 3, 7, 5)).astype(np.float32)
    correct = rng.uniform(size=confidence.shape) < confidence
    mask = rng.uniform(size=confidence.shape) < 0.8
    whole = Reliability(15).update(confidence, correct, mask)
    streamed = Reliability(15).update(confidence[0], correct[0], mask[0]).update(confidence[1], correct[1], mask[1])
    merged = Reliability(15).update(confidence[0], correct[0], mask[0]).merge(
        Reliability(15).update(confidence[1], correct[1], mask[1]))
    for other in (streamed, merged):
        np.testing.assert_array_equal(other.count, whole.count)
        np.testing.assert_allclose(other.confidence_sum, whole.confidence_sum, rtol=1e-12)
        np.testing.assert_allclose(other.correct_sum, whole.correct_sum)
        assert other.ece == pytest.approx(whole.ece, rel=1e-12)
    assert whole.total == mask.sum() and 0 < whole.ece < 1


def _write_checkpoint(directory):
    """A checkpoint as the trainer writes one: object-based, config.json beside it."""
    from wss_tf.config import RUN_CONFIG_FILE, TrainConfig
    from wss_tf.inference import build_model

    config = TrainConfig(model_variant="xception_tiny", aspp_convs_filters=16, decoder_filters=16, attention_dim=8,
                         dataset="toy", train_crop_size=(65, 65))
    model = build_model(config, 4, with_sgc=True)
    for v in model.segmenter.trainable_variables:
        if v.path == "logits.semantic/kernel":
            v.assign(v * 30.0)  # an untrained model would predict one class almost everywhere
    tf.train.Checkpoint(model=model).save(os.path.join(directory, "ckpt"))
    (directory / RUN_CONFIG_FILE).write_text(config.to_json())
    return str(directory)


def _known_pixels_at_grid(dataset_dir, split, crop=65, grid=17):
    """Labelled, non-padding pixels of a split after TF1 nearest resizing (index floor(i * crop / grid)), numpy."""
    from wss_tf.data.records import parse_example, split_files

    index = np.floor(np.arange(grid) * crop / grid).astype(int)
    total = 0
    for serialized in tf.data.TFRecordDataset(split_files(dataset_dir, split)):
        mask = parse_example(serialized)["label"].numpy()[..., 0]
        label = np.full((crop, crop), 255, np.uint8)
        label[:mask.shape[0], :mask.shape[1]] = mask
        total += int((label[index][:, index] != 255).sum())
    return total


def test_calibration_report_end_to_end(toy_dataset, tmp_path, capsys):
    from wss_tf import calibration_report

    checkpoint_dir = _write_checkpoint(tmp_path / "run")
    report_dir = tmp_path / "report"
    fv = flags.FlagValues()
    calibration_report.define_flags(fv)
    fv(["prog", f"--checkpoint_dir={checkpoint_dir}", f"--dataset_dir={toy_dataset}", "--split=pool",
        "--num_bins=10", f"--report_dir={report_dir}", "--save_pixels"])
    report = calibration_report.run(fv)

    saved = json.loads((report_dir / "calibration.json").read_text())
    assert saved["sources"].keys() == {"decoder", "sgc", "fused", "pseudo_label"} and saved["images"] == 8
    assert saved["batch_size"] == 4 and saved["decoder_mode"] == "training" and saved["dataset"] == "toy"
    with Image.open(report_dir / "reliability.png") as plot:
        assert plot.size[0] > 400 and plot.size[1] > 200
    # Every source counts the same pixels: the labelled, non-padding ones at the 17x17 logits grid.
    pixels = _known_pixels_at_grid(toy_dataset, "pool")
    assert all(s["pixels"] == pixels for s in saved["sources"].values()) and pixels > 0
    # The streamed ECE equals a direct recomputation from the saved per-pixel arrays.
    arrays = np.load(report_dir / "pixels.npz")
    for name in ("fused", "decoder"):
        confidence, correct = arrays[f"{name}/confidence"].astype(np.float64), arrays[f"{name}/correct"]
        assert confidence.size == pixels
        bins = np.minimum((confidence * 10).astype(int), 9)
        ece = sum(abs(correct[bins == b].sum() - confidence[bins == b].sum()) for b in range(10)) / pixels
        assert saved["sources"][name]["ece"] == pytest.approx(ece, rel=1e-6)
        assert saved["sources"][name]["accuracy"] == pytest.approx(correct.mean())
    # Sharpening (T = 0.5) raises the confidence of the fused probabilities.
    assert saved["sources"]["pseudo_label"]["mean_confidence"] > saved["sources"]["fused"]["mean_confidence"]
    assert set(saved["fused_lower_ece_than"]) == {"decoder", "sgc"} and report["sources"] == saved["sources"]
    table = capsys.readouterr().out
    assert "fused (before sharpening)" in table and "ECE" in table
    # mIoU of each source's argmax against the masks and the classifier's mAP
    assert set(saved["quality"]) == {"miou/decoder", "miou/cam", "miou/sgc", "miou/pseudo_label", "classifier_map",
                                     "classifier_map_chance"}
    assert all(0 <= v <= 1 for v in saved["quality"].values()) and "pseudo-label mIoU decoder" in table
