"""The scaled-down study: on the generated dataset, the supervised baseline, PseudoSeg (semi) and PseudoSeg with
image-level labels (weakly) at two label fractions and several seeds, plus the paper's pseudo-label ablation
(decoder only, SGC only, fused), each run trained and evaluated on val; mean and standard deviation per cell.

  ./run.sh study [--workdir=runs/study] [--seeds=0,1,2] [--splits=labeled_16,labeled_64] [--no_ablation]

Every run appends a line to workdir/results.jsonl when it is evaluated; a restarted study skips finished runs and
resumes an interrupted one from its last checkpoint. The table goes to stdout and workdir/results.md.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import app, flags, logging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_string("config", os.path.join(ROOT, "configs", "demo.json"), "shared settings of every run")
flags.DEFINE_string("workdir", os.path.join(ROOT, "runs", "study"), "data, runs and results go here")
flags.DEFINE_list("seeds", ["0", "1", "2"], "training seeds (the data is the same for all)")
flags.DEFINE_list("splits", ["labeled_16", "labeled_64"], "labeled splits of the generated data")
flags.DEFINE_bool("ablation", True, "also decoder-only and SGC-only pseudo labels on the first split")
flags.DEFINE_integer("training_number_of_steps", None, "override the config's step count")
FLAGS = flags.FLAGS

# name -> (train mode, settings over the shared config)
METHODS = {
    "supervised": ("sup", {}),
    "PseudoSeg": ("wss", {}),
    "PseudoSeg + image labels": ("wss", {"weakly": True}),
}
ABLATION = {
    "pseudo label: decoder only": ("wss", {"use_attention": False}),
    "pseudo label: SGC only": ("wss", {"pseudo_src": "att"}),
    "pseudo label: fused (PseudoSeg)": ("wss", {}),
}


def plan(splits, seeds, ablation: bool) -> list[tuple[str, str, int]]:
    """(method, split, seed) in the order they run: every method and split for one seed before the next seed,
    so a study cut short still has whole seeds; the ablation's extra variants last (fused = PseudoSeg)."""
    runs = [(m, s, seed) for seed in seeds for s in splits for m in METHODS]
    if ablation:
        runs += [(m, splits[0], seed) for seed in seeds for m in ABLATION if ABLATION[m][1]]
    return runs


def run_name(method: str, split: str, seed: int) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in method.lower()).strip("_")
    return f"{slug}__{split}__seed{seed}"


def summarize(results: list[dict], splits) -> str:
    """Markdown table: mean +- std of val mIoU (and pixel accuracy) over seeds, per method and split."""
    def cell(method, split, key):
        values = [r[key] for r in results if r["method"] == method and r["split"] == split]
        if not values:
            return "-"
        std = f" ± {100 * np.std(values, ddof=1):.1f}" if len(values) > 1 else ""
        return f"{100 * np.mean(values):.1f}{std} (n={len(values)})"

    header = "| method | " + " | ".join(f"{s} mIoU | {s} pixel acc" for s in splits) + " |"
    lines = [header, "|" + "---|" * (1 + 2 * len(splits))]
    fused = "pseudo label: fused (PseudoSeg)"
    for method in list(METHODS) + [m for m in ABLATION if m != fused]:
        cells = [f"{cell(method, s, 'miou')} | {cell(method, s, 'pixel_accuracy')}" for s in splits]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    from wss_tf.distribute import make_strategy

    strategy = make_strategy(1)
    import keras

    from wss_tf.config import TrainConfig
    from wss_tf.data.synthetic import generate
    from wss_tf.generated_run import train_and_evaluate

    with open(FLAGS.config) as f:
        settings = json.load(f)
    if FLAGS.training_number_of_steps:
        settings["training_number_of_steps"] = FLAGS.training_number_of_steps
    data = generate(os.path.join(FLAGS.workdir, "data"), seed=0)
    results_path = os.path.join(FLAGS.workdir, "results.jsonl")
    results = []
    if os.path.exists(results_path):
        with open(results_path) as f:
            results = [json.loads(line) for line in f if line.strip()]
    done = {r["run"] for r in results}
    runs = plan(FLAGS.splits, [int(s) for s in FLAGS.seeds], FLAGS.ablation)
    started = time.time()
    for index, (method, split, seed) in enumerate(runs):
        name = run_name(method, split, seed)
        if name in done:
            continue
        mode, changes = {**METHODS, **ABLATION}[method]
        config = TrainConfig.from_dict({**settings, **changes, "mode": mode, "train_split": split, "seed": seed,
                                        "dataset_dir": data.output_dir,
                                        "train_logdir": os.path.join(FLAGS.workdir, "runs", name)})
        logging.info("=== run %d/%d: %s on %s, seed %d (%s)", index + 1, len(runs), method, split, seed,
                     config.train_logdir)
        keras.utils.set_random_seed(seed)  # initial weights and dropout differ per seed
        result, seconds = train_and_evaluate(config, strategy, data)
        record = {"run": name, "method": method, "split": split, "seed": seed, "miou": result["miou"],
                  "pixel_accuracy": result["pixel_accuracy"], "per_class_iou": result["per_class_iou"],
                  "train_seconds": seconds, "steps": config.training_number_of_steps}
        with open(results_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        results.append(record)
        logging.info("%s on %s, seed %d: val mIoU %.1f%%, pixel acc %.1f%% (%.0fs)", method, split, seed,
                     100 * result["miou"], 100 * result["pixel_accuracy"], seconds)
    table = summarize(results, FLAGS.splits)
    with open(os.path.join(FLAGS.workdir, "results.md"), "w") as f:
        f.write(table + "\n")
    print(f"\n{table}\n\nval mIoU / pixel accuracy in %, mean ± sample std over seeds; "
          f"{settings['training_number_of_steps']} steps per run ({FLAGS.config}); this call "
          f"{time.time() - started:.0f}s; runs in {FLAGS.workdir}/runs")


if __name__ == "__main__":
    app.run(main)
