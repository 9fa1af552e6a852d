"""Every reproduced experiment beside the paper's numbers, as markdown tables (one per dataset).

  ./run.sh results [--results=runs/paper/results.jsonl] [--output=runs/paper/results.md]

Each of our cells reads "last / best" val mIoU (the best over every evaluated checkpoint, as peers report), with
the difference to the paper's number of that row in brackets. The latest result of an experiment counts.
"""
from __future__ import annotations

import json
import os

from absl import flags

from wss_tf import app_runner
from wss_tf.experiments import published

ROW_ORDER = ("supervised", "PseudoSeg", "PseudoSeg + image labels")
TITLES = {"pascal_voc_seg": "PASCAL VOC 2012 val mIoU (%), labeled images from the 1464 train set",
          "coco": "COCO val mIoU (%), labeled fraction of train2017"}


def read_results(path: str) -> dict:
    """{experiment: its latest result}."""
    latest = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    result = json.loads(line)
                    latest[result["experiment"]] = result
    return latest


def _number(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(results: dict) -> str:
    """Markdown: per dataset, the paper's rows and ours (last / best, delta to the paper's same row)."""
    numbers = published()
    sections = []
    for table, reference in numbers.items():
        ours = [r for r in results.values() if r["table"] == table]
        columns = reference["columns"]
        lines = [f"### {TITLES.get(table, table)}", "",
                 "| method | " + " | ".join(f"{label} ({split})" for split, label in columns.items()) + " |",
                 "|---|" + "---|" * len(columns)]
        for row, values in reference["rows"].items():
            lines.append(f"| {row} (published) | " + " | ".join(_number(values.get(s)) for s in columns) + " |")
        for row in ROW_ORDER:
            by_split = {r["column"]: r for r in ours if r["row"] == row}
            if not by_split:
                continue
            paper = reference["rows"].get(row, {})
            cells = []
            for split in columns:
                result = by_split.get(split)
                if result is None:
                    cells.append("-")
                    continue
                last, best = 100 * result["last_miou"], 100 * result["best_miou"]
                delta = f" ({last - paper[split]:+.2f} / {best - paper[split]:+.2f})" if split in paper else ""
                cells.append(f"{last:.2f} / {best:.2f}{delta}")
            lines.append(f"| {row} (this port: last / best) | " + " | ".join(cells) + " |")
        if ours:
            lines += ["", "Runs: " + "; ".join(
                f"{r['experiment']}: {r['steps']} steps, global batch {r['global_batch']} on {r['replicas']} replicas, "
                f"lr {r['base_learning_rate']:.4g}, best at step {r['best_step']}"
                + (f", overrides {r['overrides']}" if r.get("overrides") else "")
                + ("" if r.get("init_checkpoint") else ", from scratch (no ImageNet init)")
                for r in sorted(ours, key=lambda r: r["experiment"]))]
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"


def define_flags(fv=flags.FLAGS) -> None:
    flags.DEFINE_string("results", "runs/paper/results.jsonl", "results file written by ./run.sh reproduce",
                        flag_values=fv)
    flags.DEFINE_string("output", "", "also write the markdown here", flag_values=fv)


def main(argv):
    del argv
    fv = flags.FLAGS
    text = render(read_results(fv.results))
    if fv.output:
        with open(fv.output, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    define_flags()
    app_runner.run(main)
