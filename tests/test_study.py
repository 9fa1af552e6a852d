from wss_tf.study import ABLATION, METHODS, plan, quality_over_training, run_name, summarize

CELLS = ["shapes/labeled_16", "objects/labeled_16", "shapes/labeled_64"]


def test_plan_runs_whole_seeds_first_with_the_ablation_on_the_first_cell():
    runs = plan(CELLS, [0, 1, 2], ablation=True)
    per_seed = len(CELLS) * len(METHODS) + len(ABLATION)
    assert len(runs) == 3 * per_seed
    assert {seed for _, _, seed in runs[:per_seed]} == {0}
    assert runs[:len(METHODS) + len(ABLATION)] == [(m, CELLS[0], 0) for m in list(METHODS) + list(ABLATION)]
    assert all(cell == CELLS[0] for m, cell, _ in runs if m in ABLATION)
    assert len({run_name(*r) for r in runs}) == len(runs)
    assert len(plan(CELLS[:1], [0], ablation=False)) == len(METHODS)


def _result(method, cell, seed, miou, quality=None):
    return {"method": method, "cell": cell, "seed": seed, "miou": miou, "pixel_accuracy": 0.5,
            "train_seconds": 10.0, "quality": quality or []}


def test_summary_has_mean_std_paired_differences_and_quality():
    windows = [{"step": s, "images": 8, "miou/decoder": 0.1 * s, "classifier_map": 0.5} for s in (1, 2)]
    results = [_result("supervised", CELLS[0], s, v) for s, v in zip((0, 1, 2), (0.30, 0.32, 0.34))]
    results += [_result("PseudoSeg", CELLS[0], s, v, windows) for s, v in zip((0, 1), (0.40, 0.31))]
    table = summarize(results, CELLS[:1])
    assert "| supervised | 32.0 ± 2.0 (n=3) |" in table
    assert "| PseudoSeg | 35.5 ± 6.4 (n=2) |" in table
    assert "| PseudoSeg − supervised | shapes/labeled_16 | +4.5 | 0: +10.0, 1: -1.0 | 1/2 |" in table
    assert "| PseudoSeg | shapes/labeled_16 | 20.0 | - | - | - | - | 50.0 | - |" in table  # the last window
    curve = quality_over_training(results, "PseudoSeg", CELLS[0], every=1)
    assert "| 1 | 10.0 |" in curve and "| 2 | 20.0 |" in curve


def test_summary_adds_the_reestimated_scores_when_present():
    results = [dict(_result("supervised", CELLS[0], 0, 0.30), miou_bn=0.31),
               dict(_result("PseudoSeg", CELLS[0], 0, 0.25), miou_bn=0.29)]
    table = summarize(results, CELLS[:1])
    section = table.split("batch-norm statistics re-estimated: val mIoU")[1]
    assert "| PseudoSeg | 29.0 (n=1) |" in section
    assert "| PseudoSeg − supervised | shapes/labeled_16 | -2.0 | 0: -2.0 | 0/1 |" in section


def test_train_and_evaluate_scores_the_run_and_its_reestimated_statistics(tmp_path):
    from wss_tf.config import TrainConfig
    from wss_tf.data.synthetic import generate
    from wss_tf.generated_run import train_and_evaluate

    data = generate(str(tmp_path / "data"), num_train=8, num_val=2, labeled_sizes=(6,),
                    image_size_range=(40, 48), num_shards=1)
    config = TrainConfig(model_variant="xception_tiny", dataset=data.dataset_name, dataset_dir=data.output_dir,
                         train_split="labeled_6", train_split_cls="train", train_crop_size=(33, 33),
                         cutout_pad_size=6, train_batch_size=2,
                         training_number_of_steps=2, log_steps=1, aspp_convs_filters=16, decoder_filters=16,
                         attention_dim=16, train_logdir=str(tmp_path / "run"), save_summaries_secs=0)
    result, _ = train_and_evaluate(config, None, data, bn_reestimation_batches=2)
    assert 0 <= result["miou"] <= 1 and [w["step"] for w in result["quality"]] == [1, 2]
    assert set(result["bn_reestimated"]) == {"miou", "pixel_accuracy", "per_class_iou"}
