"""What every training flag (a TrainConfig field, official name) does, with its unit or range, by group: the
flags' help texts, and the grouped listing `train-wss --help` and `train-sup --help` print."""
from __future__ import annotations

GROUPS = {
    "model": {
        "model_variant": "backbone: xception_65, resnet_v1_101_beta, resnet_v1_101, resnet_v1_50_beta, "
                         "resnet_v1_50, or xception_tiny (a small network for tests and the demo)",
        "output_stride": "input size / backbone feature size: 8, 16 or 32",
        "atrous_rates": "ASPP dilation rates, e.g. 6,12,18 at output_stride 16 (12,24,36 at 8); 'none' = no ASPP "
                        "branches but the 1x1 and image pooling",
        "multi_grid": "three dilation multipliers of the last ResNet block, e.g. 1,2,4; 'none' = off",
        "decoder_output_stride": "stride of the low-level features the decoder joins (4); 'none' = no decoder",
        "aspp_convs_filters": "channels of each ASPP branch (official 256)",
        "decoder_filters": "channels of the decoder convolutions (official 256)",
        "fine_tune_batch_norm": "train the batch-norm statistics (true; false = moving statistics used, gamma and "
                                "beta still trained)",
        "sync_batch_norm": "batch-norm statistics over all replicas (ours; the official code never syncs)",
        "batch_norm_decay": "moving-average decay of the batch-norm statistics in (0, 1); 'none' = the official "
                            "per-backbone constant",
    },
    "data": {
        "dataset": "the dataset's name: pascal_voc_seg, coco2017, or the name in dataset_dir/dataset_info.json",
        "dataset_dir": "folder of the TFRecords (the build-* commands write them)",
        "train_split": "split with pixel labels (e.g. 1464 or 92_clean_3)",
        "train_split_cls": "split of unlabeled (or image-level labeled, --weakly) images (e.g. train_aug)",
        "train_crop_size": "training crop height,width in pixels (official 513,513)",
        "min_scale_factor": "smallest random rescale of a training image (0.5)",
        "max_scale_factor": "largest random rescale (2.0)",
        "scale_factor_step_size": "step between rescale factors (0.25); 0 = uniform in [min, max] (official)",
        "strong_augmentation": "the strong view: jitter_cutout (official colour jitter + cutout) or "
                               "randaugment_cutout",
        "cutout_pad_size": "half side of the cutout box in pixels (official 50 at crop 513; must be below half "
                           "the crop)",
        "color_jitter_strength": "scales the strong view's colour jitter in [0, 2] (1 = official; 0 = cutout only)",
    },
    "method": {
        "mode": "wss = PseudoSeg (train_wss.py), sup = supervised baseline (train_sup.py)",
        "weakly": "the train_split_cls images carry image-level labels, which train the classifier",
        "soft_pseudo_label": "train on the sharpened soft pseudo label (true) or its argmax (false)",
        "pseudo_label_threshold": "pixels whose pseudo-label confidence is below this in [0, 1] leave the "
                                  "consistency loss (0 = off)",
        "unlabeled_weight": "weight of the consistency loss on the strong view (>= 0; official 1)",
        "att_strides": "SGC hypercolumn end points by pseudo-stride (official 15,16)",
        "attention_dim": "channels of the SGC's query and key projections (official 128)",
        "use_attention": "build the classifier head and the SGC map (false = decoder-only pseudo labels)",
        "pseudo_src": "avg = fuse decoder and SGC (official), att = SGC only",
        "temperature": "sharpening temperature of the pseudo label, > 0 (official 0.5)",
        "logit_norm": "one shared RMS normaliser on decoder and SGC logits before fusing (official true)",
        "cls_with_cls": "with --weakly the classifier trains on the image-level labels (true) or on the labeled "
                        "split's",
        "cam_weights": "official = the CAM kernel averaged over dropout on labeled images; kernel = the plain "
                       "classifier kernel",
        "official_duplicate_passes": "run the official graph's second training-mode backbone passes (same "
                                     "numbers, slower; for bit-level comparisons)",
        "bn_reestimation_batches": "after the last step, re-estimate the batch-norm statistics over this many "
                                   "passes without gradient (0 = off, as official)",
    },
    "optimisation": {
        "training_number_of_steps": "steps to train (official 30000)",
        "train_batch_size": "global batch over all replicas, a multiple of the replica count",
        "num_clones": "replicas: N local GPUs, or the CPU split into N devices; 0 = every GPU (or one CPU)",
        "optimizer": "momentum (official) or adam",
        "learning_policy": "poly (official) or step",
        "base_learning_rate": "peak learning rate of momentum (official 0.007; train_sup 1e-4)",
        "decay_steps": "poly: steps over which the rate decays (0 = training_number_of_steps)",
        "end_learning_rate": "poly: the rate it decays to",
        "learning_rate_decay_factor": "step policy: factor applied every learning_rate_decay_step",
        "learning_rate_decay_step": "step policy: steps between decays",
        "learning_power": "poly: exponent of the decay (official 0.9)",
        "momentum": "momentum in [0, 1] (0.9)",
        "adam_learning_rate": "adam: constant learning rate (no schedule, as official)",
        "adam_epsilon": "adam: epsilon of the update denominator (1e-8)",
        "weight_decay": "L2 weight decay on the kernels (official 4e-5)",
        "slow_start_step": "steps at slow_start_learning_rate before the policy starts",
        "slow_start_learning_rate": "the rate of those first steps",
        "last_layer_gradient_multiplier": "gradient multiplier of the last layers (logits)",
        "last_layers_contain_logits_only": "the last layers are the logits only (true) or also ASPP and decoder",
        "tf_initial_checkpoint": "checkpoint to start from (an official DeepLab ImageNet or VOC checkpoint, or "
                                 "./run.sh pretrain's)",
        "initialize_last_layer": "also load the last layers from tf_initial_checkpoint (same class count only)",
        "precision": "float32, mixed_bfloat16 or mixed_float16 (dynamic loss scaling)",
        "jit_compile": "XLA for the forward and backward passes (for GPUs; slower on CPU)",
        "deterministic": "op determinism: two runs of one command with one --seed are bit-identical (slower)",
        "seed": "seeds initial weights, dropout and the data streams (>= 0)",
    },
    "checkpoints and logging": {
        "train_logdir": "where checkpoints, config.json, TensorBoard events and pseudo-label quality go; a run "
                        "there resumes",
        "save_interval_secs": "seconds between checkpoints (1200)",
        "save_interval_steps": "also a checkpoint every this many steps (0 = by time only)",
        "max_to_keep": "checkpoints kept (<= 0: all)",
        "log_steps": "steps between progress lines",
        "save_summaries_secs": "seconds between TensorBoard summaries",
        "save_summaries_images": "also images (input, label, pseudo label) in the summaries",
        "skip_non_finite_steps": "steps with a non-finite loss skipped before the run stops (0 = stop at the first)",
        "skip_bad_records": "check the training splits first and leave out records that fail (counted)",
    },
}

HELP = {name: text for group in GROUPS.values() for name, text in group.items()}


def grouped_listing(defaults: dict) -> str:
    """The flags by group, one line each with its default: what --help prints after the usage."""
    lines = ["", "Flags (official names; a --config=FILE.json sets them too, the command line wins):"]
    for group, entries in GROUPS.items():
        lines.append(f"\n  {group}:")
        for name, text in entries.items():
            default = defaults.get(name)
            if isinstance(default, tuple):
                default = ",".join(map(str, default))
            lines.append(f"    --{name} (default {default!s}): {text}")
    lines.append("\n  --config: a JSON file of these keys; --traceback: show the traceback of an error")
    return "\n".join(lines).replace("%", "%%") + "\n"
