#!/usr/bin/env bash
# wss_tf front door. First use creates .venv and installs requirements.txt; later calls reuse it.
#   ./run.sh            the demo: supervised baseline vs PseudoSeg on a generated dataset (minutes, CPU)
#   ./run.sh test       run the whole test suite (extra args go to pytest)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.requirements.sha256"
PYTHON_BIN="${PYTHON:-python3}"

ensure_env() {
  local want
  want="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
  if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    return
  fi
  echo "[run.sh] setting up the environment in $VENV (first use, or requirements.txt changed)..."
  "$PYTHON_BIN" -m venv "$VENV"
  local log="$VENV/install.log"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
         "$VENV/bin/python" -m pip install -r "$ROOT/requirements.txt"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "[run.sh] installing requirements failed; full log: $log" >&2
    exit 1
  fi
  echo "$want" > "$STAMP"
  echo "[run.sh] environment ready."
}

usage() {
  cat <<'USAGE'
wss_tf: PseudoSeg (ICLR 2021) in TensorFlow 2 / Keras 3.

  ./run.sh test [pytest args]   run the test suite
  ./run.sh train-wss FLAGS      PseudoSeg training (official train_wss.py flags; --config=FILE.json)
  ./run.sh train-sup FLAGS      supervised baseline (official train_sup.py flags)
  ./run.sh eval FLAGS           mIoU of checkpoints (official eval.py flags; one-shot or polling)
  ./run.sh vis FLAGS            colour / raw label PNGs, pseudo-label panels (official vis.py flags)
  ./run.sh calibration FLAGS    reliability diagram and ECE of decoder, SGC and fused pseudo labels
  ./run.sh export FLAGS         SavedModel serving label maps from images of any size or encoded bytes
  ./run.sh predict FLAGS        a folder of images -> label PNGs and overlays
  ./run.sh build-voc FLAGS      PASCAL VOC 2012 (VOCdevkit) -> TFRecords   (--helpfull for flags)
  ./run.sh build-coco FLAGS     COCO 2017 + instances JSON -> TFRecords
  ./run.sh build-folder FLAGS   images/ + masks/ folder -> TFRecords
  ./run.sh validate FLAGS       check an existing record set
  ./run.sh generate-data FLAGS  make the small generated dataset (the demo's data)
  ./run.sh pretrain FLAGS       the ImageNet analog: a model-zoo-style backbone checkpoint from a generated corpus
  ./run.sh reproduce NAME FLAGS one paper-table cell: train, evaluate every checkpoint, record last/best (--list)
  ./run.sh results FLAGS        reproduced results beside the paper's numbers (markdown)
  ./run.sh study FLAGS          scaled-down study on generated data: methods x label fractions x seeds
  ./run.sh benchmark-input      input pipeline throughput on this machine
  ./run.sh benchmark-eval       evaluation throughput (images/s at the 513 crop) and trace count
  ./run.sh benchmark-step       PseudoSeg step vs supervised step: time ratio, passes, FLOP/s, input, memory
  ./run.sh python ARGS...       run Python inside the project's environment
  ./run.sh help                 this text

  ./run.sh [demo] [FLAGS]       the demo: supervised baseline vs PseudoSeg on generated data, mIoU table
USAGE
}

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# oneDNN kernels on every x86 CPU: TF 2.21 turns them on by itself only on some Intel CPUs; on an AMD CPU a
# DeepLab step ran 2.7x faster with them (README, Performance). TF_ENABLE_ONEDNN_OPTS=0 switches them off.
export TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-1}"
# TensorFlow's C++ INFO and WARNING lines are hidden (2). On a machine without an NVIDIA device its only C++ ERROR
# line is "failed call to cuInit" on every command, so there errors are hidden too (3); Python still raises every
# error. Set TF_CPP_MIN_LOG_LEVEL yourself to see them.
if compgen -G "/dev/nvidia[0-9]*" >/dev/null; then
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
else
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
fi
cmd="${1:-demo}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  test)
    ensure_env
    cd "$ROOT"
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  python)
    ensure_env
    exec "$VENV/bin/python" "$@"
    ;;
  build-voc|build-coco|build-folder|validate)
    ensure_env
    exec "$VENV/bin/python" -m "wss_tf.data.${cmd//-/_}" "$@"
    ;;
  train-wss|train-sup|eval|vis|export|predict|reproduce|results|pretrain)
    ensure_env
    exec "$VENV/bin/python" -m "wss_tf.${cmd//-/_}" "$@"
    ;;
  study)
    ensure_env
    cd "$ROOT"
    exec "$VENV/bin/python" -m wss_tf.study "$@"
    ;;
  calibration)
    ensure_env
    exec "$VENV/bin/python" -m wss_tf.calibration_report "$@"
    ;;
  generate-data)
    ensure_env
    exec "$VENV/bin/python" -m wss_tf.data.synthetic "$@"
    ;;
  benchmark-input)
    ensure_env
    exec "$VENV/bin/python" "$ROOT/benchmarks/input_pipeline.py" "$@"
    ;;
  benchmark-eval)
    ensure_env
    exec "$VENV/bin/python" "$ROOT/benchmarks/evaluation.py" "$@"
    ;;
  benchmark-step)
    ensure_env
    exec "$VENV/bin/python" "$ROOT/benchmarks/step_cost.py" "$@"
    ;;
  demo|--*)
    ensure_env
    [[ "$cmd" == --* ]] && set -- "$cmd" "$@"
    cd "$ROOT"
    exec "$VENV/bin/python" -m wss_tf.demo "$@"
    ;;
  help|-h|--help)
    usage
    ;;
  *)
    echo "unknown command: $cmd" >&2
    usage >&2
    exit 2
    ;;
esac
