"""The scaled-down study in the paper's regime: every run starts from the same pretrained backbone (the ImageNet
analog of `./run.sh pretrain`), on two generated datasets of different families. Per cell (dataset, labeled split):
the supervised baseline, PseudoSeg (semi: the pool unlabeled) and PseudoSeg with image-level labels (weakly), and on
the first cell the paper's pseudo-label ablation (decoder only, SGC only, fused = PseudoSeg), each over several
seeds; val mIoU mean and std, the per-seed paired differences, and the pseudo-label quality (mIoU of each source,
classifier mAP) at the end of training and over it.

  ./run.sh study [--workdir=runs/study] [--seeds=0,1,2] [--cells=shapes/labeled_16,objects/labeled_16,...]

Every run appends a line to workdir/results.jsonl when it is evaluated; a restarted study skips finished runs and
resumes an interrupted one from its last checkpoint. Tables go to stdout and workdir/results.md.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import app, flags, logging

from wss_tf import app_runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_string("config", os.path.join(ROOT, "configs", "demo.json"), "shared settings of every run")
flags.DEFINE_string("workdir", os.path.join(ROOT, "runs", "study"), "data, runs and results go here")
flags.DEFINE_string("pretrain_dir", os.path.join(ROOT, "runs", "pretrain"), "the pretrained backbone's cache")
flags.DEFINE_list("seeds", ["0", "1", "2"], "training seeds (the data and the pretrained backbone are the same)")
flags.DEFINE_list("cells", ["shapes/labeled_16", "objects/labeled_16", "shapes/labeled_64"],
                  "dataset/labeled split cells; the ablation runs on the first")
flags.DEFINE_bool("ablation", True, "also decoder-only and SGC-only pseudo labels on the first cell")
flags.DEFINE_integer("training_number_of_steps", None, "override the config's step count")
flags.DEFINE_bool("summary_only", False, "print the tables of the runs finished so far (results.jsonl) and exit")
flags.DEFINE_integer("bn_reestimation_batches", 50, "also score every run after re-estimating its batch-norm "
                     "statistics over this many passes on its own training crops (in memory); 0: off")
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
}
# Paired differences reported per cell: (method, reference).
COMPARISONS = (("PseudoSeg", "supervised"), ("PseudoSeg + image labels", "supervised"),
               ("PseudoSeg + image labels", "PseudoSeg"), ("PseudoSeg", "pseudo label: decoder only"),
               ("PseudoSeg", "pseudo label: SGC only"))
QUALITY_KEYS = ("miou/decoder", "miou/cam", "miou/sgc", "miou/pseudo_label", "miou/strong", "classifier_map",
                "classifier_map_chance")
QUALITY_TITLES = ("decoder", "CAM", "SGC", "fused", "strong view", "classifier mAP", "mAP at chance")


def datasets():
    """dataset name -> its generator (writes or reuses the records; returns a GeneratedDataset)."""
    from wss_tf.data import synthetic, synthetic_objects

    return {"shapes": synthetic.generate, "objects": synthetic_objects.generate}


def plan(cells, seeds, ablation: bool) -> list[tuple[str, str, int]]:
    """(method, cell, seed) in the order they run: seed by seed (a study cut short has whole seeds), within a seed
    the cells in order with the first cell's ablation right after its methods."""
    runs = []
    for seed in seeds:
        for index, cell in enumerate(cells):
            runs += [(m, cell, seed) for m in METHODS]
            if ablation and index == 0:
                runs += [(m, cell, seed) for m in ABLATION]
    return runs


def run_name(method: str, cell: str, seed: int) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in method.lower()).strip("_")
    return f"{cell.replace('/', '__')}__{slug}__seed{seed}"


def _values(results, method, cell, key="miou"):
    return {r["seed"]: r[key] for r in results if r["method"] == method and r["cell"] == cell and key in r}


def _mean_std(values) -> str:
    if not values:
        return "-"
    std = f" ± {100 * np.std(values, ddof=1):.1f}" if len(values) > 1 else ""
    return f"{100 * np.mean(values):.1f}{std} (n={len(values)})"


def _score_tables(results, cells, key: str, title: str) -> list[str]:
    methods = list(METHODS) + list(ABLATION)
    lines = [f"{title}: val mIoU (%), mean ± sample std over seeds", "",
             "| method | " + " | ".join(cells) + " |", "|" + "---|" * (1 + len(cells))]
    for method in methods:
        cells_text = [_mean_std(list(_values(results, method, c, key).values())) for c in cells]
        if any(t != "-" for t in cells_text):
            lines.append(f"| {method} | " + " | ".join(cells_text) + " |")
    lines += ["", f"{title}: paired differences in val mIoU (points; a seed fixes the initial head weights, dropout "
              "and data order)", "", "| difference | cell | mean | per seed | wins |", "|---|---|---|---|---|"]
    for method, reference in COMPARISONS:
        for cell in cells:
            a, b = _values(results, method, cell, key), _values(results, reference, cell, key)
            seeds = sorted(set(a) & set(b))
            if not seeds:
                continue
            diffs = [100 * (a[s] - b[s]) for s in seeds]
            per_seed = ", ".join(f"{s}: {d:+.1f}" for s, d in zip(seeds, diffs))
            wins = sum(d > 0 for d in diffs)
            lines.append(f"| {method} − {reference} | {cell} | {np.mean(diffs):+.1f} | {per_seed} | "
                         f"{wins}/{len(seeds)} |")
    return lines


def summarize(results: list[dict], cells) -> str:
    """Markdown: val mIoU per method and cell and paired differences per seed (as trained, and with re-estimated
    batch-norm statistics where scored), pseudo-label quality, times."""
    methods = list(METHODS) + list(ABLATION)
    lines = _score_tables(results, cells, "miou", "as trained")
    if any("miou_bn" in r for r in results):
        lines += [""] + _score_tables(results, cells, "miou_bn", "batch-norm statistics re-estimated")

    lines += ["", "pseudo-label quality in the last progress window of training (mIoU % of each source against the "
              "unlabeled pool's masks, classifier mAP %; mean over seeds)", "",
              "| method | cell | " + " | ".join(QUALITY_TITLES) + " |", "|" + "---|" * (2 + len(QUALITY_KEYS))]
    for cell in cells:
        for method in methods:
            windows = [r["quality"][-1] for r in results
                       if r["method"] == method and r["cell"] == cell and r.get("quality")]
            if not windows:
                continue
            row = [f"{100 * np.mean([w[k] for w in windows if k in w]):.1f}" if any(k in w for w in windows)
                   else "-" for k in QUALITY_KEYS]
            lines.append(f"| {method} | {cell} | " + " | ".join(row) + " |")

    lines += ["", "training time per run (s, mean)", "", "| method | " + " | ".join(cells) + " |",
              "|" + "---|" * (1 + len(cells))]
    for method in methods:
        row = [f"{np.mean(list(v.values())):.0f}" if (v := _values(results, method, c, "train_seconds")) else "-"
               for c in cells]
        if any(t != "-" for t in row):
            lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def quality_over_training(results: list[dict], method: str, cell: str, every: int = 4) -> str:
    """The mean over seeds of the quality windows of one method and cell, every `every`-th window."""
    curves = [r["quality"] for r in results if r["method"] == method and r["cell"] == cell and r.get("quality")]
    if not curves:
        return ""
    steps = sorted({w["step"] for curve in curves for w in curve})
    shown = steps[every - 1::every] if len(steps) > every else steps
    if steps and steps[-1] not in shown:
        shown.append(steps[-1])
    lines = [f"{method} on {cell}: pseudo-label quality over training (mean over {len(curves)} seeds)", "",
             "| step | " + " | ".join(QUALITY_TITLES) + " |", "|" + "---|" * (1 + len(QUALITY_KEYS))]
    for step in shown:
        windows = [w for curve in curves for w in curve if w["step"] == step]
        row = [f"{100 * np.mean([w[k] for w in windows if k in w]):.1f}" if any(k in w for w in windows) else "-"
               for k in QUALITY_KEYS]
        lines.append(f"| {step} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _report(results: list[dict], cells) -> str:
    return "\n\n".join(t for t in [summarize(results, cells)] + [
        quality_over_training(results, m, cells[0]) for m in ("PseudoSeg", "PseudoSeg + image labels")] if t)


def _write_results(path: str, results: list[dict]) -> None:
    """The whole results file, replaced atomically (a record may have gained a score)."""
    with open(path + ".incomplete", "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in results))
    os.replace(path + ".incomplete", path)


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    from wss_tf.distribute import make_strategy

    strategy = make_strategy(1)
    from wss_tf.config import TrainConfig
    from wss_tf.generated_run import train_and_evaluate
    from wss_tf.pretraining import PretrainConfig, pretrain

    with open(FLAGS.config) as f:
        settings = json.load(f)
    if FLAGS.training_number_of_steps:
        settings["training_number_of_steps"] = FLAGS.training_number_of_steps
    cells = list(FLAGS.cells)
    unknown = sorted({c.split("/")[0] for c in cells} - set(datasets()))
    if unknown:
        raise app.UsageError(f"unknown datasets {unknown} in --cells; known: {sorted(datasets())}")
    if FLAGS.summary_only:
        results_path = os.path.join(FLAGS.workdir, "results.jsonl")
        with open(results_path) as f:
            print(_report([json.loads(line) for line in f if line.strip()], cells))
        return
    started = time.time()
    backbone = pretrain(PretrainConfig(model_variant=settings["model_variant"]), FLAGS.pretrain_dir,
                        log=logging.info)
    data = {name: datasets()[name](os.path.join(FLAGS.workdir, f"data_{name}"), seed=0)
            for name in dict.fromkeys(c.split("/")[0] for c in cells)}
    results_path = os.path.join(FLAGS.workdir, "results.jsonl")
    results = []
    if os.path.exists(results_path):
        with open(results_path) as f:
            results = [json.loads(line) for line in f if line.strip()]
    done = {r["run"]: r for r in results}
    runs = plan(cells, [int(s) for s in FLAGS.seeds], FLAGS.ablation)
    for index, (method, cell, seed) in enumerate(runs):
        name = run_name(method, cell, seed)
        if name in done and ("miou_bn" in done[name] or FLAGS.bn_reestimation_batches <= 0):
            continue
        dataset, split = cell.split("/")
        mode, changes = {**METHODS, **ABLATION}[method]
        config = TrainConfig.from_dict({
            **settings, **changes, "mode": mode, "dataset": data[dataset].dataset_name, "train_split": split,
            "seed": seed, "dataset_dir": data[dataset].output_dir, "tf_initial_checkpoint": backbone.checkpoint,
            "train_logdir": os.path.join(FLAGS.workdir, "runs", name)})
        logging.info("=== run %d/%d: %s on %s, seed %d (%s)", index + 1, len(runs), method, cell, seed,
                     config.train_logdir)
        result, seconds = train_and_evaluate(config, strategy, data[dataset],
                                             bn_reestimation_batches=FLAGS.bn_reestimation_batches)
        record = done.get(name) or {
            "run": name, "method": method, "cell": cell, "dataset": dataset, "split": split, "seed": seed,
            "miou": result["miou"], "pixel_accuracy": result["pixel_accuracy"],
            "per_class_iou": result["per_class_iou"], "quality": result["quality"],
            "train_seconds": seconds, "steps": config.training_number_of_steps}
        if "bn_reestimated" in result:  # a finished run scored earlier gets this score added
            record.update(miou_bn=result["bn_reestimated"]["miou"],
                          pixel_accuracy_bn=result["bn_reestimated"]["pixel_accuracy"])
        if name not in done:
            results.append(record)
        _write_results(results_path, results)
        logging.info("%s on %s, seed %d: val mIoU %.1f%%, pixel acc %.1f%% (%.0fs)%s", method, cell, seed,
                     100 * record["miou"], 100 * record["pixel_accuracy"], record["train_seconds"],
                     f"; batch-norm statistics re-estimated: {100 * record['miou_bn']:.1f}%"
                     if "miou_bn" in record else "")
    text = _report(results, cells)
    header = (f"{settings['training_number_of_steps']} steps per run ({FLAGS.config}), from the pretrained backbone "
              f"{backbone.checkpoint} (pretraining {backbone.seconds:.0f}s, held-out accuracy "
              f"{100 * backbone.held_out_accuracy:.1f}%)")
    with open(os.path.join(FLAGS.workdir, "results.md"), "w") as f:
        f.write(header + "\n\n" + text + "\n")
    print(f"\n{header}\n\n{text}\n\nthis call {time.time() - started:.0f}s; runs in {FLAGS.workdir}/runs")


if __name__ == "__main__":
    app_runner.run(main)
