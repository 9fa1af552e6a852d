"""Evaluation throughput on this machine: images/s of the eval path (records -> pad to the crop -> inference-mode
prediction -> confusion matrix) with a randomly initialised model, and the number of traces for the split.

    ./run.sh benchmark-eval [--model_variant xception_65] [--crop 513] [--batch 1] [--images 24] [--scales 1.0]

VOC-sized JPEG records (500x375 and 375x500) are made on the fly. The first batch, which traces the function, is
timed separately; images/s is over the rest.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from input_pipeline import make_records  # noqa: E402

from wss_tf.config import TrainConfig  # noqa: E402
from wss_tf.data import pipeline  # noqa: E402
from wss_tf.evaluation import Evaluator  # noqa: E402
from wss_tf.inference import build_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_variant", default="xception_65")
    parser.add_argument("--crop", type=int, default=513)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--scales", default="1.0", help="comma list, e.g. 0.5,0.75,1.0,1.25,1.5,1.75")
    parser.add_argument("--flip", action="store_true")
    args = parser.parse_args()
    scales = tuple(float(s) for s in args.scales.split(","))
    model = build_model(TrainConfig(model_variant=args.model_variant), 21)
    evaluator = Evaluator(model, 21, eval_scales=scales, add_flipped_images=args.flip)
    with tempfile.TemporaryDirectory() as directory:
        make_records(directory, args.images)
        stream = pipeline.StreamConfig(directory, "bench", num_classes=21, batch_size=args.batch)
        dataset = pipeline.eval_dataset(stream, (args.crop, args.crop), model.spec.mean_pixel)
        started = time.perf_counter()
        result = evaluator.evaluate(dataset)
        total = time.perf_counter() - started
    first = total - (result["images"] - args.batch) / result["images_per_second"]
    print(f"{args.model_variant}, eval crop {args.crop}x{args.crop}, batch {args.batch}, scales {list(scales)}"
          f"{' + flipped' if args.flip else ''}, {result['images']} VOC-sized images")
    print(f"  {result['images_per_second']:.2f} images/s after the first batch "
          f"({1000 / result['images_per_second']:.0f} ms per image)")
    print(f"  first batch (trace + run): {first:.1f} s; traces for the split: {result['traces']}")


if __name__ == "__main__":
    main()
