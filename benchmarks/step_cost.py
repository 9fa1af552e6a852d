"""What a PseudoSeg training step costs against a supervised one, measured side by side in one process.

    ./run.sh benchmark-step [--model_variant xception_tiny] [--crop 97] [--batch 2] [--rounds 5] [--steps 3]
                            [--precision float32] [--jit_compile] [--official_duplicate_passes] [--replicas 1]
                            [--profile]

Prints, for the chosen backbone, crop and per-replica batch:
  1. the backbone passes each step's graph runs, and the PseudoSeg (semi) step time over the supervised one
     (interleaved rounds on the same fixed batches, medians; the input pipeline is not involved);
  2. the FLOPs of each step counted from its graph, the FLOP/s achieved, and a dense matmul measured in the same
     process on the same device: the fraction of the attainable peak; with --profile, each step's top op types by
     self time (TF's profiler) and how much of the step the ops keep busy;
  3. each input stream's images/s alone against what the step consumes, and in a real loop (iterators feeding
     the step) the share of time the step waited on input;
  4. evaluation images/s at --eval_crop, and the peak resident memory of training and of evaluation.
Records are VOC-sized JPEGs (500x375, 375x500) made on the fly; the weights are random (ImageNet weights do
not change the cost).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from input_pipeline import images_per_second, make_records  # noqa: E402
from op_profile import format_profile, op_rows, time_by_op_type  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from wss_tf import graph_cost  # noqa: E402
from wss_tf.config import TrainConfig  # noqa: E402
from wss_tf.data import pipeline  # noqa: E402
from wss_tf.data.datasets import VOC_CLASSES, DatasetInfo, write_dataset_info  # noqa: E402
from wss_tf.evaluation import Evaluator  # noqa: E402
from wss_tf.trainer import Trainer  # noqa: E402


def peak_memory_reset() -> bool:
    """Resets the process's peak resident set size (Linux: /proc/self/clear_refs, 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_gib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2 ** 20
    return float("nan")


def peak_memory_gib() -> float:
    return _status_gib("VmHWM")


def resident_memory_gib() -> float:
    return _status_gib("VmRSS")


def matmul_flops_per_second(dtype, n: int = 2048, repeats: int = 10) -> float:
    """Best of `repeats` timings of an n x n x n matmul (2 n^3 FLOPs) in `dtype`."""
    a = tf.random.uniform((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    matmul = tf.function(lambda x: tf.matmul(x, x))
    matmul(a).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def _sync(results):
    return float(results["total"])  # fetching a scalar waits for the step


def step_times(trainers: dict, batches: dict, rounds: int, steps: int) -> dict:
    """Median seconds per step of each trainer, over `rounds` interleaved rounds of `steps` steps."""
    for name, trainer in trainers.items():  # trace and warm up
        for _ in range(2):
            _sync(trainer.train_step(*batches[name]))
    times = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            for _ in range(steps):
                _sync(trainer.train_step(*batches[name]))
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def input_wait_share(trainer: Trainer, steps: int) -> tuple[float, float]:
    """(share of the loop's time spent waiting in next(), seconds per step) over `steps` steps fed by iterators."""
    labeled, second = trainer.datasets(0)
    labeled, second = iter(labeled), iter(second) if second is not None else None
    _sync(trainer.train_step(next(labeled), next(second) if second else None))
    waiting, start = 0.0, time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        batch = (next(labeled), next(second) if second else None)
        waiting += time.perf_counter() - t
        _sync(trainer.train_step(*batch))
    total = time.perf_counter() - start
    return waiting / total, total / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_variant", default="xception_tiny")
    parser.add_argument("--crop", type=int, default=97)
    parser.add_argument("--batch", type=int, default=2, help="per replica")
    parser.add_argument("--replicas", type=int, default=1, help="logical CPU devices (one per replica)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps per round")
    parser.add_argument("--loop_steps", type=int, default=10, help="steps of the iterator-fed loop")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit_compile", action="store_true")
    parser.add_argument("--official_duplicate_passes", action="store_true")
    parser.add_argument("--eval_images", type=int, default=8)
    parser.add_argument("--eval_crop", type=int, default=513, help="VOC's; the records are VOC-sized")
    parser.add_argument("--records", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="also the top op types of each step by self time "
                        "(TF profiler)")
    parser.add_argument("--profile_steps", type=int, default=5)
    args = parser.parse_args()

    if args.replicas > 1:
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * args.replicas)
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [f"/cpu:{i}" for i in range(args.replicas)]
    strategy = tf.distribute.MirroredStrategy(devices)
    replicas = strategy.num_replicas_in_sync
    device = "GPU" if gpus else "CPU"

    with tempfile.TemporaryDirectory() as directory:
        data = os.path.join(directory, "data")
        make_records(data, args.records)
        write_dataset_info(DatasetInfo("bench", VOC_CLASSES, (args.crop, args.crop)), data)
        base = TrainConfig(
            model_variant=args.model_variant, dataset="bench", dataset_dir=data, train_split="bench",
            train_split_cls="bench", train_crop_size=(args.crop, args.crop), train_batch_size=args.batch * replicas,
            cutout_pad_size=max(1, round(50 * args.crop / 513)), precision=args.precision,
            jit_compile=args.jit_compile, official_duplicate_passes=args.official_duplicate_passes,
            save_summaries_images=False, training_number_of_steps=10 ** 6, save_interval_secs=10 ** 9)
        peak_memory_reset()
        trainers = {"supervised": Trainer(base.replace(mode="sup", train_logdir=os.path.join(directory, "sup")),
                                          strategy),
                    "PseudoSeg": Trainer(base.replace(mode="wss", train_logdir=os.path.join(directory, "wss")),
                                         strategy)}
        # Evaluation first, while no input pipeline of the training phase runs beside it.
        peak_memory_reset()
        before_eval = resident_memory_gib()
        evaluator = Evaluator(trainers["PseudoSeg"].model, 21)
        stream = pipeline.StreamConfig(data, "bench", num_classes=21, batch_size=args.batch)
        mean_pixel = trainers["PseudoSeg"].model.spec.mean_pixel
        eval_dataset = pipeline.eval_dataset(stream, (args.eval_crop,) * 2, mean_pixel)
        eval_dataset = eval_dataset.take(max(2, args.eval_images // args.batch))
        eval_result = evaluator.evaluate(eval_dataset)
        eval_peak = peak_memory_gib()
        peak_memory_reset()
        batches = {}
        for name, trainer in trainers.items():
            labeled, second = trainer.datasets(0)
            batches[name] = (next(iter(labeled)), next(iter(second)) if second is not None else None)
        seconds = step_times(trainers, batches, args.rounds, args.steps)
        profiles = {}
        if args.profile:
            for name, trainer in trainers.items():
                rows = op_rows(lambda t=trainer, b=batches[name]: _sync(t.train_step(*b)), args.profile_steps)
                profiles[name] = time_by_op_type(rows)
        graphs = {name: t._step_fn.get_concrete_function(*batches[name]) for name, t in trainers.items()}
        passes = {name: graph_cost.count_backbone_passes(g, trainers[name].model.segmenter.backbone)
                  for name, g in graphs.items()}
        flops = {name: graph_cost.count_flops(g.graph) for name, g in graphs.items()}

        wss = trainers["PseudoSeg"]
        labeled, unlabeled = wss.datasets(0)
        labeled_rate = images_per_second(labeled, 10, args.batch * replicas)
        unlabeled_rate = images_per_second(unlabeled, 10, args.batch * replicas)
        wait_share, loop_seconds = input_wait_share(wss, args.loop_steps)
        train_peak = peak_memory_gib()

        compute_dtype = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16, "mixed_float16": tf.float16}
        matmul = {"float32": matmul_flops_per_second(tf.float32)}
        if args.precision != "float32":
            matmul[args.precision] = matmul_flops_per_second(compute_dtype[args.precision])
        peak_flops = max(matmul.values())

    sup, pseudo = seconds["supervised"], seconds["PseudoSeg"]
    print(f"{args.model_variant}, crop {args.crop}x{args.crop}, batch {args.batch} per replica, {replicas} "
          f"replica(s) on {device}, {args.precision}, jit_compile {'on' if args.jit_compile else 'off'}, "
          f"{'official duplicate passes' if args.official_duplicate_passes else 'shared passes'}; "
          f"{os.cpu_count()} CPU cores")
    print("1. step time (median of interleaved rounds, fixed batches)")
    for name in trainers:
        print(f"   {name:<10} {seconds[name] * 1000:8.1f} ms/step   backbone passes: {passes[name]}")
    flop_ratio = flops["PseudoSeg"].total / flops["supervised"].total
    print(f"   PseudoSeg / supervised: {pseudo / sup:.2f}x measured, {flop_ratio:.2f}x in counted FLOPs "
          f"(target <= 2.6x)")
    print("2. FLOP/s (convolutions, matmuls and einsums counted from each step's graph)")
    for name in trainers:
        rate = flops[name].total / seconds[name]
        print(f"   {name:<10} {flops[name].total / 1e9:8.2f} GFLOP/step  {rate / 1e9:7.1f} GFLOP/s  "
              f"= {rate / peak_flops:5.1%} of the matmul peak")
    for dtype, rate in matmul.items():
        print(f"   dense 2048^3 matmul, {dtype}: {rate / 1e9:.1f} GFLOP/s")
    for name, by_type in profiles.items():
        busy = sum(seconds_ for _, seconds_, _ in by_type) / args.profile_steps
        print(format_profile(name, by_type, args.profile_steps))
        print(f"     op self time {busy * 1000:.1f} ms per {seconds[name] * 1000:.1f} ms step "
              f"({busy / seconds[name]:.0%} of the wall time, summed over the threads that run ops side by side; "
              f"under the profiler)")
    consumed = args.batch * replicas / pseudo
    print("3. input (PseudoSeg streams alone vs what the PseudoSeg step consumes per stream)")
    print(f"   labeled stream   {labeled_rate:7.1f} images/s   unlabeled stream (weak + strong) "
          f"{unlabeled_rate:7.1f} images/s   step consumes {consumed:.1f} images/s from each")
    print(f"   iterator-fed loop: {loop_seconds * 1000:.1f} ms/step, {wait_share:.1%} of it waiting on input")
    print("4. evaluation and memory")
    print(f"   evaluation: {eval_result['images_per_second']:.2f} images/s at crop {args.eval_crop}, batch {args.batch}")
    print(f"   peak resident memory{'' if device == 'CPU' else ' (host)'}: training (both trainers, their data and "
          f"steps) {train_peak:.2f} GiB; evaluation {eval_peak:.2f} GiB (of which {eval_peak - before_eval:.2f} "
          f"GiB beyond the two built models)")
    if np.isnan(train_peak):
        print("   (peak memory needs Linux /proc)")


if __name__ == "__main__":
    main()
