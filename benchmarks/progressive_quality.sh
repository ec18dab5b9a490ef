#!/usr/bin/env bash
# progressive's reconstruction quality on held-back shapes (issue 21), one command on one GPU (< 10 min):
#
#   bash benchmarks/progressive_quality.sh                          # GPU machine: sources benchmarks/gpu_env.sh
#   PROG_FLAGS="--losses.perceptual-features pyramid --rendering.rasterizer torch" bash benchmarks/progressive_quality.sh   # issue 21's "before"
#   SMOKE=1 PY=/path/to/python bash benchmarks/progressive_quality.sh   # the whole pipeline on CPU, tiny sizes (~1 min)
#   SMOKE=1 PRESET=paper BATCH=2 RES=128 TRAIN_S=90 ... bash benchmarks/progressive_quality.sh   # GPU sizes' code paths on CPU
#
# 1. data: `unflat dataset synth` 6 categories x 150 shapes x 4 views, 128^2, posed, `parts` materials, seed 0;
#    held-back: 12 shapes per category, seed 1000 (both at once: all but 2 cores on the training set).
# 2. train: `unflat train progressive --preset paper --batch-size 16 $PROG_FLAGS`, stopped by SIGTERM after
#    TRAIN_S (280) seconds (the trainer has no time limit flag; SIGTERM finishes the step and checkpoints).
# 3. `unflat evaluate RUN --data HELDOUT` (same-/novel-view IoU, PSNR, ..., Chamfer-L2, F-score) and
#    `unflat reconstruct RUN` of one input view per held-back shape (with its mask) -> top-1 specificity
#    (benchmarks/progressive_quality.py), on those GLBs and on the dataset's own pixels through the Python API.
# 4. the sample sheet: 2 held-back shapes per category, plus the photos scikit-image/scikit-learn/matplotlib ship.
# 5. $OUT/progressive_quality.json (every figure, the commands, perceptual_features, git hash, device, steps and
#    seconds), $OUT/progressive_quality_sheet.png, $OUT/logs.tar.gz; copies in benchmarks/results/ (-smoke when SMOKE=1).
# RESUME=1: keep the work dir's data and run and train TRAIN_S more seconds (`unflat train --resume`; a later call
# on the still-warm GPU machine), then measure again; the figures' train_seconds is the total of all calls.
# Knobs: PROG_FLAGS (extra train flags), SHARED_DATA (data made beforehand), PHASE=data (stop after the data), HELD_CROP (none|object: `reconstruct --crop` of the held-back inputs), BATCH (16), NVDIFFRAST=1 (build nvdiffrast while the data renders, so
# `--rendering.rasterizer auto` finds it ready: carry the diffrp-nvdiffrast wheel in .whl), TRAIN_S, EVAL_S, NUM_SHAPES, HELD_SHAPES, PQ_DIR (work dir), OUT, PY,
# PQ_PHOTOS (a folder of photos made beforehand, for a machine without scikit-image/-learn/matplotlib:
# `python benchmarks/progressive_quality.py photos runs/pq-photos` where they are installed, then carry runs/pq-photos).
set -uo pipefail
cd "$(dirname "$0")/.."
SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  PY=${PY:-python3}; DEV=cpu
  CATS=${CATS:-chair table}; NUM_SHAPES=${NUM_SHAPES:-6}; HELD_SHAPES=${HELD_SHAPES:-6}; VIEWS=2; RES=${RES:-32}
  WORKERS=1; HELD_WORKERS=1; PRESET=${PRESET:-tiny}; BATCH=${BATCH:-4}; TRAIN_S=${TRAIN_S:-20}; EVAL_S=${EVAL_S:-120}
  POINTS=512; EVAL_POINTS=1000; TT_RES=64; EXTRA_TRAIN=(--max-steps 1000000 --checkpoint-every 1000000 --log-every 10 --sample-every 0 --no-tensorboard)
  TAG=-smoke
else
  source benchmarks/gpu_env.sh
  PY=${PY:-python3}; DEV=cuda
  CATS="chair table sofa mug car lamp"; NUM_SHAPES=${NUM_SHAPES:-150}; HELD_SHAPES=${HELD_SHAPES:-12}; VIEWS=4; RES=128
  WORKERS=$(( $(nproc) > 4 ? $(nproc) - 2 : 1 )); HELD_WORKERS=2
  PRESET=paper; BATCH=${BATCH:-16}; TRAIN_S=${TRAIN_S:-280}; EVAL_S=${EVAL_S:-150}; POINTS=4096; EVAL_POINTS=10000
  TT_RES=128; EXTRA_TRAIN=()
  TAG=
fi
read -r -a PFLAGS <<< "${PROG_FLAGS:-}"
W=${PQ_DIR:-runs/progressive_quality$TAG}
OUT=${OUT:-$W/out}
DATA=$W/data; HELD=$W/heldout; RUN=$W/run
# SHARED_DATA=DIR: DIR/data and DIR/heldout were made beforehand by the same synth commands (arms of one call share
# them: benchmarks/gpu_encoder_ab.sh); they are linked, not rendered again
SHARED_DATA=${SHARED_DATA:-}
RESUME=${RESUME:-0}
if [ "$RESUME" = 1 ] && [ -e "$RUN/config.yaml" ] && [ -e "$DATA/manifest.json" ] && [ -e "$HELD/manifest.json" ]; then
  rm -rf "$W/eval" "$W/inputs" "$W/photos" "$W/recon" "$W/recon-photos"; mkdir -p "$OUT"
else
  [ "$RESUME" = 1 ] && echo "RESUME=1 but $W holds no earlier run with its data: starting afresh" >&2
  RESUME=0; rm -rf "$W"; mkdir -p "$W" "$OUT"
fi
CMDS=$W/commands; TIMES=$W/timings
[ "$RESUME" = 1 ] || { : > "$CMDS"; : > "$TIMES"; }
log() { echo "[$(date +%H:%M:%S)] $*"; }
run() {  # run NAME CMD... : echo, record the command, its seconds and exit status; go on after a failure
  local name=$1; shift
  log "+ $*"; printf '%s\n' "$*" >> "$CMDS"
  local t0; t0=$(date +%s.%N); "$@"; local rc=$?
  echo "$name $(awk "BEGIN{print $(date +%s.%N) - $t0}") $rc" >> "$TIMES"
  [ $rc -eq 0 ] || log "exit $rc: $name"; return $rc
}
T0=$SECONDS
log "progressive quality: SMOKE=$SMOKE PROG_FLAGS='${PROG_FLAGS:-}' work dir $W, results $OUT"

if [ "$RESUME" != 1 ] && [ -n "$SHARED_DATA" ]; then
  for d in data heldout; do
    [ -e "$SHARED_DATA/$d/manifest.json" ] || { log "SHARED_DATA=$SHARED_DATA has no $d/manifest.json"; exit 2; }
    ln -s "$(cd "$SHARED_DATA/$d" && pwd)" "$W/$d"
  done
  cp "$SHARED_DATA/commands" "$CMDS" 2>/dev/null; : > "$W/synth_train.log"; : > "$W/synth_heldout.log"
  log "data shared from $SHARED_DATA"
elif [ "$RESUME" != 1 ]; then
# 1. data (training and held-back sets at once)
# shellcheck disable=SC2086
run synth_train $PY -m unflat dataset synth --category $CATS --num-shapes "$NUM_SHAPES" --views-per-shape $VIEWS \
    --resolution $RES --workers $WORKERS --out "$DATA" --overwrite > "$W/synth_train.log" 2>&1 &
SYNTH_PID=$!
if [ "${NVDIFFRAST:-0}" = 1 ] && [ "$SMOKE" != 1 ]; then  # JIT build once, off the training clock
  $PY -c "from unflat.render import nvdiffrast_backend as n; print('nvdiffrast:', n.unavailable_reason('cuda') or 'ok')" \
    > "$W/nvdiffrast.log" 2>&1 &
fi
# shellcheck disable=SC2086
run synth_heldout $PY -m unflat dataset synth --category $CATS --num-shapes "$HELD_SHAPES" --views-per-shape $VIEWS \
    --resolution $RES --seed 1000 --workers $HELD_WORKERS --out "$HELD" --overwrite > "$W/synth_heldout.log" 2>&1
wait $SYNTH_PID
wait
[ -e "$W/nvdiffrast.log" ] && tail -n 1 "$W/nvdiffrast.log"
tail -n 1 "$W/synth_train.log" "$W/synth_heldout.log"
log "data took $((SECONDS - T0)) s"
elif [ "${NVDIFFRAST:-0}" = 1 ] && [ "$SMOKE" != 1 ]; then  # a warm machine keeps its build; a fresh one rebuilds
  $PY -c "from unflat.render import nvdiffrast_backend as n; print('nvdiffrast:', n.unavailable_reason('cuda') or 'ok')" > "$W/nvdiffrast.log" 2>&1
fi

if [ "${PHASE:-all}" = data ]; then log "PHASE=data: data only, in $W"; exit 0; fi

# 2. train for TRAIN_S seconds of wall clock (SIGTERM: the trainer ends the step and writes a checkpoint)
T_TRAIN=$(date +%s.%N)
if [ "$RESUME" = 1 ]; then
  run train_resume timeout -s TERM -k 60 "$TRAIN_S" $PY -m unflat train --resume "$RUN" > "$W/train.log" 2>&1
else
  run train timeout -s TERM -k 60 "$TRAIN_S" $PY -m unflat train progressive --preset $PRESET --batch-size $BATCH \
      --data "$DATA" --out "$RUN" --device $DEV "${EXTRA_TRAIN[@]}" "${PFLAGS[@]}" > "$W/train.log" 2>&1
fi
TRAIN_RC=$?
# seconds and budget over every call of this work dir (RESUME=1 adds to the earlier calls')
TRAIN_SECONDS=$(awk "BEGIN{print $(cat "$W/train_seconds" 2>/dev/null || echo 0) + $(date +%s.%N) - $T_TRAIN}")
TRAIN_S=$(( $(cat "$W/train_budget_s" 2>/dev/null || echo 0) + TRAIN_S ))
echo "$TRAIN_SECONDS" > "$W/train_seconds"; echo "$TRAIN_S" > "$W/train_budget_s"
[ "$RESUME" = 1 ] && cat "$W/train.log" >> "$W/train-all.log" || cp "$W/train.log" "$W/train-all.log"
tail -n 4 "$W/train.log"
log "train: exit $TRAIN_RC (124 = stopped by the time limit), $TRAIN_SECONDS s"
if [ "$TRAIN_RC" != 0 ] && [ "$TRAIN_RC" != 124 ]; then
  # a failed run can still hold a step-0 checkpoint that evaluate/reconstruct would load: measure nothing
  log "training failed: no figures (see train.log); nothing evaluated"
  $PY - "$OUT/progressive_quality.json" "$W/train.log" "$TRAIN_RC" "${PROG_FLAGS:-}" "$CMDS" <<'EOF'
import json, subprocess, sys
from pathlib import Path
out, train_log, rc, flags, cmds = sys.argv[1:]
try:
    git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or None
except OSError:
    git = None
Path(out).write_text(json.dumps({"what": "progressive quality on held-back synth shapes (issue 21)", "git_hash": git,
    "train_exit": int(rc), "prog_flags": flags, "commands": Path(cmds).read_text().splitlines(),
    "errors": {"train": Path(train_log).read_text()[-3000:]}}, indent=2) + "\n")
EOF
  tar -czf "$OUT/logs.tar.gz" -C "$W" --ignore-failed-read commands timings synth_train.log synth_heldout.log train-all.log 2>/dev/null
  exit 1
fi

# 3. evaluate, reconstruct the held-back inputs and the photos (the photos are written meanwhile)
run inputs $PY benchmarks/progressive_quality.py inputs "$HELD" "$W/inputs" > "$W/inputs.log" 2>&1
CARRIED=(); [ -n "${PQ_PHOTOS:-}" ] && CARRIED=(--carried "$PQ_PHOTOS")
run photos $PY benchmarks/progressive_quality.py photos "$W/photos" "${CARRIED[@]}" > "$W/photos.log" 2>&1
cat "$W/inputs.log" "$W/photos.log"
run evaluate timeout -s INT "$EVAL_S" $PY -m unflat evaluate "$RUN" --data "$HELD" --num-shapes 1000 \
    --num-points $EVAL_POINTS --device $DEV --out "$W/eval/metrics.json" > "$W/evaluate.log" 2>&1
tail -n 6 "$W/evaluate.log"
mapfile -t IMAGES < <(ls "$W"/inputs/images/*.png)
mapfile -t MASKS < <(ls "$W"/inputs/masks/*.png)
# HELD_CROP=none (default): the held-back renders are framed like the training data; object: cropped and centred
# like the photos below (the path a photo takes)
run reconstruct $PY -m unflat reconstruct "$RUN" "${IMAGES[@]}" --masks "${MASKS[@]}" --out "$W/recon" --crop "${HELD_CROP:-none}" \
    --turntable-frames 12 --turntable-resolution $TT_RES --device $DEV > "$W/reconstruct.log" 2>&1
tail -n 3 "$W/reconstruct.log"
if ls "$W"/photos/*.png > /dev/null 2>&1; then
  run reconstruct_photos $PY -m unflat reconstruct "$RUN" "$W/photos" --out "$W/recon-photos" \
      --turntable-frames 12 --turntable-resolution $TT_RES --device $DEV > "$W/reconstruct_photos.log" 2>&1
  tail -n 3 "$W/reconstruct_photos.log"
fi

# 4-5. specificity, the sheet, the summary
$PY - "$W" "$TRAIN_RC" "$TRAIN_SECONDS" "$TRAIN_S" "${PROG_FLAGS:-}" "$SMOKE" <<'EOF' > "$W/meta.json"
import json, sys
from pathlib import Path
W, rc, seconds, budget, flags, smoke = sys.argv[1:]
timings = {}
for line in (Path(W) / "timings").read_text().splitlines():
    name, s, code = line.split()
    timings[name] = {"seconds": round(float(s), 1), "exit": int(code)}
print(json.dumps({"train_seconds": round(float(seconds), 1), "train_budget_s": int(budget), "train_exit": int(rc),
                  "prog_flags": flags, "commands": (Path(W) / "commands").read_text().splitlines(),
                  "timings": timings}))
EOF
SMOKE_FLAG=(); [ "$SMOKE" = 1 ] && SMOKE_FLAG=(--smoke)
run analyse $PY benchmarks/progressive_quality.py analyse --run "$RUN" --heldout "$HELD" --inputs "$W/inputs" \
    --recon "$W/recon" --photos "$W/photos" --photos-recon "$W/recon-photos" --eval-json "$W/eval/metrics.json" \
    --meta "$W/meta.json" --out "$OUT/progressive_quality.json" --sheet "$OUT/progressive_quality_sheet.png" \
    --num-points $POINTS --device $DEV "${SMOKE_FLAG[@]}" 2>&1 | tee "$W/analyse.log"

cp "$W/eval/metrics.json" "$OUT/evaluate_metrics.json" 2>/dev/null
tar -czf "$OUT/logs.tar.gz" -C "$W" --ignore-failed-read commands timings meta.json synth_train.log synth_heldout.log \
    train-all.log nvdiffrast.log inputs.log photos.log evaluate.log reconstruct.log reconstruct_photos.log analyse.log eval \
    run/config.yaml run/metrics.jsonl inputs/inputs.json photos/photos.json 2>/dev/null
mkdir -p benchmarks/results
cp "$OUT/progressive_quality.json" "benchmarks/results/progressive_quality$TAG.json" 2>/dev/null
cp "$OUT/progressive_quality_sheet.png" "benchmarks/results/progressive_quality_sheet$TAG.png" 2>/dev/null
ls -la "$OUT"
log "progressive quality: done in $((SECONDS - T0)) s"
