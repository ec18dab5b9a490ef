#!/usr/bin/env bash
# 3dgp (3D generation on ImageNet, Skorokhodov et al.): the paper's depth-adaptor ablation and distillation on/off
# at equal budget on embedded multi-class data, and the distillation overhead.
#
#   bash benchmarks/ablation_tdgp.sh arms                                # the arms, one line
#   bash benchmarks/ablation_tdgp.sh prepare                             # <= 150 s: data, backbones, depth estimator, caches
#   bash benchmarks/ablation_tdgp.sh full|adapt50|noadaptor|nodistill|overhead   # each <= 330 s, in parallel
#   bash benchmarks/ablation_tdgp.sh report                              # markdown tables on stdout
#   SMOKE=1 bash benchmarks/ablation_tdgp.sh all                         # the whole thing at tiny sizes on CPU
#
# Real depth comes from unflat's own depth estimator (`unflat train depth`, a short run on the renders): an
# imprecise estimator, as LeReS is for the paper, which is the error the depth adaptor exists to absorb (with
# ground-truth depth there would be nothing to adapt). The distillation teacher is a second domain backbone
# (another seed, fewer steps) so that D does not learn the very features FID is measured on.
# Arms (each arm's config fields: benchmarks/arms/tdgp/ARM.yaml, passed with --config) (same data, sizes, batch 32, seed 0 and STEPS; every other 3DGP component on):
#   full       public 3DGP defaults: adaptor on, the un-adapted depth is discriminated with p = 0.1 once annealed
#   adapt50    adapting depth with 50% probability (--depth.adaptor-start-p 0.5)     the paper's ablation rows:
#   noadaptor  raw rendered depth to D (--depth.no-adaptor)                           12.2 / 9.25 / 8.13 FID2k
#   nodistill  no knowledge distillation (--distillation.no-enabled): its effect on early FID
#   overhead   benchmarks/bench_tdgp.py at the paper preset: distillation's share of step time (timing only)
# Each arm: runs/abl/tdgp/<arm>/summary.json (metrics, steps reached, wall seconds, exact commands).
set -uo pipefail
source benchmarks/ablation_lib.sh  # SMOKE, ABL_PHASE, PY, log, run, arm_dir, trained_seconds
M=tdgp
D=${ABL_DIR:-runs/abl/$M}
mkdir -p "$D"
ARMS="full adapt50 noadaptor nodistill overhead"
CACHE=$(cd "$D" && pwd)/cache
export UNFLAT_CACHE_DIR=$CACHE   # estimated depth, teacher features, FID reference statistics

if [ "$SMOKE" = 1 ]; then   # tiny sizes on CPU: proves the script end to end, numbers mean nothing
  DEV=cpu; RES=16; SHAPES=8; WORKERS=2
  ARCH=(--preset tiny --batch-size 4 --depth.adaptor-anneal-images 8)
  BB_ARGS=(--preset tiny --max-steps 3 --batch-size 8); TEACHER_ARGS=(--preset tiny --max-steps 2 --batch-size 8)
  DEPTH_ARGS=(--preset tiny --max-steps 3); PREP_SECONDS=90
  STEPS=${STEPS:-3}; TRAIN_SECONDS=120; EVAL_SECONDS=120
  EVAL_ARGS=(--num-samples 16 --num-shapes 4 --num-points 256)
  BENCH_ARGS=(--preset tiny --device cpu --steps 4 --warmup 1 --rounds 2)
else
  DEV=cuda; RES=64; SHAPES=${SHAPES:-250}; WORKERS=4
  # 750 images (250 shapes per class: the synth fits the prepare budget with 4 workers).
  # mvtriplane's widened small preset where the two share parts (planes 64x32, 32+32 samples, batch 32), 3DGP's
  # own where they differ: 32x32 patches of the 64x64 frame, the public adaptor width (64). The adaptor's
  # probability anneals over 4k images (public: 10M) so that arms differ for most of the short run.
  ARCH=(--preset small --rendering.neural-resolution 32 --generator.plane-resolution 64 --generator.plane-channels 32 --generator.channel-max 256
        --discriminator.channel-max 256 --batch-size 32 --rendering.num-coarse 32 --rendering.num-fine 32 --depth.adaptor-hidden 64
        --depth.adaptor-anneal-images 4000)
  BB_ARGS=(--preset small --max-steps 1000 --batch-size 128); TEACHER_ARGS=(--preset small --max-steps 400 --batch-size 128)
  DEPTH_ARGS=(--preset small --max-steps 600 --batch-size 32); PREP_SECONDS=${PREP_SECONDS:-55}
  # 250 steps (8k images): 3DGP's step at these sizes is about as costly as mvtriplane's (no SR, but a 4-channel D,
  # camera generator and adaptor), so the same STEPS fits TRAIN_SECONDS with ~6 jobs per GPU; `report` flags
  # an arm that stopped short.
  STEPS=${STEPS:-250}; TRAIN_SECONDS=${TRAIN_SECONDS:-225}; EVAL_SECONDS=${EVAL_SECONDS:-95}
  EVAL_ARGS=(--num-samples 1000 --num-shapes 32)
  BENCH_ARGS=(--preset paper --batch-size 16 --steps 32 --warmup 4 --rounds 8)
fi
COMMON=(--data "$D/data" --max-steps "$STEPS" --seed 0 --device "$DEV" --log-every 25 --sample-every "$STEPS"
        --checkpoint-every 100 --keep-checkpoints 1 --depth.source run --depth.run "$D/depth"
        --distillation.teacher domain --distillation.weights "$D/teacher.safetensors" --no-tensorboard)

backbone_file() {  # backbone_file RUN_DIR : the run's backbone.safetensors, exported from its checkpoint if cut short
  [ -f "$1/backbone.safetensors" ] || run $PY -m unflat export "$1" --out "$1" --device $DEV
}

prepare() {
  CMDS=$D/prepare.commands; : > "$CMDS"; local t0=$SECONDS
  run $PY -m unflat dataset synth --category chair car mug --num-shapes $SHAPES --resolution $RES --seed 0 \
      --workers $WORKERS --out "$D/data" --overwrite
  # three short GPU jobs at once: the FID backbone (installed into the data), the teacher, the depth estimator
  ( run timeout -s INT $PREP_SECONDS $PY -m unflat train backbone --data "$D/data" --out "$D/backbone-run" --device $DEV \
        --seed 0 --no-tensorboard "${BB_ARGS[@]}" > "$D/backbone.log" 2>&1
    backbone_file "$D/backbone-run" && [ -f "$D/data/backbone.safetensors" ] \
      || cp "$D/backbone-run/backbone.safetensors" "$D/backbone-run/backbone.json" "$D/data/" ) &
  ( run timeout -s INT $PREP_SECONDS $PY -m unflat train backbone --data "$D/data" --out "$D/teacher-run" --device $DEV \
        --seed 1 --no-install-to-data --no-tensorboard "${TEACHER_ARGS[@]}" > "$D/teacher.log" 2>&1
    backbone_file "$D/teacher-run" && cp "$D/teacher-run/backbone.safetensors" "$D/teacher.safetensors" ) &
  run timeout -s INT $PREP_SECONDS $PY -m unflat train depth --data "$D/data" --out "$D/depth" --device $DEV --seed 0 \
      --no-tensorboard "${DEPTH_ARGS[@]}" > "$D/depth.log" 2>&1
  wait
  tail -n 1 "$D/backbone.log" "$D/teacher.log" "$D/depth.log"
  # one step of the arms' configuration: fills the caches of estimated depth and teacher features that every
  # arm then reads (instead of four arms computing them at once), and proves the configuration runs
  run timeout -s INT 60 $PY -m unflat train 3dgp "${ARCH[@]}" "${COMMON[@]}" --max-steps 1 --sample-every 0 \
      --out "$D/warmup" > "$D/warmup.log" 2>&1
  tail -n 2 "$D/warmup.log"
  log "prepare took $((SECONDS - t0)) s"
}

train_arm() {  # train_arm ARM FLAGS...
  local arm=$1; shift
  local A=$D/$arm; arm_dir "$A"
  local config; config=$(arm_config "$arm") || return 1
  local t0=$SECONDS
  [ "$PHASE" = eval ] || run timeout -s INT $TRAIN_SECONDS $PY -m unflat train 3dgp --config "$config" "${ARCH[@]}" "${COMMON[@]}" "$@" --out "$A/run" \
      > "$A/train.log" 2>&1
  local train_s; train_s=$(trained_seconds "$A" $((SECONDS - t0))); t0=$SECONDS
  [ "$PHASE" = train ] && return 0
  # samples use 3DGP's own learned cameras (`--cameras auto` = method for 3dgp)
  run timeout -s INT $EVAL_SECONDS $PY -m unflat evaluate "$A/run" --data "$D/data" --metrics fid kid chamfer \
      --backbone "$D/data/backbone.safetensors" "${EVAL_ARGS[@]}" --device $DEV --out "$A/metrics.json" > "$A/eval.log" 2>&1
  tail -n 3 "$A/eval.log"
  $PY benchmarks/ablation_summary.py summary "$A" --method $M --arm "$arm" --steps-target "$STEPS" \
      --train-s "$train_s" --eval-s $((SECONDS - t0))
}

overhead() {  # distillation's share of step time, variants timed in interleaved rounds in one process
  [ "$PHASE" = eval ] && return 0
  local A=$D/overhead; rm -rf "$A"; mkdir -p "$A"; CMDS=$A/commands; : > "$CMDS"; local t0=$SECONDS
  run timeout -s INT 300 $PY benchmarks/bench_tdgp.py "${BENCH_ARGS[@]}" --no-write > "$A/bench.log" 2>&1
  grep '^{' "$A/bench.log" | tail -n 1 > "$A/bench.json"; [ -s "$A/bench.json" ] || rm -f "$A/bench.json"
  tail -n 2 "$A/bench.log"
  $PY benchmarks/ablation_summary.py summary "$A" --method $M --arm overhead --steps-target 0 --train-s $((SECONDS - t0))
}

report() {
  $PY benchmarks/ablation_summary.py report "$D" --method 3dgp --arms $ARMS \
      --title "3dgp: depth adaptor and distillation at equal budget (chair/car/mug, ${RES}px, estimated depth)" \
      --labels "full=full (adaptor, p(un-adapted) 0.1; distillation)" "adapt50=adapting depth with 50% probability" \
               "noadaptor=no depth adaptor (raw depth to D)" "nodistill=full without distillation" \
               "overhead=distillation overhead (shared GPU; indicative)"
}

case "${1:-}" in
  arms) echo "$ARMS" ;;
  prepare) prepare ;;
  full|adapt50|noadaptor|nodistill) train_arm "$1" ;;  # the arm's fields: benchmarks/arms/tdgp/$1.yaml
  overhead) overhead ;;
  report) report ;;
  all) prepare; for a in $ARMS; do bash "$0" "$a"; done; report ;;
  *) echo "usage: $0 arms|prepare|${ARMS// /|}|report|all" >&2; exit 2 ;;
esac
