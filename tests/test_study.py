from wss_tf.study import ABLATION, METHODS, plan, run_name, summarize


def test_plan_runs_whole_seeds_first_and_the_ablation_last():
    runs = plan(["labeled_16", "labeled_64"], [0, 1, 2], ablation=True)
    assert len(runs) == 3 * 2 * len(METHODS) + 3 * 2  # decoder-only and SGC-only extra; fused is PseudoSeg
    assert runs[:6] == [(m, s, 0) for s in ("labeled_16", "labeled_64") for m in METHODS]
    assert {m for m, _, _ in runs[18:]} == {m for m, (_, changes) in ABLATION.items() if changes}
    assert all(split == "labeled_16" for _, split, _ in runs[18:])
    assert len({run_name(*r) for r in runs}) == len(runs)
    assert len(plan(["labeled_16"], [0], ablation=False)) == len(METHODS)


def test_summary_is_mean_and_sample_std_over_seeds():
    results = [{"method": "supervised", "split": "labeled_16", "miou": v, "pixel_accuracy": 0.5}
               for v in (0.30, 0.32, 0.34)]
    results.append({"method": "PseudoSeg", "split": "labeled_16", "miou": 0.4, "pixel_accuracy": 0.6})
    table = summarize(results, ["labeled_16"])
    assert "| supervised | 32.0 ± 2.0 (n=3) | 50.0 ± 0.0 (n=3) |" in table
    assert "| PseudoSeg | 40.0 (n=1) | 60.0 (n=1) |" in table
    assert "| PseudoSeg + image labels | - | - |" in table
