#!/usr/bin/env bash
# mvtriplane (geometry-aware 3D generation on ImageNet, Shen & Wang): the paper's architecture ablation at equal
# budget, and PTI inversion quality of the paper's model on held-back images.
#
#   bash benchmarks/ablation_mvtriplane.sh arms            # the arms, one line
#   bash benchmarks/ablation_mvtriplane.sh prepare         # <= 150 s: data, held-back posed set, domain backbone
#   bash benchmarks/ablation_mvtriplane.sh baseline|d|gd   # each <= 330 s (train + evaluate), in parallel
#   bash benchmarks/ablation_mvtriplane.sh report          # markdown tables on stdout
#   SMOKE=1 bash benchmarks/ablation_mvtriplane.sh all     # the whole thing at tiny sizes on CPU
#
# Arms (each arm's config fields: benchmarks/arms/mvtriplane/ARM.yaml, passed with --config) (same data, sizes, batch 32, seed 0 and STEPS; multi-view discrimination off in all three, so only the
# architecture differs -- the paper's Table 2):
#   baseline  EG3D-style: --generator.no-extra-blocks --generator.decoder-extra-layers 0
#   d         + two extra decoder FC layers: --generator.no-extra-blocks --generator.decoder-extra-layers 2
#   gd        + the extra synthesis blocks (the paper's model): --generator.extra-blocks --generator.decoder-extra-layers 2;
#             also PTI inversion of held-back images of unseen shapes (`unflat evaluate --metrics inversion`)
# Each arm: runs/abl/mvtriplane/<arm>/summary.json (metrics, steps reached, wall seconds, exact commands).
set -uo pipefail
source benchmarks/ablation_lib.sh  # SMOKE, ABL_PHASE, PY, log, run, arm_dir, trained_seconds
M=mvtriplane
D=${ABL_DIR:-runs/abl/$M}
mkdir -p "$D"
ARMS="baseline d gd"
UNFLAT_CACHE_DIR=$(cd "$D" && pwd)/cache; export UNFLAT_CACHE_DIR   # FID reference statistics, shared by the arms

if [ "$SMOKE" = 1 ]; then   # tiny sizes on CPU: proves the script end to end, numbers mean nothing
  DEV=cpu; RES=16; SHAPES=12; HELD_SHAPES=2; HELD_VIEWS=2; WORKERS=2
  ARCH=(--preset tiny --rendering.output-resolution 16 --rendering.neural-resolution 8 --batch-size 4)
  BB_ARGS=(--preset tiny --max-steps 3 --batch-size 8); BB_SECONDS=60
  STEPS=${STEPS:-3}; TRAIN_SECONDS=120; EVAL_SECONDS=120
  EVAL_ARGS=(--num-samples 16 --num-shapes 4 --num-points 256)
  INV_ARGS=(--num-inversions 2 --inversion-steps-w 2 --inversion-steps-g 2 --inversion-seconds 60)
else
  DEV=cuda; RES=64; SHAPES=${SHAPES:-300}; HELD_SHAPES=3; HELD_VIEWS=3; WORKERS=4
  # the widened small preset of docs/lab/results-h100.md (the previous session's ablation settings)
  ARCH=(--rendering.output-resolution 64 --rendering.neural-resolution 32 --generator.plane-resolution 64 --generator.plane-channels 32 --generator.channel-max 256
        --discriminator.channel-max 256 --batch-size 32 --rendering.num-coarse 32 --rendering.num-fine 32)
  # 250 steps (8k images): at the 0.13-0.18 s/step measured alone for these sizes (docs/lab/results-h100.md), 2-4x
  # slower with ~6 jobs per GPU, this ends inside TRAIN_SECONDS (the previous session's 800 steps would not);
  # the step reached is recorded and `report` flags an arm that stopped short.
  BB_ARGS=(--preset small --max-steps 1000 --batch-size 128); BB_SECONDS=${BB_SECONDS:-65}
  STEPS=${STEPS:-250}; TRAIN_SECONDS=${TRAIN_SECONDS:-225}; EVAL_SECONDS=${EVAL_SECONDS:-95}
  EVAL_ARGS=(--num-samples 1000 --num-shapes 32)
  # 8 held-back images (classes in turn), few PTI steps; no new inversion starts after 55 s, so the last one
  # (~15 s with the GPU shared) and the start-up fit EVAL_SECONDS
  INV_ARGS=(--num-inversions 8 --inversion-steps-w 60 --inversion-steps-g 30 --inversion-seconds 55)
fi
COMMON=(--data "$D/data" --max-steps "$STEPS" --seed 0 --device "$DEV" --log-every 25 --sample-every "$STEPS"
        --checkpoint-every 100 --keep-checkpoints 1 --multiview.start-step -1 --multiview.no-auto --multiview.diversity-every 0
        --no-tensorboard)


prepare() {
  CMDS=$D/prepare.commands; : > "$CMDS"; local t0=$SECONDS
  # held-back posed views of shapes the generator never sees (another seed), rendered alongside the training data
  ( run $PY -m unflat dataset synth --category chair car mug --num-shapes $HELD_SHAPES --views-per-shape $HELD_VIEWS \
        --resolution $RES --seed 1 --workers 1 --out "$D/heldback" --overwrite > "$D/heldback.log" 2>&1 ) &
  local held_pid=$!
  run $PY -m unflat dataset synth --category chair car mug --num-shapes $SHAPES --resolution $RES --seed 0 \
      --workers $WORKERS --out "$D/data" --overwrite
  run timeout -s INT $BB_SECONDS $PY -m unflat train backbone --data "$D/data" --out "$D/backbone-run" --device $DEV \
      --seed 0 --no-tensorboard "${BB_ARGS[@]}" > "$D/backbone.log" 2>&1
  if [ ! -f "$D/data/backbone.safetensors" ]; then  # stopped by the timeout before its end-of-training hook
    run $PY -m unflat export "$D/backbone-run" --out "$D/backbone-run" --device $DEV \
      && cp "$D/backbone-run/backbone.safetensors" "$D/backbone-run/backbone.json" "$D/data/"
  fi
  tail -n 2 "$D/backbone.log"
  wait $held_pid
  log "prepare took $((SECONDS - t0)) s"
}

train_arm() {  # train_arm ARM FLAGS...
  local arm=$1; shift
  local A=$D/$arm; arm_dir "$A"
  local config; config=$(arm_config "$arm") || return 1
  local t0=$SECONDS
  [ "$PHASE" = eval ] || run timeout -s INT $TRAIN_SECONDS $PY -m unflat train mvtriplane --config "$config" "${ARCH[@]}" "${COMMON[@]}" "$@" --out "$A/run" \
      > "$A/train.log" 2>&1
  local train_s; train_s=$(trained_seconds "$A" $((SECONDS - t0))); t0=$SECONDS
  [ "$PHASE" = train ] && return 0
  if [ "$arm" = gd ]; then  # the paper's model: inversion quality, alongside the distribution metrics
    ( run timeout -s INT $EVAL_SECONDS $PY -m unflat evaluate "$A/run" --data "$D/heldback" --metrics inversion \
          --backbone "$D/data/backbone.safetensors" "${INV_ARGS[@]}" --device $DEV --out "$A/inversion.json" \
          > "$A/inversion.log" 2>&1 ) &
  fi
  run timeout -s INT $EVAL_SECONDS $PY -m unflat evaluate "$A/run" --data "$D/data" --metrics fid kid chamfer \
      --backbone "$D/data/backbone.safetensors" "${EVAL_ARGS[@]}" --device $DEV --out "$A/metrics.json" > "$A/eval.log" 2>&1
  wait
  tail -n 3 "$A/eval.log"; [ -f "$A/inversion.log" ] && tail -n 5 "$A/inversion.log"
  $PY benchmarks/ablation_summary.py summary "$A" --method $M --arm "$arm" --steps-target "$STEPS" \
      --train-s "$train_s" --eval-s $((SECONDS - t0))
}

report() {
  $PY benchmarks/ablation_summary.py report "$D" --method $M --arms $ARMS \
      --title "mvtriplane: architecture ablation at equal budget (chair/car/mug, ${RES}px)" \
      --labels "baseline=baseline (EG3D-style)" "d=+d (two extra decoder FC layers)" "gd=+g+d (extra synthesis blocks too)"
}

case "${1:-}" in
  arms) echo "$ARMS" ;;
  prepare) prepare ;;
  baseline|d|gd) train_arm "$1" ;;  # the arm's fields: benchmarks/arms/mvtriplane/$1.yaml
  report) report ;;
  all) prepare; for a in $ARMS; do bash "$0" "$a"; done; report ;;
  *) echo "usage: $0 arms|prepare|${ARMS// /|}|report|all" >&2; exit 2 ;;
esac
