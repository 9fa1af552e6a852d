import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import write_toy_records
from wss_tf.data import pipeline
from wss_tf.data.datasets import DatasetInfo, load_dataset_info, write_dataset_info
from wss_tf.experiments import experiment_names, load_experiment, published
from wss_tf.reproduce import batch_plan, check_records, parse_overrides, reproduce
from wss_tf.results import read_results, render


def test_every_paper_cell_has_an_experiment():
    numbers = published()
    names = experiment_names()
    assert len(names) == 25  # VOC 5 fractions x 3 methods, COCO 5 x 2
    cells = {(e.table, e.row, e.column) for e in map(load_experiment, names)}
    for table, methods in (("pascal_voc_seg", ("supervised", "PseudoSeg", "PseudoSeg + image labels")),
                           ("coco", ("supervised", "PseudoSeg"))):
        for split in numbers[table]["columns"]:
            for method in methods:
                assert (table, method, split) in cells


@pytest.fixture(scope="module")
def paper_records(tmp_path_factory):
    """Tiny records under every split name the paper experiments read (VOC and COCO ids in range)."""
    directory = tmp_path_factory.mktemp("paper_records")
    splits = {e.train.train_split for e in map(load_experiment, experiment_names())}
    splits |= {"train_aug", "train", "val"}
    for split in sorted(splits):
        write_toy_records(directory, split, n=2, num_classes=21)
    return str(directory)


def test_every_config_parses_and_builds_its_model_and_pipeline(paper_records):
    """Each experiment's settings, model (xception_65, OS16, rates 6/12/18, its class count; built once per
    distinct architecture) and input streams at the official shapes (513 crops, 4 images per replica on 16 GPUs;
    built once per distinct stream setting, every experiment's splits found)."""
    from wss_tf.model import PseudoSegModel

    experiments = [load_experiment(n) for n in experiment_names()]
    built, streams = {}, {}
    for experiment in experiments:
        config = experiment.train
        info = load_dataset_info(config.dataset)
        assert info.num_classes == (21 if experiment.table == "pascal_voc_seg" else 81)
        assert config.model_variant == "xception_65" and config.output_stride == 16
        assert config.atrous_rates == (6, 12, 18) and config.decoder_output_stride == 4
        assert config.train_crop_size == (513, 513) and config.train_batch_size == 64
        assert config.base_learning_rate == 0.007 and config.learning_policy == "poly"
        assert config.training_number_of_steps == (30000 if experiment.table == "pascal_voc_seg" else 200000)
        assert experiment.eval_crop_size == ((513, 513) if experiment.table == "pascal_voc_seg" else (641, 641))
        deeplab = config.deeplab(info.num_classes)
        if deeplab not in built:  # the functional segmenter creates its variables without a forward pass
            model = PseudoSegModel(deeplab, use_attention=config.use_attention, attention_dim=config.attention_dim,
                                   att_strides=config.att_strides)
            built[deeplab] = sum(int(np.prod(v.shape)) for v in model.segmenter.weights)
        check_records(experiment, paper_records)  # every split it reads is found
        per_replica = batch_plan(config, 16).global_batch // 16
        key = (config.augment(), per_replica, config.mode, config.weakly, experiment.eval_crop_size)
        if key in streams:  # the streams' graphs depend on these settings, not on the split names
            continue
        stream = pipeline.StreamConfig(paper_records, config.train_split, info.num_classes, per_replica)
        labeled = pipeline.labeled_dataset(stream, config.augment())
        assert labeled.element_spec["image"].shape.as_list() == [4, 513, 513, 3]
        if config.mode == "wss":
            unlabeled = pipeline.unlabeled_dataset(
                pipeline.StreamConfig(paper_records, config.train_split_cls, info.num_classes, per_replica),
                config.augment(), with_cls=config.weakly)
            assert unlabeled.element_spec["strong"].shape.as_list() == [4, 513, 513, 3]
            assert ("cls_label" in unlabeled.element_spec) == config.weakly
        evaluation = pipeline.eval_dataset(pipeline.StreamConfig(paper_records, "val", info.num_classes, 1),
                                           experiment.eval_crop_size, (127.5,) * 3)
        assert evaluation.element_spec["image"].shape.as_list()[1:3] == list(experiment.eval_crop_size)
        streams[key] = labeled
    assert len(streams) == 5  # VOC: supervised, semi, weakly; COCO: supervised, semi
    assert len(built) == 2  # one architecture per dataset: the logits differ by 60 classes x (256 + 1)
    assert np.diff(sorted(built.values()))[0] == 60 * 257
    batch = next(iter(streams[key]))  # one real batch at the official crop
    assert batch["image"].shape == (4, 513, 513, 3)


def test_supervised_experiments_start_from_train_sup_defaults():
    experiment = load_experiment("voc_92_supervised")
    assert experiment.train.mode == "sup" and experiment.train.initialize_last_layer
    assert experiment.train.base_learning_rate == 0.007  # our choice over train_sup.py's 1e-4 (README)
    assert load_experiment("coco_512_pseudoseg").train.train_split_cls == "train"  # not the README's train_aug


def test_batch_plan_keeps_the_paper_batch_or_scales_the_learning_rate():
    config = load_experiment("voc_92_pseudoseg").train
    plan = batch_plan(config, 16)
    assert (plan.global_batch, plan.base_learning_rate, plan.scaled) == (64, 0.007, False)
    assert batch_plan(config, 1).global_batch == 64  # one GPU with the memory for it: 64 per replica
    plan = batch_plan(config, 4, max_per_replica_batch=8)
    assert (plan.global_batch, plan.scaled) == (32, True) and plan.base_learning_rate == pytest.approx(0.0035)
    assert batch_plan(config, 3).global_batch == 63  # 64 does not split over 3
    assert "scaled linearly" in plan.describe(config)


def test_missing_records_name_the_split_and_the_builder(tmp_path):
    write_toy_records(tmp_path, "16_clean_3", n=2, num_classes=21)
    with pytest.raises(FileNotFoundError, match=r"train_aug, val.*build-voc"):
        check_records(load_experiment("voc_92_pseudoseg"), str(tmp_path))


def test_reproduce_trains_evaluates_every_checkpoint_and_renders(tmp_path):
    data = tmp_path / "records"
    for split in ("16_clean_3", "train_aug", "val"):
        write_toy_records(data, split, n=4, num_classes=4)
    write_dataset_info(DatasetInfo("toy", ("background", "a", "b", "c"), (65, 65)), str(data))
    overrides = parse_overrides([
        "dataset=toy", "model_variant=xception_tiny", "aspp_convs_filters=16", "decoder_filters=16",
        "attention_dim=8", "train_crop_size=[33,33]", "cutout_pad_size=6", "training_number_of_steps=2",
        "save_interval_steps=1", "log_steps=1", "train_batch_size=2", "save_summaries_images=false",
        "eval_crop_size=[65,65]"])
    experiment = load_experiment("voc_92_pseudoseg")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    workdir = str(tmp_path / "paper")
    result = reproduce(experiment, dataset_dir=str(data), workdir=workdir, overrides=overrides, strategy=strategy)
    assert result["evaluations"] == 2 and result["last_step"] == 2  # ckpt-1 and ckpt-2, every one kept
    with open(os.path.join(workdir, experiment.name, "eval", "results.jsonl")) as f:
        mious = {json.loads(line)["step"]: json.loads(line)["miou"] for line in f}
    assert result["best_miou"] == max(mious.values()) and result["last_miou"] == mious[2]
    # a second call trains and evaluates nothing more, and appends the same result
    again = reproduce(experiment, dataset_dir=str(data), workdir=workdir, overrides=overrides, strategy=strategy)
    assert again["evaluations"] == 2 and again["best_miou"] == result["best_miou"]
    results = read_results(os.path.join(workdir, "results.jsonl"))
    table = render(results)
    assert "PseudoSeg (this port: last / best)" in table
    last, best = 100 * result["last_miou"], 100 * result["best_miou"]
    assert f"{last:.2f} / {best:.2f} ({last - 57.60:+.2f} / {best - 57.60:+.2f})" in table
    assert np.isfinite(result["best_miou"])
