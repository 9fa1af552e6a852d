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
