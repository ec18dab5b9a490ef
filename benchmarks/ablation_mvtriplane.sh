#!/usr/bin/env bash
# The geometry-aware paper's architecture ablation at equal budget (same steps, batch, data, seed):
# baseline (EG3D-style) vs +d (two extra decoder FC layers) vs +g+d (plus the extra synthesis blocks).
# Multi-view discrimination is off in all three so only the architecture differs.
#   bash benchmarks/ablation_mvtriplane.sh prepare|baseline|d|gd|evaluate     (GPU machine; outputs in runs/abl)
set -euo pipefail
source benchmarks/gpu_env.sh
D=runs/abl; mkdir -p $D
STEPS=${STEPS:-800}
COMMON=(--data $D/data --output-resolution 64 --neural-resolution 32 --plane-resolution 64 --plane-channels 32
        --channel-max 256 --d-channel-max 256 --batch-size 32 --num-coarse 32 --num-fine 32 --max-steps "$STEPS"
        --log-every 100 --sample-every "$STEPS" --checkpoint-every "$STEPS" --multiview-start-step -1 --no-multiview-auto
        --diversity-every 0 --seed 0)
case "$1" in
  prepare)
    python3 -m unflat dataset synth --category chair car mug --num-shapes 700 --resolution 64 --out $D/data --overwrite
    python3 -m unflat train backbone --data $D/data --preset small --max-steps 1500 --batch-size 128 --out $D/backbone ;;
  baseline) python3 -m unflat train mvtriplane "${COMMON[@]}" --no-extra-blocks --decoder-extra-layers 0 --out $D/baseline ;;
  d)        python3 -m unflat train mvtriplane "${COMMON[@]}" --no-extra-blocks --decoder-extra-layers 2 --out $D/d ;;
  gd)       python3 -m unflat train mvtriplane "${COMMON[@]}" --extra-blocks --decoder-extra-layers 2 --out $D/gd ;;
  evaluate)
    for v in baseline d gd; do
      python3 -m unflat evaluate $D/$v --data $D/data --metrics fid kid chamfer --num-samples 1000 --num-shapes 32 \
        --out $D/eval-$v/metrics.json
    done ;;
esac
